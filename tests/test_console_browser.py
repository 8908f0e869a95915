"""The operator console in a real browser: Chromium driven by Playwright against the whole stack.

One stack (API, worker, stand-ins on the dev server, tests/stack.py) and one Chromium serve the
module; each test opens browser contexts of its own, so each starts signed out. Orders above the
review threshold wait in pending_review for an operator. Every page the tests open is watched for
JavaScript errors. With CONSOLE_SCREENSHOTS=1 the pages are also photographed into docs/ at both
sizes (the README shows them); a plain run writes nothing there.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from db.engine import create_sessionmaker
from models.tables import Base
from tests.browsers import chromium
from tests.builders import line, order_body
from tests.polling import NotYet, eventually
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.system

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
DOCS = Path(__file__).resolve().parent.parent / "docs"
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS") == "1"
# Above the review threshold (10,000.00): each waits for an operator.
FOR_REVIEW = [line("LAMP-004", 10, "1200.00")]
REVIEW_SKU = "LAMP-004"
# Of its own: the SKU's replenishment workflow is keyed by the SKU on a dev server other modules share.
SHORT_SKU = f"CHAIR-{uuid.uuid4().hex[:8].upper()}"
WORKFLOW_SECONDS = 60
# Where an approved order goes on to (a woken backorder from the second on).
PAST_REVIEW = ("allocating", "fulfilling", "shipped", "delivered")


class Console:
    """The stack as the browser reaches it, and what the module placed on it."""

    def __init__(self, stack: Stack, for_review: list[str], waiting: str) -> None:
        self.stack = stack
        self.for_review = for_review
        self.waiting = waiting
        self.errors: list[str] = []

    def url(self, path: str) -> str:
        return f"{self.stack.api_url}{path}"

    async def open(self, browser: Browser, viewport: ViewportSize = DESKTOP) -> tuple[BrowserContext, Page]:
        """A fresh context (signed out) and a page whose JavaScript errors are collected."""
        phone = viewport["width"] < 600
        context = await browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
        page = await context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: self._console(page, message.type, message.text))
        return context, page

    def _console(self, page: Page, kind: str, message: str) -> None:
        if kind == "error":
            self.errors.append(f"{page.url}: {message}")


@pytest.fixture(scope="module")
async def console(
    dev_server_env: WorkflowEnvironment, database_url: str, engine: AsyncEngine
) -> AsyncIterator[Console]:
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    sessionmaker = create_sessionmaker(engine)
    task_queue = f"test-console-{uuid.uuid4()}"
    async with running_stack(dev_server_env.client, database_url, sessionmaker, task_queue) as stack:
        await stack.count_stock(REVIEW_SKU, 100)
        await stack.count_stock(SHORT_SKU, 0)
        for_review = [
            await stack.place_order(order_body(lines=FOR_REVIEW, customer={"id": f"cust-desk-{n}"})) for n in range(6)
        ]
        waiting = await stack.place_order(
            order_body(lines=[line(SHORT_SKU, 3, "80.00")], customer={"id": "cust-chair"})
        )
        for order_id in for_review:
            await stack.wait_for_status(order_id, "pending_review")
        await stack.wait_for_status(waiting, "backordered")

        async def shortage_recorded() -> None:
            # The replenishment workflow records the shortage after the order is backordered.
            if waiting not in (await stack.shortages()).get(SHORT_SKU, {}).get("order_ids", []):
                raise NotYet(f"no open shortage of {SHORT_SKU} for {waiting} yet")

        await eventually(shortage_recorded, timeout=WORKFLOW_SECONDS)
        yield Console(stack, for_review, waiting)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
def no_script_errors(console: Console) -> Any:
    """Fails the test if any page it opened threw or logged a JavaScript error."""
    console.errors.clear()
    yield
    assert console.errors == []


async def sign_in(
    page: Page, console: Console, key: str, path: str = "/console/orders", lands: str | None = None
) -> None:
    """Open `path`, sign in on the page it sends to, and land on `path` again (or on `lands`)."""
    await page.goto(console.url(path))
    await expect(page).to_have_url(re.compile(r"/console/login\?next="))
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(console.url(lands or path))


async def shoot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        await page.screenshot(path=DOCS / f"console-{name}.png", full_page=True)


async def test_an_operator_searches_opens_an_order_from_the_keyboard_approves_it_and_signs_out(
    console: Console, browser: Browser, no_script_errors: None
) -> None:
    context, page = await console.open(browser)
    try:
        await sign_in(page, console, console.stack.keys.operator)
        await expect(page.locator(".key-name")).to_have_text("operations desk")
        await expect(page.locator(".role")).to_have_text("operator")

        # "/" jumps to the search box; the list keeps the orders with that SKU, newest first.
        await page.keyboard.press("/")
        await page.keyboard.type(REVIEW_SKU)
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(re.compile(rf"q={REVIEW_SKU}"))
        rows = page.locator("tr[data-row]")
        await expect(rows).to_have_count(len(console.for_review))
        assert await rows.evaluate_all("rows => rows.map(row => row.dataset.order)") == console.for_review[::-1]

        # j, j moves to the second row; o opens it.
        await page.keyboard.press("j")
        await page.keyboard.press("j")
        await expect(rows.nth(1)).to_have_class(re.compile("current"))
        await page.keyboard.press("o")
        opened = console.for_review[-2]
        await expect(page).to_have_url(console.url(f"/console/orders/{opened}"))
        await expect(page.locator("#order-status")).to_have_text("pending_review")
        workflow = page.get_by_role("link", name=f"order-{opened}")
        await expect(workflow).to_have_attribute("href", re.compile(rf"/namespaces/default/workflows/order-{opened}$"))

        # a approves the order on its page.
        await page.keyboard.press("a")
        await expect(page.get_by_role("status").filter(has_text="Approved.")).to_be_visible()
        order = await console.stack.wait_for_status(opened, *PAST_REVIEW, timeout=WORKFLOW_SECONDS)
        assert (order["review"]["decision"], order["review"]["reviewed_by"]) == ("approved", "operator")

        # ? lists the shortcuts; Escape closes the list; g i goes to the inventory.
        await page.keyboard.press("?")
        await expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
        await page.keyboard.press("Escape")
        await expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_hidden()
        await page.keyboard.press("g")
        await page.keyboard.press("i")
        await expect(page).to_have_url(console.url("/console/inventory"))

        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(console.url("/console/login"))
        await page.goto(console.url("/console/orders"))
        await expect(page).to_have_url(re.compile(r"/console/login\?next=/console/orders$"))
    finally:
        await context.close()


async def test_a_cancellation_asks_for_its_reason(console: Console, browser: Browser, no_script_errors: None) -> None:
    context, page = await console.open(browser)
    target = console.for_review[0]
    try:
        await sign_in(page, console, console.stack.keys.operator, f"/console/orders/{target}")
        # Enter in the reason field sends nothing (the form's first button is Approve).
        reason = page.get_by_role("textbox", name="Reason or note")
        await reason.fill("not sure yet")
        await reason.press("Enter")
        await page.wait_for_load_state()
        await expect(page.locator("#order-status")).to_have_text("pending_review")
        await reason.fill("")
        await reason.press("Escape")
        await page.keyboard.press("c")
        dialog = page.get_by_role("dialog", name="Why cancel this order?")
        await expect(dialog).to_be_visible()
        await dialog.get_by_role("textbox").fill("customer called to cancel")
        await dialog.get_by_role("button", name="Confirm").click()

        await expect(page.get_by_role("status").filter(has_text="Cancelled.")).to_be_visible()
        await expect(page.locator("#order-status")).to_have_text("cancelled")
        await expect(page.locator(".timeline")).to_contain_text("customer called to cancel")
    finally:
        await context.close()


async def test_purchasing_lands_on_inventory_receives_stock_for_a_waiting_order_and_never_sees_an_order(
    console: Console, browser: Browser, no_script_errors: None
) -> None:
    context, page = await console.open(browser)
    target = console.for_review[1]
    try:
        # Sent to sign in by an order's page, purchasing lands on inventory: orders are not its to read.
        await sign_in(page, console, console.stack.keys.purchasing, f"/console/orders/{target}", "/console/inventory")
        await expect(page.get_by_role("navigation").get_by_role("link", name="Orders")).to_have_count(0)
        shortages = page.locator("#shortages")
        await expect(shortages).to_contain_text(SHORT_SKU)
        await expect(shortages).to_contain_text(console.waiting)
        await expect(shortages.get_by_role("link")).to_have_count(0)

        receive = page.locator("#receive")
        await receive.get_by_label("SKU").fill(SHORT_SKU)
        await receive.get_by_label("Warehouse").fill("AMS")
        await receive.get_by_label("Units").fill("5")
        await receive.get_by_role("button", name="Receive").click()
        await expect(page.get_by_role("status")).to_have_text(f"5 units of {SHORT_SKU} received at AMS")
        await console.stack.wait_for_status(console.waiting, *PAST_REVIEW[1:], timeout=WORKFLOW_SECONDS)

        async def shortage_resolved() -> None:
            if SHORT_SKU in await console.stack.shortages():
                raise NotYet(f"the shortage of {SHORT_SKU} is still open")

        await eventually(shortage_resolved, timeout=WORKFLOW_SECONDS)
        await page.reload()
        await expect(page.locator("#shortages")).to_contain_text("No order is waiting for stock.")

        # An order's page, opened by hand, is refused as a page of the console.
        await page.goto(console.url(f"/console/orders/{target}"))
        await expect(page.get_by_role("heading", name="Not available")).to_be_visible()
        await expect(page.get_by_role("alert")).to_have_text("a purchasing key may not do this")
        await expect(page.locator("#order-status")).to_have_count(0)
        # The browser reports the refusal's status as a resource that failed to load: that one is expected.
        refused = f"{page.url}: Failed to load resource: the server responded with a status of 403 (Forbidden)"
        assert refused in console.errors
        console.errors.remove(refused)
        await page.get_by_role("link", name="Back to the console").click()
        await expect(page).to_have_url(console.url("/console/inventory"))

        # A forged approval, with the session's own token, is refused all the same.
        token = await page.locator("input[name=csrf]").first.get_attribute("value")
        forged = await page.request.post(
            console.url(f"/console/orders/{target}/actions"), form={"action": "approve", "csrf": token or ""}
        )
        assert forged.status == 403
        assert (await console.stack.order(target))["status"] == "pending_review"
    finally:
        await context.close()


async def test_an_operator_selects_three_orders_with_the_keyboard_and_approves_them_as_one_batch(
    console: Console, browser: Browser, no_script_errors: None
) -> None:
    context, page = await console.open(browser)
    try:
        await sign_in(
            page, console, console.stack.keys.operator, f"/console/orders?q={REVIEW_SKU}&status=pending_review"
        )
        rows = page.locator("tr[data-row]")
        waiting = await rows.evaluate_all("rows => rows.map(row => row.dataset.order)")
        assert len(waiting) >= 3
        for _ in range(3):
            await page.keyboard.press("j")
            await page.keyboard.press("x")
        await expect(page.locator("input[name=order_id]:checked")).to_have_count(3)
        await shoot(page, "batch-selected-desktop")

        await page.keyboard.press("a")
        await expect(page).to_have_url(re.compile(r"/console/bulk/[0-9a-f-]+$"))
        await expect(page.locator("#job-status")).to_have_text("completed", timeout=WORKFLOW_SECONDS * 1000)
        outcomes = page.locator("#outcomes tr[data-row]")
        await expect(outcomes).to_have_count(3)
        assert sorted(await outcomes.evaluate_all("rows => rows.map(row => row.dataset.order)")) == sorted(waiting[:3])
        await expect(page.locator("#outcomes .status-done")).to_have_count(3)
        await expect(page.locator("#job-counts")).to_contain_text("3 orders: 3 done, 0 refused, 0 failed")
        await shoot(page, "batch-desktop")
        for order_id in waiting[:3]:
            order = await console.stack.order(order_id)
            assert order["review"]["decision"] == "approved", order

        # The same action on an order already cancelled: refused, with the order's reason.
        await page.goto(console.url(f"/console/orders?q={console.for_review[0]}"))
        await page.keyboard.press("j")
        await page.keyboard.press("x")
        await page.keyboard.press("a")
        await expect(page.locator("#job-status")).to_have_text("completed", timeout=WORKFLOW_SECONDS * 1000)
        refused = page.locator("#outcomes tr[data-row]")
        await expect(refused.locator(".status-refused")).to_have_count(1)
        await expect(refused).to_contain_text("cancelled")
    finally:
        await context.close()


PAGES = {
    "sign-in": "/console/login",
    "orders": "/console/orders",
    "order": "/console/orders/{order_id}",
    "inventory": "/console/inventory",
    "dashboard": "/console/dashboard",
}


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_every_page_is_usable_on_a_desktop_and_on_a_phone(
    console: Console, browser: Browser, size: str, no_script_errors: None
) -> None:
    context, page = await console.open(browser, DESKTOP if size == "desktop" else PHONE)
    try:
        await page.goto(console.url(PAGES["sign-in"]))
        await shoot(page, f"sign-in-{size}")
        await assert_fits(page)
        await expect(page.get_by_role("button", name="Sign in")).to_be_in_viewport()
        await sign_in(page, console, console.stack.keys.admin)
        for name, path in PAGES.items():
            if name == "sign-in":
                continue
            await page.goto(console.url(path.format(order_id=console.for_review[-1])))
            await expect(page.locator("h1")).to_be_visible()
            await expect(page.get_by_role("navigation", name="Main")).to_be_in_viewport()
            await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
            await assert_fits(page)
            await shoot(page, f"{name}-{size}")
        await page.goto(console.url("/console/orders"))
        await expect(page.get_by_role("searchbox")).to_be_in_viewport()
        await expect(page.get_by_role("button", name="Approve")).to_be_visible()
    finally:
        await context.close()


async def assert_fits(page: Page) -> None:
    """Nothing sticks out sideways: wide tables scroll inside their own box, not the page."""
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the screen"
