"""The operator console over HTTP: signing in and out, the session cookie, CSRF, and who sees what.

The API alone over real HTTP, on real PostgreSQL, with keys made as an admin makes them; a
browser is played by an HTTP client that keeps cookies. The pages in a real browser are
tests/test_console_browser.py.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.cookies import SimpleCookie

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from console.orders import order_filter
from console.session import COOKIE, SESSION_SECONDS, csrf_token, may_open, session_cookie
from db.engine import create_sessionmaker
from db.returns import create_return
from db.shortages import record_shortage
from db.stock import set_on_hand, stock_level
from models.order import OrderFilter, OrderStatus
from models.returns import Refund, ReturnLine, ReturnReason, ReturnState, ReturnStatus
from security.api_keys import Role, new_key, revoke_key, split_key
from settings import Settings
from tests.keys import Keys, bearer
from tests.servers import running_server
from tests.test_api import api_settings, stored_order
from tests.test_auth import serving

Sessions = async_sessionmaker[AsyncSession]
SECRET = Settings().api_key_hash_secret
NAMES = {Role.OPERATOR: "operations desk", Role.PURCHASING: "purchasing desk", Role.ADMIN: "admin"}

# The console's routes and who may use them besides admins (with a session or a key in the header);
# anyone else signed in is refused 403, and a visitor without a session is sent to sign in.
# test_auth.test_every_route_has_a_rule counts these as decided.
STAFF = {Role.OPERATOR, Role.PURCHASING}
CONSOLE_RULES: dict[tuple[str, str], set[Role]] = {
    ("GET", "/console"): STAFF,
    ("POST", "/console/session"): STAFF,
    ("POST", "/console/logout"): STAFF,
    ("GET", "/console/dashboard"): {Role.OPERATOR},
    ("GET", "/console/purchasing"): {Role.PURCHASING},
    ("POST", "/console/purchasing/{suggestion_id}/accept"): {Role.PURCHASING},
    ("POST", "/console/purchasing/{suggestion_id}/dismiss"): {Role.PURCHASING},
    # Orders hold customers' personal data: GET /orders and GET /orders/{id} are not purchasing's either.
    ("GET", "/console/orders"): {Role.OPERATOR},
    ("GET", "/console/orders/{order_id}"): {Role.OPERATOR},
    ("POST", "/console/orders/{order_id}/actions"): {Role.OPERATOR},
    ("POST", "/console/bulk"): {Role.OPERATOR},
    ("GET", "/console/bulk/{job_id}"): {Role.OPERATOR},
    ("GET", "/console/inventory"): STAFF,
    ("POST", "/console/inventory/receipts"): {Role.PURCHASING},
}
CONSOLE_OPEN = {("GET", "/console/login")}


@pytest.fixture
def temporal(dev_server_env: WorkflowEnvironment) -> Client:
    return dev_server_env.client


@pytest.fixture(scope="module")
async def console(dev_server_env: WorkflowEnvironment, database_url: str, engine: AsyncEngine) -> AsyncIterator[str]:
    """The API's base URL, one server for the module (a test that needs an empty database asks for
    `sessionmaker` or `keys`); it never blocks the tests' address, which makes many wrong guesses."""
    settings = api_settings(database_url, f"test-{uuid.uuid4()}").model_copy(update={"auth_failure_limit": 1000})
    app = create_app(settings, client=dev_server_env.client, sessionmaker=create_sessionmaker(engine))
    async with running_server(app) as base_url:
        yield base_url


def browser(base_url: str) -> httpx.AsyncClient:
    """An HTTP client that keeps cookies and does not follow redirects, as a test of what a browser is told."""
    return httpx.AsyncClient(base_url=base_url, timeout=30)


@asynccontextmanager
async def signed_in(base_url: str, key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(base_url) as http:
        opened = await http.post("/console/session", headers=bearer(key))
        assert opened.status_code == 204, opened.text
        yield http


def listed(page: httpx.Response) -> list[str]:
    """The order ids of a list page, top to bottom."""
    return re.findall(r'<tr data-row data-order="([^"]+)"', page.text)


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match, "no CSRF field on the page"
    return match.group(1)


# Signing in


async def test_a_visitor_without_a_session_is_sent_to_sign_in_and_back(console: str) -> None:
    async with browser(console) as http:
        page = await http.get("/console/dashboard?tab=week")
        home = await http.get("/console")
        form = await http.post("/console/logout")
        login = await http.get(page.headers["location"])

    assert page.status_code == 303
    assert page.headers["location"] == "/console/login?next=/console/dashboard%3Ftab%3Dweek"
    assert (home.status_code, home.headers["location"]) == (303, "/console/login?next=/console")
    # A form sent without a session returns to the console's home, not to the form's target.
    assert (form.status_code, form.headers["location"]) == (303, "/console/login?next=/console")
    assert login.status_code == 200
    assert 'id="sign-in"' in login.text
    # Through the home, which sends each role on to that page if the role may open it.
    assert 'data-next="/console?next=/console/dashboard%3Ftab%3Dweek"' in login.text
    # Only the console's own script and styles run.
    assert "script-src 'self'" in login.headers["content-security-policy"]
    assert "<script>" not in login.text


async def test_the_sign_in_page_sends_nobody_to_another_site(console: str) -> None:
    async with browser(console) as http:
        answers = [
            await http.get("/console/login", params={"next": target})
            for target in ("https://elsewhere.example/console", "//elsewhere.example/console", "/orders")
        ]

    for answer in answers:
        assert 'data-next="/console"' in answer.text


async def test_a_staff_key_opens_a_session_showing_its_name_and_role(console: str, keys: Keys) -> None:
    # The dashboard's analytics are an operator's, the reorder suggestions purchasing's; an admin's both.
    # Orders hold personal data and are an operator's too.
    own = {
        Role.OPERATOR: {"Orders", "Dashboard"},
        Role.PURCHASING: {"Purchasing"},
        Role.ADMIN: {"Orders", "Dashboard", "Purchasing"},
    }
    for role in (Role.OPERATOR, Role.PURCHASING, Role.ADMIN):
        async with browser(console) as http:
            opened = await http.post("/console/session", headers=bearer(keys.of(role)))
            page = await http.get("/console/inventory")

        assert opened.status_code == 204
        cookie = SimpleCookie(opened.headers["set-cookie"])[COOKIE]
        assert (cookie["httponly"], cookie["samesite"], cookie["path"]) == (True, "strict", "/console")
        assert int(cookie["max-age"]) == SESSION_SECONDS
        # The cookie holds the key signed; never the key alone.
        assert cookie.value != keys.of(role)
        assert page.status_code == 200
        assert f'<span class="key-name" title="The API key signed in">{NAMES[role]}</span>' in page.text
        assert f">{role.value}</span>" in page.text
        for label, path in (
            ("Orders", "/console/orders"),
            ("Inventory", "/console/inventory"),
            ("Dashboard", "/console/dashboard"),
            ("Purchasing", "/console/purchasing"),
        ):
            shown = re.search(rf'<a href="{path}" data-go="\w"[^>]*>{label}</a>', page.text)
            assert bool(shown) == (label in own[role] | {"Inventory"}), label
        assert page.headers["x-frame-options"] == "DENY"


async def test_a_client_key_cannot_sign_in(console: str, keys: Keys) -> None:
    async with browser(console) as http:
        opened = await http.post("/console/session", headers=bearer(keys.client))
        page = await http.get("/console/dashboard", headers=bearer(keys.client))

    assert opened.status_code == 403
    assert "set-cookie" not in opened.headers
    assert page.status_code == 403


async def test_a_wrong_key_opens_no_session(console: str) -> None:
    async with browser(console) as http:
        opened = await http.post("/console/session", headers=bearer(new_key()))
        page = await http.get("/console/dashboard")

    assert opened.status_code == 401
    assert "set-cookie" not in opened.headers
    assert page.status_code == 303


async def test_a_forged_a_stale_or_a_codec_cookie_is_no_session(console: str, keys: Keys) -> None:
    now = time.time()
    forged = session_cookie(keys.operator, "not-this-services-secret", now)
    ended = session_cookie(keys.operator, SECRET, now - SESSION_SECONDS - 1)
    tampered = session_cookie(keys.purchasing, SECRET, now).replace(keys.purchasing, keys.admin)
    answers = []
    for value in (forged, ended, tampered, keys.operator + ".0.00.00"):
        async with browser(console) as http:
            http.cookies.set(COOKIE, value, path="/console")
            answers.append((await http.get("/console/dashboard")).status_code)
    async with browser(console) as http:
        assert (await http.post("/codec/session", headers=bearer(keys.operator))).status_code == 204
        codec_only = await http.get("/console/dashboard")

    assert answers == [303, 303, 303, 303]
    assert codec_only.status_code == 303


async def test_forged_session_cookies_count_towards_blocking_the_address_and_ended_sessions_do_not(
    temporal: Client, database_url: str, sessionmaker: Sessions, task_queue: str, keys: Keys
) -> None:
    ended = session_cookie(keys.operator, SECRET, time.time() - SESSION_SECONDS - 1)
    forged = session_cookie(keys.operator, "not-this-services-secret", time.time())
    async with serving(temporal, database_url, sessionmaker, task_queue, auth_failure_limit=3) as base_url:

        async def visit(cookie: str) -> int:
            async with browser(base_url) as http:
                http.cookies.set(COOKIE, cookie, path="/console")
                return (await http.get("/console/dashboard")).status_code

        after_ended = [await visit(ended) for _ in range(5)]
        after_forged = [await visit(forged) for _ in range(4)]

    assert after_ended == [303] * 5
    assert after_forged == [303, 303, 303, 429]


async def test_a_session_ends_when_its_key_is_revoked(console: str, keys: Keys, sessionmaker: Sessions) -> None:
    async with signed_in(console, keys.operator) as http:
        before = await http.get("/console/dashboard")
        async with sessionmaker.begin() as session:
            await revoke_key(session, split_key(keys.operator)[0])
        after = await http.get("/console/dashboard")

    assert before.status_code == 200
    assert after.status_code == 303


# Signing out, and CSRF


async def test_signing_out_needs_the_sessions_token_and_ends_the_session(console: str, keys: Keys) -> None:
    async with signed_in(console, keys.operator) as http:
        page = await http.get("/console/dashboard")
        token = csrf_of(page)
        missing = await http.post("/console/logout")
        forged = await http.post("/console/logout", data={"csrf": "0" * 64})
        still_in = await http.get("/console/dashboard")
        out = await http.post("/console/logout", data={"csrf": token})
        after = await http.get("/console/dashboard")

    assert (missing.status_code, forged.status_code, still_in.status_code) == (403, 403, 200)
    assert out.status_code == 303
    assert out.headers["location"] == "/console/login"
    assert 'oms_console_session=""' in out.headers["set-cookie"]
    assert after.status_code == 303


async def test_the_csrf_token_belongs_to_one_session(console: str, keys: Keys) -> None:
    async with signed_in(console, keys.operator) as first, signed_in(console, keys.operator) as second:
        token_of_first = csrf_of(await first.get("/console/dashboard"))
        crossed = await second.post("/console/logout", data={"csrf": token_of_first})

    assert crossed.status_code == 403
    assert token_of_first == csrf_token(str(first.cookies.get(COOKIE)), SECRET)


# Assets and the rule for every route


async def test_the_consoles_assets_are_served_without_a_session(console: str) -> None:
    async with browser(console) as http:
        script = await http.get("/console/static/console.js")
        styles = await http.get("/console/static/console.css")
        missing = await http.get("/console/static/nothing-here.js")

    assert (script.status_code, styles.status_code) == (200, 200)
    assert script.headers["content-type"].startswith("text/javascript")
    assert styles.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404


async def test_an_unknown_console_page_is_a_page_and_an_unknown_api_path_stays_json(console: str, keys: Keys) -> None:
    async with signed_in(console, keys.purchasing) as http:
        missing = await http.get("/console/no-such-page")
        missing_order_action = await http.get("/console/orders/ORD-1/no-such-page")
        api_missing = await http.get("/no-such-path", headers=bearer(keys.purchasing))
        program = await http.get("/console/no-such-page", headers=bearer(keys.purchasing))
    async with browser(console) as http:
        signed_out = await http.get("/console/no-such-page")

    for page in (missing, missing_order_action):
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "there is no such page in the console" in page.text
        assert '<a href="/console/inventory">Back to the console</a>' in page.text
        assert ">purchasing</span>" in page.text
    for answer in (api_missing, program):
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("application/")
        assert answer.json()["detail"]
    # Like every console page, an unknown one sends a visitor without a session to sign in first.
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/console/login?next=/console/no-such-page"


async def test_each_console_route_admits_only_its_roles(console: str, keys: Keys) -> None:
    wrong: list[str] = []
    async with browser(console) as http:
        for (method, path), roles in sorted(CONSOLE_RULES.items()):
            url = path.format(order_id=uuid.uuid4(), job_id=uuid.uuid4(), suggestion_id=uuid.uuid4())
            anonymous = await http.request(method, url)
            if anonymous.status_code != 303 or not anonymous.headers["location"].startswith("/console/login"):
                wrong.append(f"{method} {path} without a session: {anonymous.status_code}")
            for role in Role:
                answer = (await http.request(method, url, headers=bearer(keys.of(role)))).status_code
                if (role in roles | {Role.ADMIN}) == (answer in (401, 403)) or answer == 401:
                    wrong.append(f"{method} {path} as {role}: {answer}")

    assert wrong == []


# Orders


def test_the_list_form_reads_whole_utc_days_and_names_what_it_cannot_read() -> None:
    where, problems = order_filter(" LAMP-004 ", "pending_review", "2026-11-01", "2026-11-30")
    unread, complaints = order_filter("two words", "lost", "1 Nov", "")

    # "to" includes its day: the filter's bound is the next midnight, exclusive.
    assert where == OrderFilter(
        q="LAMP-004",
        status=OrderStatus.PENDING_REVIEW,
        created_from=datetime(2026, 11, 1, tzinfo=UTC),
        created_to=datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert problems == []
    assert unread == OrderFilter()
    assert len(complaints) == 3


async def test_the_order_list_shows_the_newest_first_a_page_at_a_time_with_search_and_filters(
    console: str, keys: Keys, sessionmaker: Sessions
) -> None:
    delivered = [await stored_order(sessionmaker, OrderStatus.DELIVERED) for _ in range(3)]
    cancelled = await stored_order(sessionmaker, OrderStatus.CANCELLED)
    today = datetime.now(UTC).date()
    async with signed_in(console, keys.operator) as http:
        first = await http.get("/console/orders", params={"limit": 2})
        older = re.search(r'href="(/console/orders\?[^"]*cursor=[^"]+)" rel="next"', first.text)
        assert older, first.text
        second = await http.get(older.group(1).replace("&amp;", "&"))
        by_status = await http.get("/console/orders", params={"status": "cancelled"})
        by_id = await http.get("/console/orders", params={"q": delivered[0].order_id})
        by_sku = await http.get("/console/orders", params={"q": "BOLT-7", "status": "delivered"})
        placed_today = await http.get("/console/orders", params={"created_from": str(today), "created_to": str(today)})
        placed_tomorrow = await http.get("/console/orders", params={"created_from": str(today + timedelta(days=1))})
        nonsense = await http.get("/console/orders", params={"q": "a b", "created_to": "soon", "status": "lost"})

    newest_first = [cancelled.order_id, *(order.order_id for order in reversed(delivered))]
    assert listed(first) == newest_first[:2]
    assert listed(second) == newest_first[2:]
    assert 'rel="next"' not in second.text
    row = first.text[first.text.index(f'data-order="{cancelled.order_id}"') :]
    row = row[: row.index("</tr>")]
    for shown in ("C-1", "cancelled", "120.00 EUR", "BOLT-7", today.isoformat()):
        assert shown in row, shown
    assert listed(by_status) == [cancelled.order_id]
    assert listed(by_id) == [delivered[0].order_id]
    assert listed(by_sku) == [order.order_id for order in reversed(delivered)]
    assert listed(placed_today) == newest_first
    assert listed(placed_tomorrow) == []
    # What cannot be read is said, and left out of the search.
    assert nonsense.status_code == 200
    assert "is not a date" in nonsense.text and "unknown status" in nonsense.text and "letters, digits" in nonsense.text
    assert listed(nonsense) == newest_first


async def test_an_order_page_shows_the_order_and_links_its_workflow_in_the_temporal_ui(
    console: str, keys: Keys, sessionmaker: Sessions
) -> None:
    order = await stored_order(sessionmaker, OrderStatus.DELIVERED)
    async with signed_in(console, keys.operator) as http:
        page = await http.get(f"/console/orders/{order.order_id}")
        unknown = await http.get(f"/console/orders/{uuid.uuid4()}")

    assert page.status_code == 200
    ui = Settings().temporal_ui_url
    assert f'href="{ui}/namespaces/default/workflows/order-{order.order_id}"' in page.text
    for shown in ("BOLT-7", "120.00 EUR", "C-1", "delivered", 'id="lines"', 'class="timeline'):
        assert shown in page.text, shown
    # Nothing to approve or cancel on a delivered order.
    assert 'name="action"' not in page.text
    assert unknown.status_code == 404
    assert "not found" in unknown.text


async def test_an_order_page_shows_its_returns_with_their_refunds(
    console: str, keys: Keys, sessionmaker: Sessions
) -> None:
    order = await stored_order(sessionmaker, OrderStatus.DELIVERED)
    now = datetime.now(UTC)
    refunded = ReturnState(
        return_id=str(uuid.uuid4()),
        workflow_id="return-1",
        order_id=order.order_id,
        customer_id="C-1",
        status=ReturnStatus.REFUNDED,
        resolution="refund",
        lines=[
            ReturnLine(line_no=2, sku="BOLT-7", quantity=2, reason=ReturnReason.DAMAGED, unit_price=Decimal("5.00"))
        ],
        value=Decimal("10.00"),
        currency="EUR",
        refund=Refund(refund_id="RF-1", amount=Decimal("12.10"), currency="EUR", credit_note="CN-77"),
        created_at=now,
        updated_at=now,
    )
    async with sessionmaker.begin() as session:
        await create_return(session, refunded)
    async with signed_in(console, keys.operator) as http:
        page = await http.get(f"/console/orders/{order.order_id}")

    assert page.status_code == 200
    returns = page.text[page.text.index('id="returns"') :]
    for shown in (refunded.return_id, "refunded", "10.00 EUR", "12.10 EUR, credit note CN-77"):
        assert shown in returns, shown


async def test_purchasing_is_refused_the_orders_and_lands_on_inventory_after_signing_in(
    console: str, keys: Keys, sessionmaker: Sessions
) -> None:
    order = await stored_order(sessionmaker, OrderStatus.PENDING_REVIEW)
    async with signed_in(console, keys.purchasing) as http:
        landed = await http.get("/console")
        sent_back = await http.get("/console", params={"next": f"/console/orders/{order.order_id}"})
        sent_on = await http.get("/console", params={"next": "/console/purchasing?sku=MUG-001"})
        not_its_own = await http.get("/console", params={"next": "/console/dashboard?tab=week"})
        listing = await http.get("/console/orders")
        page = await http.get(f"/console/orders/{order.order_id}")
        inventory = await http.get("/console/inventory")
        forged = await http.post(
            f"/console/orders/{order.order_id}/actions", data={"action": "approve", "csrf": csrf_of(inventory)}
        )
    async with signed_in(console, keys.operator) as http:
        operators_landing = await http.get("/console")
        operators_target = await http.get("/console", params={"next": f"/console/orders/{order.order_id}"})

    assert (landed.status_code, landed.headers["location"]) == (303, "/console/inventory")
    assert sent_back.headers["location"] == "/console/inventory"
    assert sent_on.headers["location"] == "/console/purchasing?sku=MUG-001"
    assert not_its_own.headers["location"] == "/console/inventory"
    for refused in (listing, page, forged):
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert "a purchasing key may not do this" in refused.text
        assert order.order_id not in refused.text
        assert '<a href="/console/inventory">Back to the console</a>' in refused.text
    assert 'href="/console/orders"' not in inventory.text
    assert operators_landing.headers["location"] == "/console/orders"
    assert operators_target.headers["location"] == f"/console/orders/{order.order_id}"


def test_sign_in_sends_a_role_only_to_pages_its_routes_admit() -> None:
    for (method, path), roles in CONSOLE_RULES.items():
        if method == "GET":
            for role in (Role.OPERATOR, Role.PURCHASING, Role.ADMIN):
                assert may_open(role, path) == (role in roles | {Role.ADMIN}), (path, role)


async def test_an_operator_sees_the_order_actions_and_one_sent_without_the_token_is_refused(
    console: str, keys: Keys, sessionmaker: Sessions
) -> None:
    order = await stored_order(sessionmaker, OrderStatus.PENDING_REVIEW)
    async with signed_in(console, keys.operator) as http:
        operators_page = await http.get(f"/console/orders/{order.order_id}")
        without_token = await http.post(f"/console/orders/{order.order_id}/actions", data={"action": "approve"})

    assert 'value="approve"' in operators_page.text and 'value="cancel"' in operators_page.text
    assert without_token.status_code == 403
    assert "security token is missing or out of date" in without_token.text


async def test_a_batch_needs_orders_and_a_role_that_may_act_on_them(
    console: str, keys: Keys, sessionmaker: Sessions
) -> None:
    order = await stored_order(sessionmaker, OrderStatus.PENDING_REVIEW)
    async with signed_in(console, keys.operator) as http:
        token = csrf_of(await http.get("/console/orders"))
        nothing = await http.post("/console/bulk", data={"action": "approve", "csrf": token})
        no_reason = await http.post(
            "/console/bulk", data={"action": "cancel", "order_id": order.order_id, "csrf": token}
        )
        none_match = await http.post(
            "/console/bulk", data={"action": "approve", "all_matching": "1", "q": "no-such-order", "csrf": token}
        )
        unknown_job = await http.get(f"/console/bulk/{uuid.uuid4()}")
    async with signed_in(console, keys.purchasing) as http:
        token = csrf_of(await http.get("/console/inventory"))
        forged = await http.post("/console/bulk", data={"action": "approve", "order_id": order.order_id, "csrf": token})

    assert (nothing.status_code, no_reason.status_code, none_match.status_code) == (422, 422, 422)
    assert "select orders first" in nothing.text
    assert "give a reason" in no_reason.text
    assert "matches no order" in none_match.text
    assert unknown_job.status_code == 404
    assert forged.status_code == 403


# Inventory


async def test_inventory_shows_stock_per_warehouse_low_stock_and_to_purchasing_the_receipt_form(
    console: str, keys: Keys, sessionmaker: Sessions
) -> None:
    # A SKU of its own: receiving stock signals the SKU's replenishment workflow, on a server other modules share.
    chair = f"CHAIR-{uuid.uuid4().hex[:8].upper()}"
    async with sessionmaker.begin() as session:
        await set_on_hand(session, "MUG-001", "WH-EAST", 40)
        await set_on_hand(session, "MUG-001", "WH-WEST", 2)
        await set_on_hand(session, chair, "WH-EAST", 2)
    async with signed_in(console, keys.operator) as http:
        operators = await http.get("/console/inventory")
        refused = await http.post(
            "/console/inventory/receipts",
            data={"sku": chair, "warehouse": "WH-EAST", "quantity": "5", "csrf": csrf_of(operators)},
        )
    async with signed_in(console, keys.purchasing) as http:
        purchasings = await http.get("/console/inventory")
        received = await http.post(
            "/console/inventory/receipts",
            data={"sku": chair, "warehouse": "WH-EAST", "quantity": "5", "csrf": csrf_of(purchasings)},
            follow_redirects=True,
        )
        unknown = await http.post(
            "/console/inventory/receipts",
            data={"sku": "NO-SUCH", "warehouse": "WH-EAST", "quantity": "5", "csrf": csrf_of(purchasings)},
        )

    assert re.search(r'data-sku="MUG-001" data-warehouse="WH-WEST">\s*<td>MUG-001</td><td>WH-WEST</td>', operators.text)
    assert re.search(rf'id="low-stock"><span class="low">{chair}</span> \(2\)</p>', operators.text)
    assert 'id="receive"' not in operators.text and 'id="shortages"' not in operators.text
    assert refused.status_code == 403
    assert 'id="receive"' in purchasings.text and 'id="shortages"' in purchasings.text
    assert received.status_code == 200
    assert f"5 units of {chair} received at WH-EAST" in received.text
    assert 'id="low-stock">None.' in received.text
    async with sessionmaker() as session:
        level = await stock_level(session, chair)
    assert level is not None and level.on_hand == 7
    assert unknown.status_code == 409 and "unknown SKU NO-SUCH" in unknown.text


async def test_the_orders_waiting_for_stock_link_to_their_pages_only_for_roles_that_may_open_them(
    console: str, keys: Keys, sessionmaker: Sessions
) -> None:
    order = await stored_order(sessionmaker, OrderStatus.BACKORDERED)
    async with sessionmaker.begin() as session:
        await record_shortage(session, "CHAIR-006", order.order_id, 3, datetime.now(UTC))
    pages = {}
    for role in (Role.PURCHASING, Role.ADMIN):
        async with signed_in(console, keys.of(role)) as http:
            pages[role] = (await http.get("/console/inventory")).text

    link = f'<a class="mono" href="/console/orders/{order.order_id}">{order.order_id}</a>'
    assert f'<span class="mono">{order.order_id}</span>' in pages[Role.PURCHASING]
    assert link not in pages[Role.PURCHASING]
    assert link in pages[Role.ADMIN]
