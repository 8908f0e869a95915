"""Who may call what: API keys, roles, tenants, brute-force blocking, rate limits, key management and bootstrap.

Everything over real HTTP against real PostgreSQL and a real Temporal dev server; keys are
made in the database as an admin makes them, and nothing about authentication is stubbed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import StartupError, create_app
from api.refusals import Unauthenticated
from models.tables import ApiKeyRow, IdempotencyKeyRow, OrderRow
from security.api_keys import Role, authenticate, new_key, split_key
from settings import Settings
from tests.keys import CLIENT_ID, OTHER_CLIENT_ID, Keys, bearer
from tests.servers import running_server
from tests.stack import Stack
from tests.test_api import api_settings, order_body, rows

Sessions = async_sessionmaker[AsyncSession]
ROOT = Path(__file__).resolve().parent.parent

CLIENT, OPERATOR, PURCHASING, ADMIN = Role.CLIENT, Role.OPERATOR, Role.PURCHASING, Role.ADMIN

# Who may call each route besides admins, who may call everything. A route the app serves
# that is in neither table fails test_every_route_has_a_rule: a new route needs a decision here.
RULES: dict[tuple[str, str], set[Role]] = {
    ("POST", "/orders"): {CLIENT},
    ("GET", "/orders"): {CLIENT, OPERATOR},
    ("GET", "/orders/{order_id}"): {CLIENT, OPERATOR},
    ("POST", "/orders/{order_id}/cancel"): {CLIENT, OPERATOR},
    ("PATCH", "/orders/{order_id}"): {CLIENT, OPERATOR},
    ("POST", "/orders/{order_id}/review"): {OPERATOR},
    ("POST", "/orders/{order_id}/returns"): {CLIENT, OPERATOR},
    ("POST", "/orders/{order_id}/refunds"): {OPERATOR},
    ("GET", "/returns"): {CLIENT, OPERATOR},
    ("GET", "/returns/{return_id}"): {CLIENT, OPERATOR},
    ("POST", "/returns/{return_id}/cancel"): {CLIENT, OPERATOR},
    ("POST", "/returns/{return_id}/review"): {OPERATOR},
    ("POST", "/returns/{return_id}/receipt"): {OPERATOR},
    ("POST", "/returns/{return_id}/refund/retry"): {OPERATOR},
    ("POST", "/bulk/actions"): {OPERATOR},
    ("POST", "/bulk/orders"): {CLIENT},
    ("GET", "/bulk/{job_id}"): {CLIENT, OPERATOR},
    ("POST", "/bulk/{job_id}/retry"): {CLIENT, OPERATOR},
    ("POST", "/bulk/{job_id}/cancel"): {CLIENT, OPERATOR},
    ("GET", "/inventory/{sku}"): {PURCHASING, OPERATOR},
    ("PUT", "/inventory/{sku}"): set(),
    ("POST", "/inventory/{sku}/receipts"): {PURCHASING},
    ("GET", "/purchasing/shortages"): {PURCHASING},
    ("GET", "/purchasing/suggestions"): {PURCHASING},
    ("POST", "/purchasing/suggestions/{suggestion_id}/accept"): {PURCHASING},
    ("POST", "/purchasing/suggestions/{suggestion_id}/dismiss"): {PURCHASING},
    ("GET", "/forecast/{sku}"): {PURCHASING, OPERATOR},
    ("GET", "/purchasing/terms/{sku}"): {PURCHASING},
    ("PUT", "/purchasing/terms/{sku}"): {PURCHASING},
    ("GET", "/analytics/summary"): {OPERATOR},
    ("GET", "/analytics/orders"): {OPERATOR},
    ("GET", "/analytics/fulfilment"): {OPERATOR},
    ("GET", "/analytics/skus"): {OPERATOR},
    ("GET", "/analytics/customers"): {OPERATOR},
    ("GET", "/analytics/returns"): {OPERATOR},
    ("POST", "/keys"): set(),
    ("GET", "/keys"): set(),
    ("POST", "/keys/{key_id}/revoke"): set(),
    ("POST", "/keys/{key_id}/lock"): set(),
    ("POST", "/keys/{key_id}/unlock"): set(),
    ("GET", "/audit"): set(),
    ("POST", "/webhooks/subscriptions"): set(),
    ("GET", "/webhooks/subscriptions"): set(),
    ("DELETE", "/webhooks/subscriptions/{subscription_id}"): set(),
    ("POST", "/codec/decode"): {OPERATOR},
    ("POST", "/codec/encode"): {OPERATOR},
    ("POST", "/codec/session"): {OPERATOR},
    ("DELETE", "/codec/session"): {OPERATOR},
    # Prometheus scrapes with an operator key: aggregates, but of the business.
    ("GET", "/metrics"): {OPERATOR},
}
OPEN = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
    # Signed by the carrier instead of a key.
    ("POST", "/webhooks/carrier"),
    # The codec sign-in page, which only asks for a key.
    ("GET", "/codec/login"),
}
SAMPLE_IDS = {
    "order_id": str(uuid.uuid4()),
    "return_id": str(uuid.uuid4()),
    "sku": "MATRIX-1",
    "key_id": "0123456789abcdef",
    "subscription_id": str(uuid.uuid4()),
    "suggestion_id": str(uuid.uuid4()),
    "job_id": str(uuid.uuid4()),
}


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method, context.path)
        for context in iter_route_contexts(app.routes)
        for method in context.methods or ()
        if context.path and method != "HEAD"
    }


@pytest.fixture
def temporal(dev_server_env: WorkflowEnvironment) -> Client:
    return dev_server_env.client


@asynccontextmanager
async def serving(
    temporal: Client, database_url: str, sessionmaker: Sessions, task_queue: str, **changes: Any
) -> AsyncIterator[str]:
    """The API alone (no worker), with `changes` to its settings; yields its base URL."""
    settings = api_settings(database_url, task_queue).model_copy(update=changes)
    app = create_app(settings, client=temporal, sessionmaker=sessionmaker)
    async with running_server(app) as base_url:
        yield base_url


def http(base_url: str, key: str | None = None, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=30, headers=bearer(key) if key else None, **options)


# The matrix of roles and routes


def test_every_route_has_a_rule() -> None:
    # The console's pages have their rules in its own tests: a visitor without a session is sent to sign in.
    from tests.test_console import CONSOLE_OPEN, CONSOLE_RULES

    served = served_routes(create_app(Settings()))
    decided = RULES.keys() | OPEN | CONSOLE_RULES.keys() | CONSOLE_OPEN

    assert len(served) >= len(decided) > 20
    assert served - decided == set(), "routes without a rule"
    assert decided - served == set(), "rules for routes that are not served"


@pytest.mark.parametrize(("method", "path"), sorted(RULES), ids=[f"{m} {p}" for m, p in sorted(RULES)])
async def test_a_route_answers_only_keys_of_its_roles(
    method: str, path: str, temporal: Client, database_url: str, sessionmaker: Sessions, task_queue: str, keys: Keys
) -> None:
    allowed = RULES[(method, path)] | {ADMIN}
    url = path.format(**SAMPLE_IDS)
    body = {} if method in {"POST", "PUT", "PATCH"} else None
    async with (
        serving(temporal, database_url, sessionmaker, task_queue, auth_failure_limit=1000) as base_url,
        http(base_url) as anonymous,
    ):
        missing = await anonymous.request(method, url, json=body)
        unknown = await anonymous.request(method, url, json=body, headers=bearer(new_key()))
        malformed = await anonymous.request(method, url, json=body, headers=bearer("let-me-in"))
        answers = {}
        for role in Role:
            response = await anonymous.request(method, url, json=body, headers=bearer(keys.of(role)))
            answers[role] = response.status_code

    assert (missing.status_code, unknown.status_code, malformed.status_code) == (401, 401, 401)
    assert missing.headers["www-authenticate"] == "Bearer"
    for role in Role:
        if role in allowed:
            assert answers[role] not in (401, 403), f"{role} refused: {answers}"
        else:
            assert answers[role] == 403, f"{role} let through: {answers}"


async def test_open_routes_answer_without_a_key(
    temporal: Client, database_url: str, sessionmaker: Sessions, task_queue: str
) -> None:
    async with serving(temporal, database_url, sessionmaker, task_queue) as base_url, http(base_url) as anonymous:
        answers = {(method, path): await anonymous.request(method, path) for method, path in OPEN}

    for answer in answers.values():
        assert Unauthenticated().detail not in answer.text
    assert {answer.status_code for route, answer in answers.items() if route[0] == "GET"} == {200}


async def test_a_malformed_body_without_a_key_is_a_401_not_a_422(
    temporal: Client, database_url: str, sessionmaker: Sessions, task_queue: str
) -> None:
    async with serving(temporal, database_url, sessionmaker, task_queue) as base_url, http(base_url) as anonymous:
        response = await anonymous.post("/orders", content=b"{not json", headers={"Content-Type": "application/json"})
        unknown_path = await anonymous.get("/no-such-thing")

    assert response.status_code == 401
    assert unknown_path.status_code == 401


async def test_a_cors_preflight_is_not_asked_for_a_key(
    temporal: Client, database_url: str, sessionmaker: Sessions, task_queue: str
) -> None:
    async with serving(temporal, database_url, sessionmaker, task_queue) as base_url, http(base_url) as browser:
        preflight = await browser.options("/orders", headers={"Origin": "http://127.0.0.1:8233"})

    # Browsers send preflights without credentials; no route answers OPTIONS, so nothing is reached.
    assert preflight.status_code == 405


# Tenants


def tenant_order(sku: str, customer_id: str, name: str) -> dict[str, Any]:
    body = order_body(lines=[{"sku": sku, "quantity": 1, "unit_price": "10.00"}])
    body["customer"] = {**body["customer"], "id": customer_id, "name": name}
    body["shipping_address"] = {**body["shipping_address"], "name": name}
    return body


async def test_a_client_neither_reads_lists_nor_cancels_another_clients_orders(stack: Stack) -> None:
    sku = f"TENANT-{uuid.uuid4().hex[:8].upper()}"
    # No stock: the orders wait, backordered, so each could still be cancelled.
    await stack.count_stock(sku, 0)
    a_body = tenant_order(sku, "cust-of-a", "Alice Arden")
    a_orders = [await stack.place_order(a_body, idempotency_key=f"checkout-{n}") for n in range(2)]
    foreign = {*a_orders, "cust-of-a", "Alice", CLIENT_ID}

    async with stack.http(stack.keys.other_client) as b:
        # At once, perhaps before the worker has recorded anything, and again once they wait for stock.
        early = [await b.get(f"/orders/{order_id}") for order_id in a_orders]
        for order_id in a_orders:
            await stack.wait_for_status(order_id, "backordered")
        reads = [await b.get(f"/orders/{order_id}") for order_id in a_orders]
        cancel = {"reason": "mine now"}
        cancels = [await b.post(f"/orders/{order_id}/cancel", json=cancel) for order_id in a_orders]
        listings = [
            await b.get("/orders", params=params)
            for params in ({}, {"client_id": CLIENT_ID}, {"customer_id": "cust-of-a"}, {"sku": sku})
        ]
        # B's own order with the same Idempotency-Key as A's first is an order of its own.
        b_body = tenant_order(sku, "cust-of-b", "Bob Brook")
        own = await b.post("/orders", json=b_body, headers={"Idempotency-Key": "checkout-0"})
        await stack.wait_for_status(own.json()["order_id"], "backordered", via=b)
        own_listing = await b.get("/orders")

    # Answered exactly as an order that does not exist.
    for order_id, response in zip(a_orders * 3, early + reads + cancels, strict=True):
        assert (response.status_code, response.json()) == (404, {"detail": f"order {order_id} not found"})
    assert [response.json()["items"] for response in listings] == [[], [], [], []]
    assert own.status_code == 202
    assert own.json()["order_id"] not in a_orders
    assert [item["order_id"] for item in own_listing.json()["items"]] == [own.json()["order_id"]]
    assert own_listing.json()["items"][0]["client_id"] == OTHER_CLIENT_ID
    for response in [*listings, own, own_listing]:
        assert not any(value in response.text for value in foreign), response.text
    for order_id in a_orders:
        assert (await stack.order(order_id))["status"] == "backordered"
    cancelled = await stack.api.post(f"/orders/{a_orders[0]}/cancel", json={"reason": "changed my mind"})
    assert cancelled.status_code == 200
    listed = (await stack.api.get("/orders")).json()["items"]
    assert sorted(item["order_id"] for item in listed) == sorted(a_orders)
    assert len((await stack.operator.get("/orders")).json()["items"]) == 3


async def test_an_order_not_yet_recorded_is_still_hidden_from_other_clients(
    temporal: Client, database_url: str, sessionmaker: Sessions, task_queue: str, keys: Keys
) -> None:
    # No worker: the order's workflow never runs, so only its memo knows whose order it is.
    async with (
        serving(temporal, database_url, sessionmaker, task_queue, api_workflow_timeout_seconds=0.5) as base_url,
        http(base_url, keys.client) as a,
        http(base_url, keys.other_client) as b,
    ):
        order_id = (await a.post("/orders", json=order_body())).json()["order_id"]

        by_b = [await b.get(f"/orders/{order_id}"), await b.post(f"/orders/{order_id}/cancel", json={"reason": "x"})]
        by_a = await a.get(f"/orders/{order_id}")

    assert [response.status_code for response in by_b] == [404, 404]
    assert by_b[0].json() == {"detail": f"order {order_id} not found"}
    assert by_a.status_code == 503  # A's own order: found, its workflow just cannot answer yet


@pytest.mark.parametrize(
    "field",
    [
        {"status": "delivered"},
        {"total": "0.01"},
        {"order_id": "my-own-id"},
        {"workflow_id": "order-x"},
        {"client_id": OTHER_CLIENT_ID},
    ],
    ids=lambda field: next(iter(field)),
)
async def test_a_request_setting_a_server_owned_field_is_refused_and_nothing_starts(
    field: dict[str, str],
    temporal: Client,
    database_url: str,
    sessionmaker: Sessions,
    task_queue: str,
    keys: Keys,
) -> None:
    async with (
        serving(temporal, database_url, sessionmaker, task_queue) as base_url,
        http(base_url, keys.client) as client,
    ):
        response = await client.post("/orders", json=order_body(**field), headers={"Idempotency-Key": "k-1"})

    assert response.status_code == 422
    assert ["body", next(iter(field))] in [error["loc"] for error in response.json()["detail"]]
    assert (await temporal.count_workflows(f"TaskQueue = '{task_queue}'")).count == 0
    assert await rows(sessionmaker, IdempotencyKeyRow) == 0
    assert await rows(sessionmaker, OrderRow) == 0


# Brute force and rate limits


async def test_repeated_failed_authentications_block_the_source_for_a_while(
    temporal: Client, database_url: str, sessionmaker: Sessions, task_queue: str, keys: Keys
) -> None:
    block = 1.5
    # Another address on the loopback network is another source.
    elsewhere_transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with (
        serving(
            temporal, database_url, sessionmaker, task_queue, auth_failure_limit=3, auth_block_seconds=block
        ) as base_url,
        http(base_url) as attacker,
        http(base_url, keys.operator) as same_source,
        http(base_url, keys.operator, transport=elsewhere_transport) as elsewhere,
    ):
        guesses = [(await attacker.get("/orders", headers=bearer(new_key()))).status_code for _ in range(3)]
        blocked = await same_source.get("/orders")
        guess_while_blocked = await attacker.get("/orders", headers=bearer(new_key()))
        probe = await same_source.get("/healthz")
        other = await elsewhere.get("/orders")
        await asyncio.sleep(block + 0.1)
        after = await same_source.get("/orders")

    assert guesses == [401, 401, 401]
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 2
    assert "try again later" in blocked.json()["detail"]
    assert guess_while_blocked.status_code == 429
    assert probe.status_code == 200
    assert other.status_code == 200
    assert after.status_code == 200


async def test_orders_beyond_a_keys_rate_limit_are_refused_with_retry_after(
    temporal: Client, database_url: str, sessionmaker: Sessions, task_queue: str, keys: Keys
) -> None:
    async with (
        serving(temporal, database_url, sessionmaker, task_queue, order_rate_limit_per_minute=2) as base_url,
        http(base_url, keys.client) as shop_a,
        http(base_url, keys.other_client) as shop_b,
    ):
        answers = [await shop_a.post("/orders", json=order_body()) for _ in range(3)]
        other_key = await shop_b.post("/orders", json=order_body())

    assert [answer.status_code for answer in answers] == [202, 202, 429]
    assert 1 <= int(answers[2].headers["retry-after"]) <= 60
    assert other_key.status_code == 202
    assert (await temporal.count_workflows(f"TaskQueue = '{task_queue}'")).count == 3


# Key management


async def test_an_admin_makes_a_key_shown_once_that_works_at_once(
    temporal: Client, database_url: str, sessionmaker: Sessions, task_queue: str, keys: Keys
) -> None:
    async with (
        serving(temporal, database_url, sessionmaker, task_queue) as base_url,
        http(base_url, keys.admin) as admin,
    ):
        created = await admin.post("/keys", json={"name": "shop C", "role": "client", "client_id": "shop-c"})
        key = created.json()["key"]
        async with http(base_url, key) as shop_c:
            placed = await shop_c.post("/orders", json=order_body())
        listing = await admin.get("/keys")
        refused = await admin.post("/keys", json={"name": "no client", "role": "client"})

    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    assert created.json()["role"] == "client"
    assert created.json()["client_id"] == "shop-c"
    assert split_key(key)[0] == created.json()["key_id"]
    assert placed.status_code == 202
    assert created.json()["key_id"] in [item["key_id"] for item in listing.json()["items"]]
    assert split_key(key)[1] not in listing.text
    assert "key_hash" not in listing.text and '"key"' not in listing.text
    assert refused.status_code == 422


async def test_a_locked_or_revoked_key_is_refused_at_once(
    temporal: Client, database_url: str, sessionmaker: Sessions, task_queue: str, keys: Keys
) -> None:
    operator_id = split_key(keys.operator)[0]
    async with (
        serving(temporal, database_url, sessionmaker, task_queue) as base_url,
        http(base_url, keys.admin) as admin,
        http(base_url, keys.operator) as operator,
    ):
        before = await operator.get("/orders")
        locked = await admin.post(f"/keys/{operator_id}/lock")
        while_locked = await operator.get("/orders")
        unlocked = await admin.post(f"/keys/{operator_id}/unlock")
        after_unlock = await operator.get("/orders")
        revoked = await admin.post(f"/keys/{operator_id}/revoke")
        after_revoke = await operator.get("/orders")
        unlock_revoked = await admin.post(f"/keys/{operator_id}/unlock")
        still_revoked = await operator.get("/orders")
        unknown = await admin.post("/keys/ffffffffffffffff/lock")

    assert (before.status_code, locked.status_code, while_locked.status_code) == (200, 200, 401)
    assert locked.json()["locked_at"] is not None
    assert (unlocked.status_code, after_unlock.status_code) == (200, 200)
    assert (revoked.status_code, after_revoke.status_code) == (200, 401)
    assert revoked.json()["revoked_at"] is not None
    assert (unlock_revoked.status_code, still_revoked.status_code) == (200, 401)
    assert unknown.status_code == 404


def run_cli(database_url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("OMS_")},
        "DATABASE_URL": database_url,
        "OMS_API_KEY_HASH_SECRET": Settings().api_key_hash_secret,
    }
    return subprocess.run(
        [sys.executable, "-m", "scripts.api_keys", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_command_line_creates_lists_and_revokes_keys(database_url: str, sessionmaker: Sessions) -> None:
    hash_secret = Settings().api_key_hash_secret

    created = await asyncio.to_thread(
        run_cli, database_url, "create", "--name", "shop D", "--role", "client", "--client-id", "shop-d"
    )
    key = created.stdout.strip()
    key_id, secret = split_key(key)
    listed = await asyncio.to_thread(run_cli, database_url, "list")
    revoked = await asyncio.to_thread(run_cli, database_url, "revoke", key_id)
    relisted = await asyncio.to_thread(run_cli, database_url, "list")
    missing_client = await asyncio.to_thread(run_cli, database_url, "create", "--name", "x", "--role", "client")
    unknown = await asyncio.to_thread(run_cli, database_url, "revoke", "ffffffffffffffff")

    assert created.returncode == 0, created.stderr
    assert "shown only now" in created.stderr
    assert '"event": "key_created"' in created.stderr and key_id in created.stderr
    assert secret not in created.stderr
    assert listed.returncode == 0
    [line] = [line for line in listed.stdout.splitlines() if line.startswith(key_id)]
    assert line.split()[:4] == [key_id, "client", "shop-d", "active"]
    assert secret not in listed.stdout
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert next(line for line in relisted.stdout.splitlines() if line.startswith(key_id)).split()[3] == "revoked"
    assert missing_client.returncode == 2 and "client_id" in missing_client.stderr
    assert unknown.returncode == 2 and "ffffffffffffffff" in unknown.stderr
    async with sessionmaker() as session:
        assert await authenticate(session, key, hash_secret=hash_secret) is None
        assert (await session.scalars(select(ApiKeyRow.client_id))).all() == ["shop-d"]


# Bootstrap


async def test_the_bootstrap_key_is_an_admin_key_from_the_first_start(
    temporal: Client, database_url: str, sessionmaker: Sessions, task_queue: str
) -> None:
    bootstrap = new_key()

    for _ in range(2):  # a restart with the same key changes nothing
        async with (
            serving(temporal, database_url, sessionmaker, task_queue, bootstrap_admin_key=bootstrap) as base_url,
            http(base_url, bootstrap) as admin,
        ):
            listing = await admin.get("/keys")

        assert listing.status_code == 200
        [item] = listing.json()["items"]
        assert (item["key_id"], item["role"], item["name"]) == (split_key(bootstrap)[0], "admin", "bootstrap admin")


async def test_a_malformed_bootstrap_key_stops_start_up_naming_the_setting(
    database_url: str, task_queue: str, temporal: Client, sessionmaker: Sessions
) -> None:
    settings = api_settings(database_url, task_queue).model_copy(update={"bootstrap_admin_key": "admin-please"})
    app = create_app(settings, client=temporal, sessionmaker=sessionmaker)

    with pytest.raises(StartupError) as refused:
        async with app.router.lifespan_context(app):
            pass

    assert "OMS_BOOTSTRAP_ADMIN_KEY" in str(refused.value)
    assert "admin-please" not in str(refused.value)
