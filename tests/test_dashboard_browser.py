"""The dashboard and purchasing pages in a real browser: charts drawn with the analytics API's numbers, the
forecast chart, accepting a suggestion; at desktop and phone widths, with no JavaScript error.

One stack for the module, the whole service in this process (tests/stack.py), over 90 days of demo
order history (scripts/demo_history.py, written as the order workflow writes its records), a few
orders in other states, a backorder and a return, and one forecast run; the dashboard's test reads
it, the purchasing test then accepts a suggestion. Chromium is Debian's (TEST_CHROMIUM), one per
module. With CONSOLE_SCREENSHOTS=1 the pages are saved as the README's screenshots in docs/.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from temporalio.testing import WorkflowEnvironment

from db.engine import create_sessionmaker
from db.orders import record_order, record_status
from models.forecast import FORECAST_WORKFLOW, ForecastRequest, ForecastRunSummary
from models.order import OrderState, OrderStatus, TimelineEvent
from models.records import RecordOrderInput, StatusChangeInput
from models.tables import Base, ReturnLineRow, ReturnRow, ShortageRow, StockRow
from scripts import demo_catalogue
from scripts.demo_history import seed_history
from tests import builders
from tests.browsers import chromium
from tests.conftest import TEST_KEYRING
from tests.stack import NotYet, Stack, eventually, running_stack
from tests.test_console_browser import assert_fits

pytestmark = pytest.mark.system

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
DOCS = Path(__file__).resolve().parent.parent / "docs"
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS") == "1"
# The SKU whose stock the test lowers so that the forecast run suggests buying it.
SHORT_SKU, SHORT_WAREHOUSE = "MUG-001", "WH-EAST"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def _record(
    session: AsyncSession, order_id: str, placed: datetime, steps: list[tuple[OrderStatus, datetime]]
) -> None:
    """An order of two tees recorded as its workflow records it: received at `placed`, then each step."""
    request = builders.order_request(lines=[builders.line("TEE-002", 2, "19.00")])
    workflow_id = f"order-{order_id}"
    received = RecordOrderInput(order_id=order_id, workflow_id=workflow_id, request=request, received_at=placed)
    await record_order(session, received, TEST_KEYRING)
    state = OrderState.received(order_id, workflow_id, request, placed)
    for seq, (status, at) in enumerate(steps, start=1):
        event = TimelineEvent(seq=seq, at=at, status=status, actor="test", event=status.value)
        state = state.model_copy(update={"status": status, "timeline": [*state.timeline, event], "updated_at": at})
        await record_status(session, StatusChangeInput.of(state, event, version=seq), TEST_KEYRING)


async def _other_orders(stack: Stack, today: date) -> None:
    """What the demo history lacks: orders received, cancelled, waiting for stock and shipped; a return."""
    placed = datetime.combine(today, time(9), tzinfo=UTC)
    async with stack.sessionmaker.begin() as session:
        await _record(session, "other-1", placed, [])
        await _record(session, "other-2", placed - timedelta(days=1), [(OrderStatus.CANCELLED, placed)])
        await _record(session, "other-3", placed - timedelta(days=2), [(OrderStatus.BACKORDERED, placed)])
        # Shipped 30 hours after it was placed, delivered a day later.
        shipped = placed - timedelta(days=4)
        await _record(
            session,
            "other-4",
            shipped,
            [
                (OrderStatus.SHIPPED, shipped + timedelta(hours=30)),
                (OrderStatus.DELIVERED, shipped + timedelta(hours=54)),
            ],
        )
        session.add(ShortageRow(sku="TEE-002", order_id="other-3", quantity=2, since=placed - timedelta(days=2)))
        returned_order = f"demo-history-{(today - timedelta(days=3)).isoformat()}"
        session.add(
            ReturnRow(
                return_id="ret-1",
                order_id=returned_order,
                workflow_id="return-ret-1",
                customer_id="demo-history",
                status="refunded",
                value=Decimal("25.00"),
                currency="EUR",
                last_seq=1,
                created_at=placed,
                updated_at=placed,
            )
        )
        await session.flush()
        session.add(
            ReturnLineRow(
                return_id="ret-1", line_no=1, order_id=returned_order, sku="MUG-001", quantity=2, reason="damaged"
            )
        )
        await session.execute(
            update(StockRow).where(StockRow.sku == SHORT_SKU, StockRow.warehouse == SHORT_WAREHOUSE).values(on_hand=5)
        )


@pytest.fixture(scope="module")
async def stack(dev_server_env: WorkflowEnvironment, database_url: str, engine: AsyncEngine) -> AsyncIterator[Stack]:
    """The service over the demo catalogue and history, the other orders, and one forecast run as of today."""
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    sessionmaker = create_sessionmaker(engine)
    today = datetime.now(UTC).date()
    task_queue = f"test-dashboard-{uuid.uuid4()}"
    async with running_stack(dev_server_env.client, database_url, sessionmaker, task_queue) as running:
        await demo_catalogue.seed(sessionmaker)
        await seed_history(sessionmaker, TEST_KEYRING, today)
        await _other_orders(running, today)
        await running.temporal.execute_workflow(
            FORECAST_WORKFLOW,
            ForecastRequest(history_days=100, chunk_size=6, as_of=today),
            id=f"demand-forecast-{task_queue}",
            task_queue=task_queue,
            result_type=ForecastRunSummary,
        )
        yield running


async def signed_in(
    browser: Browser, stack: Stack, key: str, path: str, viewport: ViewportSize
) -> tuple[Page, list[str]]:
    """A page of a fresh context at `path`, signed in with `key` on the way; the errors it meets."""
    phone = viewport["width"] < 600
    context = await browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    await page.goto(f"{stack.api_url}{path}")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{stack.api_url}{path}")
    return page, errors


async def marks(page: Page, selector: str) -> dict[tuple[str, str], str]:
    """(category, series) → the figure each mark of `selector` carries, read from the drawing."""
    found: list[list[str]] = await page.eval_on_selector_all(
        selector,
        "els => els.map(e => [e.dataset.category, e.dataset.series || '', e.dataset.value, "
        "e.querySelector('title').textContent])",
    )
    for category, _, value, title in found:
        assert category in title and value in title, (category, value, title)
    return {(category, series): value for category, series, value, _ in found}


def number(value: Any) -> str:
    figure = float(value)
    return str(int(figure)) if figure.is_integer() else f"{figure:.2f}"


async def test_the_dashboard_draws_the_analytics_apis_numbers_and_a_forecast(stack: Stack, browser: Browser) -> None:
    summary = (await stack.operator.get("/analytics/summary")).json()
    series = (await stack.operator.get("/analytics/orders")).json()["items"]
    returns = (await stack.operator.get("/analytics/returns")).json()
    forecast = (await stack.operator.get(f"/forecast/{SHORT_SKU}")).json()

    page, errors = await signed_in(browser, stack, stack.keys.operator, f"/console/dashboard?sku={SHORT_SKU}", DESKTOP)
    await expect(page.locator("#orders-chart")).to_be_visible()
    orders = await marks(page, "#orders-chart rect.bar")
    revenue = await marks(page, "#revenue-EUR-chart rect.bar")
    rates = await marks(page, "#return-skus-chart rect.bar")
    means = await page.eval_on_selector_all("#forecast-chart circle.point", "els => els.map(e => e.dataset.value)")
    first_day = await page.locator("table[data-chart=orders] tbody tr").first.locator("th, td").all_text_contents()
    orders_figure = await page.locator('[data-figure="Orders"]').inner_text()
    if SCREENSHOTS:
        await page.screenshot(path=DOCS / "dashboard.png", full_page=True)
    await page.set_viewport_size(PHONE)
    await assert_fits(page)
    if SCREENSHOTS:
        await page.screenshot(path=DOCS / "dashboard-phone.png", full_page=True)

    assert errors == []
    assert orders_figure == str(summary["current"]["orders"])
    assert orders == {
        (item["start"], status): str(count) for item in series for status, count in item["by_status"].items()
    }
    assert revenue == {
        (item["start"], "EUR"): number(amount["amount"])
        for item in series
        for amount in item["revenue"]
        if amount["currency"] == "EUR"
    }
    assert len(revenue) >= 28 and {series for _, series in orders} >= {"delivered", "received", "cancelled"}
    # The first day's row of the table beside the chart: its statuses, then the day's total.
    assert first_day[0] == series[0]["start"] and first_day[-1] == str(series[0]["orders"])
    assert rates == {(item["sku"], ""): number(round(item["return_rate"] * 100, 2)) for item in returns["skus"]}
    assert rates[(SHORT_SKU, "")] != "0"
    assert means == [number(round(point["mean"], 2)) for point in forecast["points"]]
    assert len(means) == 28


async def test_purchasing_accepts_a_suggestion_and_purchasing_gets_one_signed_request(
    stack: Stack, browser: Browser
) -> None:
    suggestions = (await stack.purchasing.get("/purchasing/suggestions")).json()["items"]
    chosen = next(s for s in suggestions if (s["sku"], s["warehouse"]) == (SHORT_SKU, SHORT_WAREHOUSE))

    page, errors = await signed_in(browser, stack, stack.keys.purchasing, "/console/purchasing", PHONE)
    row = page.locator(f'#suggestions tr[data-suggestion="{chosen["suggestion_id"]}"]')
    await expect(row.locator("td[data-label=Buy]")).to_have_text(str(chosen["quantity"]))
    await expect(page.locator(f"#forecast-{SHORT_SKU}-chart circle.point")).to_have_count(28)
    await assert_fits(page)
    if SCREENSHOTS:
        await page.set_viewport_size(DESKTOP)
        await page.screenshot(path=DOCS / "purchasing.png", full_page=True)
        await page.set_viewport_size(PHONE)
        await page.screenshot(path=DOCS / "purchasing-phone.png", full_page=True)
    await row.get_by_role("button", name="Accept").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Accepted: {chosen['quantity']} units of {SHORT_SKU}")
    decided = page.locator(f'#decided tr[data-suggestion="{chosen["suggestion_id"]}"]')
    await expect(decided.locator(".status")).to_have_text("accepted")
    await expect(row).to_have_count(0)

    async def one_request() -> list[dict[str, Any]]:
        requests = await stack.records("purchase_requests")
        if not requests:
            raise NotYet("purchasing has not been sent the request yet")
        return requests

    requests: list[dict[str, Any]] = await eventually(one_request, timeout=30, interval=0.2)
    accepted = (await stack.purchasing.get("/purchasing/suggestions", params={"status": "accepted"})).json()["items"]

    assert errors == []
    assert [item["suggestion_id"] for item in accepted] == [chosen["suggestion_id"]]
    assert len(requests) == 1
    assert requests[0]["signature_valid"] is True, requests[0]["signature_problem"]
    assert (requests[0]["sku"], requests[0]["quantity"]) == (SHORT_SKU, chosen["quantity"])
