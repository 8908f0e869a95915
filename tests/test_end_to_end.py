"""The whole service end to end, as clients and operators use it.

Real Temporal dev server, real PostgreSQL, the real worker with every real activity, the
stand-in outside systems and the API, all over real HTTP (tests/stack.py). Every step goes
through the API, as a client would; the stand-ins' control endpoints show what the outside
systems received. Each test uses SKUs of its own, since replenishment workflows (one per SKU)
outlive a test on the session's dev server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.names import SA_CUSTOMER_ID, SA_ORDER_STATUS, SA_ORDER_TOTAL, SA_SKUS, order_workflow_id
from models.tables import StockRow
from tests import builders
from tests.builders import AMSTERDAM, line
from tests.stack import NotYet, Stack, eventually, statuses_of

Sessions = async_sessionmaker[AsyncSession]

CENT = Decimal("0.01")
TAX_RATE = Decimal("0.20")  # the finance stand-in's default
# Long enough for exponential retries against a provider that fails every other call.
FAULTY_DEADLINE = 240.0


def new_sku(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8].upper()}"


def order_body(lines: list[dict[str, Any]], customer_id: str = "cust-1001", **changes: Any) -> dict[str, Any]:
    customer = {"id": customer_id, "phone": "+31 20 555 0100"}
    return builders.order_body(lines=lines, customer=customer, address=AMSTERDAM, **changes)


def statuses_in_order(timeline: list[dict[str, Any]]) -> list[str]:
    """The statuses the order went through, each once, in the order it reached them."""
    seen: list[str] = []
    for event in timeline:
        if not seen or seen[-1] != event["status"]:
            seen.append(event["status"])
    return seen


def of_order(records: list[dict[str, Any]], field: str, order_id: str) -> list[dict[str, Any]]:
    return [record for record in records if record[field] == order_id]


async def assert_booked_and_invoiced_once(stack: Stack, order_ids: list[str]) -> None:
    """Each order has exactly one booking and one invoice at the outside systems, each applied once."""
    bookings, invoices = await stack.records("bookings"), await stack.records("invoices")
    for order_id in order_ids:
        [booking] = of_order(bookings, "reference", order_id)
        [invoice] = of_order(invoices, "order_id", order_id)
        assert booking["applied"] == 1
        assert [(step["action"], step["applied"]) for step in booking["history"]] == [("confirm", 1)]
        assert invoice["applied"] == 1
        assert invoice["status"] == "issued"


# 1. The happy path


async def test_an_order_is_allocated_invoiced_shipped_and_delivered(stack: Stack) -> None:
    mug, book = new_sku("MUG"), new_sku("BOOK")
    await stack.count_stock(mug, 10, warehouse="AMS")
    await stack.count_stock(book, 5, warehouse="BER")
    customer_id = f"cust-{uuid.uuid4().hex[:8]}"

    order_id = await stack.place_order(
        order_body([line(mug, 3, "12.50"), line(book, 1, "29.00")], customer_id=customer_id)
    )
    order = await stack.wait_for_status(order_id, "delivered")

    assert [(item["sku"], item["quantity"], item["allocations"]) for item in order["lines"]] == [
        (mug, 3, [{"warehouse": "AMS", "quantity": 3}]),
        (book, 1, [{"warehouse": "BER", "quantity": 1}]),
    ]
    assert Decimal(order["total"]) == Decimal("66.50")
    shipment, invoice = order["shipment"], order["invoice"]
    assert shipment["status"] == "delivered"
    assert shipment["tracking_number"]
    shipping = Decimal(shipment["rate"])
    assert Decimal(invoice["subtotal"]) == Decimal("66.50")
    assert Decimal(invoice["tax"]) == ((Decimal("66.50") + shipping) * TAX_RATE).quantize(CENT, ROUND_HALF_UP)
    assert Decimal(invoice["total"]) == Decimal("66.50") + shipping + Decimal(invoice["tax"])
    assert order["review"]["decision"] == "approved"
    assert statuses_in_order(order["timeline"]) == ["received", "allocating", "fulfilling", "shipped", "delivered"]
    assert [event["seq"] for event in order["timeline"]] == list(range(1, len(order["timeline"]) + 1))

    delivered = (await stack.api.get("/orders", params={"status": "delivered"})).json()["items"]
    assert order_id in [item["order_id"] for item in delivered]

    for sku, on_hand in ((mug, 7), (book, 4)):
        level = await stack.stock(sku)
        assert (level["on_hand"], level["reserved"]) == (on_hand, 0)

    async def searchable_as_delivered() -> dict[str, Any]:
        attributes = (await stack.temporal.get_workflow_handle(order["workflow_id"]).describe()).typed_search_attributes
        if attributes.get(SA_ORDER_STATUS) != "delivered":
            raise NotYet(f"OrderStatus is {attributes.get(SA_ORDER_STATUS)}")
        return {
            "customer": attributes.get(SA_CUSTOMER_ID),
            "total": attributes.get(SA_ORDER_TOTAL),
            "skus": attributes.get(SA_SKUS),
        }

    assert await eventually(searchable_as_delivered, timeout=10) == {
        "customer": customer_id,
        "total": 66.5,
        "skus": sorted([mug, book]),
    }

    await assert_booked_and_invoiced_once(stack, [order_id])
    [booking] = of_order(await stack.records("bookings"), "reference", order_id)
    assert (booking["booking_id"], booking["tracking_number"], booking["status"]) == (
        shipment["booking_id"],
        shipment["tracking_number"],
        "delivered",
    )
    [issued] = of_order(await stack.records("invoices"), "order_id", order_id)
    assert issued["invoice_id"] == invoice["invoice_id"]


# 2. A hot SKU


class StockSampler:
    """Reads the SKU's stock rows over and over while orders compete for them."""

    def __init__(self, sessionmaker: Sessions, sku: str) -> None:
        self._sessionmaker = sessionmaker
        self._sku = sku
        self._stop = asyncio.Event()
        self.samples = 0
        self.violations: list[tuple[str, int, int]] = []

    async def run(self) -> None:
        query = select(StockRow.warehouse, StockRow.on_hand, StockRow.reserved).where(StockRow.sku == self._sku)
        while not self._stop.is_set():
            async with self._sessionmaker() as session:
                rows = (await session.execute(query)).all()
            self.samples += 1
            self.violations += [
                (warehouse, on_hand, reserved) for warehouse, on_hand, reserved in rows if not 0 <= reserved <= on_hand
            ]
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()


HOT_ORDERS = 200
HOT_STOCK = {"AMS": 30, "BER": 20}
SETTLED = {"shipped", "delivered", "cancelled", "failed", "rejected"}


async def test_a_hot_sku_sells_each_unit_once_and_cancels_the_rest(stack: Stack) -> None:
    sku = new_sku("HOT")
    for warehouse, on_hand in HOT_STOCK.items():
        await stack.count_stock(sku, on_hand, warehouse=warehouse)
    units = sum(HOT_STOCK.values())
    sampler = StockSampler(stack.sessionmaker, sku)
    sampling = asyncio.create_task(sampler.run())
    started = time.monotonic()

    order_ids = await asyncio.gather(
        *(
            stack.place_order(order_body([line(sku, 1, "9.99")], customer_id=f"hot-{n:03d}", backorder_policy="cancel"))
            for n in range(HOT_ORDERS)
        )
    )
    placed = time.monotonic() - started

    async def all_settled() -> list[dict[str, Any]]:
        response = await stack.api.get("/orders", params={"sku": sku, "limit": HOT_ORDERS})
        items: list[dict[str, Any]] = response.json()["items"]
        moving = [item for item in items if item["status"] not in SETTLED]
        if len(items) < HOT_ORDERS or moving:
            raise NotYet(f"{len(items)} orders recorded, {len(moving)} still moving: {statuses_of(items)}")
        return items

    try:
        orders = await eventually(all_settled, timeout=180, interval=0.5)
    finally:
        settled = time.monotonic() - started
        sampler.stop()
        await sampling
    print(f"\nhot SKU: {HOT_ORDERS} orders placed in {placed:.1f} s, all settled after {settled:.1f} s")

    assert len(set(order_ids)) == HOT_ORDERS
    counts = statuses_of(orders)
    assert counts.get("shipped", 0) + counts.get("delivered", 0) == units, counts
    assert counts.get("cancelled", 0) == HOT_ORDERS - units, counts
    assert sampler.samples > 10
    assert sampler.violations == []
    level = await stack.stock(sku)
    assert (level["on_hand"], level["reserved"]) == (0, 0)

    cancelled = [item["order_id"] for item in orders if item["status"] == "cancelled"]
    for chunk in range(0, len(cancelled), 25):
        states = await asyncio.gather(*(stack.order(order_id) for order_id in cancelled[chunk : chunk + 25]))
        for state in states:
            assert state["timeline"][-1]["event"] == "stock shortage", state["timeline"][-1]
            assert all(not item["allocations"] for item in state["lines"])

    sold = {item["order_id"] for item in orders if item["status"] in {"shipped", "delivered"}}
    invoices = await stack.records("invoices")
    assert {invoice["order_id"] for invoice in invoices} == sold
    assert len(invoices) == units
    live_bookings = [booking for booking in await stack.records("bookings") if booking["status"] != "cancelled"]
    assert {booking["reference"] for booking in live_bookings} == sold
    assert len(live_bookings) == units


# 3. Idempotency-Key


async def test_concurrent_posts_with_one_idempotency_key_start_one_order(stack: Stack) -> None:
    sku = new_sku("KEY")
    await stack.count_stock(sku, 5)
    customer_id = f"key-{uuid.uuid4().hex[:8]}"
    body = order_body([line(sku, 1, "10.00")], customer_id=customer_id)
    key = f"checkout-{uuid.uuid4()}"

    responses = await asyncio.gather(
        *(stack.api.post("/orders", json=body, headers={"Idempotency-Key": key}) for _ in range(10))
    )

    assert [response.status_code for response in responses] == [202] * 10
    [order_id] = {response.json()["order_id"] for response in responses}
    query = f"WorkflowId = '{order_workflow_id(order_id)}'"

    async def visible() -> int:
        count = (await stack.temporal.count_workflows(query)).count
        if not count:
            raise NotYet("the workflow is not visible yet")
        return count

    assert await eventually(visible, timeout=10) == 1
    assert len([run async for run in stack.temporal.list_workflows(query)]) == 1
    assert (await stack.temporal.count_workflows(f"CustomerId = '{customer_id}'")).count == 1

    await stack.wait_for_status(order_id, "delivered")
    listed = (await stack.api.get("/orders", params={"customer_id": customer_id})).json()["items"]
    assert [item["order_id"] for item in listed] == [order_id]
    await assert_booked_and_invoiced_once(stack, [order_id])


# 4. Failing outside systems


FAULTS = {
    "failing": {"failure_rate": 0.5},
    "answer_lost_after_the_effect": {"drop_rate": 0.5, "drop_after_effect": True},
}
# Three orders, so that the faults strike at least once but for a 1 in 2**15 chance.
FAULTY_ORDERS = 3


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_orders_are_delivered_and_settled_once_through_finance_and_carrier_faults(
    stack: Stack, fault: str
) -> None:
    sku = new_sku("FLAKY")
    await stack.count_stock(sku, 10)
    for service in ("finance", "carrier"):
        await stack.set_fault(service, **FAULTS[fault])
    started = time.monotonic()

    order_ids = [await stack.place_order(order_body([line(sku, 1, "15.00")])) for _ in range(FAULTY_ORDERS)]
    await asyncio.gather(
        *(stack.wait_for_status(order_id, "delivered", timeout=FAULTY_DEADLINE) for order_id in order_ids)
    )
    struck = stack.standin_answers.count("finance", 503) + stack.standin_answers.count("carrier", 503)
    print(f"\n{fault}: {FAULTY_ORDERS} orders delivered after {time.monotonic() - started:.1f} s, {struck} faults")

    assert struck > 0
    await assert_booked_and_invoiced_once(stack, order_ids)
    assert (await stack.stock(sku))["on_hand"] == 10 - FAULTY_ORDERS


# 5. Backorders through the replenishment workflow


async def test_a_backordered_order_is_delivered_once_stock_is_received(stack: Stack) -> None:
    sku = new_sku("BACK")
    await stack.count_stock(sku, 0)

    order_id = await stack.place_order(order_body([line(sku, 3, "20.00")]))
    await stack.wait_for_status(order_id, "backordered")

    async def listed() -> dict[str, Any]:
        shortage = (await stack.shortages()).get(sku)
        if shortage is None:
            raise NotYet(f"{sku} is not listed as short")
        return shortage

    shortage = await eventually(listed, timeout=30)
    assert (shortage["outstanding_quantity"], shortage["order_ids"]) == (3, [order_id])

    async def purchasing_told() -> list[dict[str, Any]]:
        notices = [notice for notice in await stack.records("shortages") if notice["sku"] == sku]
        if not notices:
            raise NotYet("purchasing has not been told")
        return notices

    [notice] = await eventually(purchasing_told, timeout=30)
    assert (notice["order_id"], notice["quantity"], notice["outstanding_quantity"]) == (order_id, 3, 3)

    level = await stack.receive_stock(sku, 5)
    assert level["on_hand"] == 5

    order = await stack.wait_for_status(order_id, "delivered")
    assert order["lines"][0]["allocations"] == [{"warehouse": "AMS", "quantity": 3}]
    assert "backordered" in statuses_in_order(order["timeline"])
    stock = await stack.stock(sku)
    assert (stock["on_hand"], stock["reserved"]) == (2, 0)

    async def no_longer_short() -> None:
        if sku in await stack.shortages():
            raise NotYet(f"{sku} is still listed as short")

    await eventually(no_longer_short, timeout=10)


async def test_a_receipt_covering_only_the_first_backordered_order_wakes_only_that_one(stack: Stack) -> None:
    sku = new_sku("FIFO")
    await stack.count_stock(sku, 0)

    async def waiting(order_ids: list[str], outstanding: int) -> None:
        shortage = (await stack.shortages()).get(sku)
        assert shortage is not None, f"{sku} is not listed as short"
        assert (shortage["order_ids"], shortage["outstanding_quantity"]) == (order_ids, outstanding)

    first = await stack.place_order(order_body([line(sku, 2, "20.00")], customer_id="first-customer"))
    await stack.wait_for_status(first, "backordered")
    await eventually(lambda: waiting([first], 2), timeout=30)
    second = await stack.place_order(order_body([line(sku, 2, "20.00")], customer_id="second-customer"))
    await stack.wait_for_status(second, "backordered")
    await eventually(lambda: waiting([first, second], 4), timeout=30)

    await stack.receive_stock(sku, 3)

    await stack.wait_for_status(first, "delivered")
    await eventually(lambda: waiting([second], 2), timeout=10)
    assert (await stack.order(second))["status"] == "backordered"
    stock = await stack.stock(sku)
    assert (stock["on_hand"], stock["reserved"]) == (1, 0)


# 6. Operators: manual review and cancellation


async def test_an_order_above_the_review_threshold_is_delivered_once_an_operator_approves(stack: Stack) -> None:
    sku = new_sku("BIG")
    await stack.count_stock(sku, 5)

    order_id = await stack.place_order(order_body([line(sku, 2, "6000.00")]))
    pending = await stack.wait_for_status(order_id, "pending_review")
    assert pending["review"]["decision"] == "manual"
    assert (await stack.stock(sku))["reserved"] == 0

    approval = {"decision": "approve", "note": "known buyer"}
    response = await stack.operator.post(f"/orders/{order_id}/review", json=approval)

    assert response.status_code == 200, response.text
    order = await stack.wait_for_status(order_id, "delivered")
    assert (order["review"]["decision"], order["review"]["reviewed_by"], order["review"]["note"]) == (
        "approved",
        "operator",
        "known buyer",
    )
    assert statuses_in_order(order["timeline"])[:3] == ["received", "pending_review", "allocating"]
    assert (await stack.stock(sku))["on_hand"] == 3


async def test_an_order_above_the_review_threshold_is_rejected_by_an_operator(stack: Stack) -> None:
    sku = new_sku("BIG")
    await stack.count_stock(sku, 5)

    order_id = await stack.place_order(order_body([line(sku, 2, "6000.00")]))
    await stack.wait_for_status(order_id, "pending_review")

    rejection = {"decision": "reject", "note": "fraud check"}
    response = await stack.operator.post(f"/orders/{order_id}/review", json=rejection)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "rejected"
    order = await stack.wait_for_status(order_id, "rejected")
    assert (order["review"]["decision"], order["review"]["reviewed_by"]) == ("rejected", "operator")
    stock = await stack.stock(sku)
    assert (stock["on_hand"], stock["reserved"]) == (5, 0)
    assert of_order(await stack.records("invoices"), "order_id", order_id) == []


async def test_a_delivered_order_cannot_be_cancelled(stack: Stack) -> None:
    sku = new_sku("DONE")
    await stack.count_stock(sku, 5)
    order_id = await stack.place_order(order_body([line(sku, 1, "10.00")]))
    await stack.wait_for_status(order_id, "delivered")

    response = await stack.api.post(f"/orders/{order_id}/cancel", json={"reason": "changed my mind"})

    assert response.status_code == 409
    assert response.json() == {"detail": "order is delivered"}
    assert (await stack.order(order_id))["status"] == "delivered"
    assert (await stack.stock(sku))["on_hand"] == 4


async def test_a_backordered_order_is_cancelled_without_touching_stock(stack: Stack) -> None:
    sku = new_sku("WAIT")
    await stack.count_stock(sku, 0)
    order_id = await stack.place_order(order_body([line(sku, 4, "10.00")]))
    await stack.wait_for_status(order_id, "backordered")
    before = await stack.stock(sku)

    response = await stack.api.post(f"/orders/{order_id}/cancel", json={"reason": "found it elsewhere"})

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["cancellation_reason"]) == ("cancelled", "found it elsewhere")
    order = await stack.wait_for_status(order_id, "cancelled")
    assert order["cancellation_reason"] == "found it elsewhere"
    assert await stack.stock(sku) == before
    assert (before["on_hand"], before["reserved"]) == (0, 0)

    async def withdrawn() -> None:
        if sku in await stack.shortages():
            raise NotYet(f"{sku} is still listed as short")

    await eventually(withdrawn, timeout=15)
