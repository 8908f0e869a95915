"""Changing an order before its invoice, on the time-skipping server with every outside step faked.

Each test changes an order in one of the statuses that allow it and checks what a customer and the
warehouse would see: the lines and revision of the order, the stock held, the carrier's bookings.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WithStartWorkflowOperation, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from models import names
from models.changes import ChangeCommand
from models.order import (
    Address,
    BackorderPolicy,
    OrderInput,
    OrderLine,
    OrderState,
    OrderStatus,
    ReviewCommand,
    ReviewDecision,
    ReviewOutcome,
)
from tests import builders
from tests.fakes import refusal
from tests.polling import until
from tests.test_order_workflow import SHORT_TASK, Harness, order_request, running_harness
from workflows.order import OrderWorkflow

STOCK = {"MUG-1": 10, "TEE-2": 10, "CUP-9": 10}
PARIS = Address(name="Ada Lovelace", line1="1 Rue de Rivoli", city="Paris", postal_code="75001", country="FR")

Handle = WorkflowHandle[OrderWorkflow, OrderState]


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Harness]:
    async with running_harness(time_skipping_env, task_queue, STOCK) as running:
        yield running


def lines(**quantities: int) -> list[OrderLine]:
    return [OrderLine(sku=sku, quantity=quantity, unit_price=Decimal("12.50")) for sku, quantity in quantities.items()]


async def change(handle: Handle, **fields: Any) -> OrderState:
    return await handle.execute_update(OrderWorkflow.change, ChangeCommand(actor="client", **fields))


def held(harness: Harness, order_id: str) -> dict[str, int]:
    """Units the order holds per SKU, as the stock ledger has them."""
    units: dict[str, int] = {}
    for (holder, _, _), (sku, quantity) in harness.fakes.held.items():
        if holder == order_id:
            units[sku] = units.get(sku, 0) + quantity
    return units


def live_bookings(harness: Harness, order_id: str) -> list[str]:
    return [
        booking
        for booking, draft in harness.fakes.bookings.items()
        if draft.shipment.order_id == order_id and booking not in harness.fakes.cancelled_bookings
    ]


def quantities(state: OrderState) -> dict[str, int]:
    return {line.sku: line.quantity for line in state.lines}


async def refused(handle: Handle, **fields: Any) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await change(handle, **fields)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def test_an_order_changed_while_received_is_allocated_and_shipped_as_changed(harness: Harness) -> None:
    harness.fakes.gates["review_order"] = gate = asyncio.Event()
    # The review is a local step: the change reaches the order when its workflow task next heartbeats.
    handle = await harness.start(task_timeout=SHORT_TASK)
    await harness.until(handle, OrderStatus.RECEIVED)

    changing = asyncio.create_task(change(handle, lines=lines(**{"MUG-1": 4, "TEE-2": 1}), shipping_address=PARIS))
    await asyncio.sleep(SHORT_TASK.total_seconds())
    assert (await handle.query(OrderWorkflow.status)).status == OrderStatus.RECEIVED
    gate.set()
    after = await changing

    assert (after.revision, quantities(after), after.shipping_address) == (2, {"MUG-1": 4, "TEE-2": 1}, PARIS)
    final = await harness.deliver(handle)
    assert held(harness, final.order_id) == {"MUG-1": 4, "TEE-2": 1}
    assert harness.fakes.stock == {"MUG-1": 6, "TEE-2": 9, "CUP-9": 10}
    assert live_bookings(harness, final.order_id) == [f"B-{final.order_id}-r2"]
    assert harness.fakes.bookings[f"B-{final.order_id}-r2"].shipment.address == PARIS
    assert final.invoice is not None and final.invoice.subtotal == Decimal("67.50")


async def test_an_order_waiting_for_review_takes_more_and_added_lines_then_allocates_them(harness: Harness) -> None:
    harness.fakes.review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["customer is flagged"])
    handle = await harness.start()
    await harness.until(handle, OrderStatus.PENDING_REVIEW)

    after = await change(handle, lines=lines(**{"MUG-1": 5, "TEE-2": 1, "CUP-9": 2}), note="two cups too")

    assert after.status == OrderStatus.PENDING_REVIEW
    assert (after.revision, quantities(after), after.total) == (
        2,
        {"MUG-1": 5, "TEE-2": 1, "CUP-9": 2},
        Decimal("100.00"),
    )
    assert [line.line_no for line in after.lines] == [1, 2, 3]
    entry = after.timeline[-1]
    assert (entry.event, entry.actor) == ("order changed", "client")
    assert entry.detail == "revision 2: CUP-9 x2 added; MUG-1 2→5 (two cups too)"
    assert held(harness, after.order_id) == {}
    assert harness.fakes.recorded_changes[-1].state.revision == 2

    await handle.execute_update(OrderWorkflow.approve, ReviewCommand(actor="operator"))
    final = await harness.deliver(handle)
    assert held(harness, final.order_id) == {"MUG-1": 5, "TEE-2": 1, "CUP-9": 2}
    assert {line.sku: line.quantity for line in harness.fakes.bookings[f"B-{final.order_id}-1"].shipment.lines} == {
        "MUG-1": 5,
        "TEE-2": 1,
        "CUP-9": 2,
    }


async def test_a_change_sent_during_allocation_waits_for_it_and_moves_stock_once(harness: Harness) -> None:
    harness.fakes.gates["reserve_line"] = gate = asyncio.Event()
    handle = await harness.start()
    await harness.until(handle, OrderStatus.ALLOCATING)

    changing = asyncio.create_task(change(handle, lines=lines(**{"MUG-1": 1, "CUP-9": 3})))
    await asyncio.sleep(0.2)
    gate.set()
    after = await changing

    # The allocation reserved the lines as placed; the change then released and reserved what it changed.
    assert after.status == OrderStatus.FULFILLING
    assert (after.revision, quantities(after)) == (2, {"MUG-1": 1, "CUP-9": 3})
    assert held(harness, after.order_id) == {"MUG-1": 1, "CUP-9": 3}
    assert harness.fakes.stock == {"MUG-1": 9, "TEE-2": 10, "CUP-9": 7}
    assert (harness.fakes.calls["reserve_line"], harness.fakes.calls["replace_lines"]) == (2, 1)
    assert [(line.line_no, line.allocations[0].quantity) for line in after.lines] == [(1, 1), (3, 3)]
    final = await harness.deliver(handle)
    assert final.status == OrderStatus.DELIVERED
    assert live_bookings(harness, final.order_id) == [f"B-{final.order_id}-r2"]
    assert final.invoice is not None and final.invoice.subtotal == Decimal("55.00")


async def test_a_backordered_order_without_its_short_line_allocates_at_once(harness: Harness) -> None:
    harness.fakes.stock["TEE-2"] = 0
    handle = await harness.start()
    await harness.until(handle, OrderStatus.BACKORDERED)

    after = await change(handle, lines=lines(**{"MUG-1": 3}))

    assert (after.revision, quantities(after)) == (2, {"MUG-1": 3})
    final = await harness.deliver(handle)
    assert held(harness, final.order_id) == {"MUG-1": 3}
    assert harness.fakes.stock == {"MUG-1": 7, "TEE-2": 0, "CUP-9": 10}
    # The first round's draft was cancelled with the shortage; the round after the change booked MUG-1 alone.
    assert live_bookings(harness, final.order_id) == [f"B-{final.order_id}-2"]
    assert [each.sku for each in harness.fakes.bookings[f"B-{final.order_id}-2"].shipment.lines] == ["MUG-1"]


async def test_a_backordered_order_changed_for_more_than_there_is_stays_backordered(harness: Harness) -> None:
    harness.fakes.stock["TEE-2"] = 0
    handle = await harness.start()
    await harness.until(handle, OrderStatus.BACKORDERED)

    await change(handle, lines=lines(**{"MUG-1": 2, "TEE-2": 4}))

    await until(lambda: len(harness.fakes.reported) == 2, timeout=10, interval=0.02)
    state = await harness.until(handle, OrderStatus.BACKORDERED)
    assert [(report.sku, report.quantity) for report in harness.fakes.reported] == [("TEE-2", 1), ("TEE-2", 4)]
    assert held(harness, state.order_id) == {}
    assert harness.fakes.stock["MUG-1"] == 10


async def test_an_order_changed_in_fulfilling_before_its_invoice_is_invoiced_as_changed(harness: Harness) -> None:
    harness.fakes.gates["reserve_line"] = allocating = asyncio.Event()
    handle = await harness.start()
    await harness.until(handle, OrderStatus.ALLOCATING)
    harness.fakes.gates["replace_lines"] = replacing = asyncio.Event()
    first = asyncio.create_task(change(handle, lines=lines(**{"MUG-1": 2})))
    allocating.set()
    await until(lambda: harness.fakes.calls["replace_lines"] == 1, timeout=10, interval=0.02)

    assert (await handle.query(OrderWorkflow.status)).status == OrderStatus.FULFILLING
    second = asyncio.create_task(change(handle, shipping_address=PARIS))
    await asyncio.sleep(0.2)
    replacing.set()
    await first
    after = await second

    assert (after.revision, quantities(after), after.shipping_address) == (3, {"MUG-1": 2}, PARIS)
    final = await harness.deliver(handle)
    assert held(harness, final.order_id) == {"MUG-1": 2}
    assert harness.fakes.stock == {"MUG-1": 8, "TEE-2": 10, "CUP-9": 10}
    assert live_bookings(harness, final.order_id) == [f"B-{final.order_id}-r3"]
    assert harness.fakes.bookings[f"B-{final.order_id}-r3"].shipment.address == PARIS
    assert final.invoice is not None and final.invoice.subtotal == Decimal("30.00")
    assert [entry.detail for entry in final.timeline if entry.event == "order changed"] == [
        "revision 2: TEE-2 removed",
        "revision 3: new shipping address",
    ]


async def test_a_change_is_refused_once_the_invoice_is_issued_and_leaves_no_trace(harness: Harness) -> None:
    harness.fakes.gates["confirm_booking"] = gate = asyncio.Event()
    handle = await harness.start()
    await until(lambda: harness.fakes.calls["confirm_booking"] == 1, timeout=10, interval=0.02)

    refusal_ = await refused(handle, lines=lines(**{"MUG-1": 1}))

    assert refusal_.type == "ChangeRefused"
    assert "invoice is issued" in refusal_.message
    gate.set()
    shipped_state = await harness.until(handle, OrderStatus.SHIPPED)
    assert (shipped_state.revision, quantities(shipped_state)) == (1, {"MUG-1": 2, "TEE-2": 1})
    assert held(harness, shipped_state.order_id) == {"MUG-1": 2, "TEE-2": 1}
    assert live_bookings(harness, shipped_state.order_id) == [f"B-{shipped_state.order_id}-1"]
    shipped = await refused(handle, shipping_address=PARIS)
    assert "shipped" in shipped.message
    history = await handle.fetch_history()
    assert not [
        event for event in history.events if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]


async def test_a_change_for_another_revision_is_refused_with_the_current_one(harness: Harness) -> None:
    harness.fakes.review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["customer is flagged"])
    handle = await harness.start()
    await harness.until(handle, OrderStatus.PENDING_REVIEW)
    await change(handle, lines=lines(**{"MUG-1": 3}), expected_revision=1)

    stale = await refused(handle, lines=lines(**{"MUG-1": 4}), expected_revision=1)

    assert (stale.type, list(stale.details)) == ("RevisionMismatch", [2])
    unchanged = await refused(handle, lines=lines(**{"MUG-1": 3}))
    assert unchanged.type == "EmptyChange"
    assert quantities(await handle.query(OrderWorkflow.status)) == {"MUG-1": 3}


async def _fulfilling_with_a_change(harness: Harness, handle: Handle, **fields: Any) -> asyncio.Task[OrderState]:
    """A change sent while the order allocates, so that it acts once stock and booking are held."""
    harness.fakes.gates["reserve_line"] = gate = asyncio.Event()
    await harness.until(handle, OrderStatus.ALLOCATING)
    changing = asyncio.create_task(change(handle, **fields))
    await until(lambda: harness.fakes.calls["draft_booking"] == 1, timeout=10, interval=0.02)
    await asyncio.sleep(0.2)
    gate.set()
    return changing


async def test_a_change_the_review_rules_send_to_review_waits_for_an_operator_without_stock(harness: Harness) -> None:
    harness.fakes.change_review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["total above 10,000.00"])
    handle = await harness.start()
    after = await (await _fulfilling_with_a_change(harness, handle, lines=lines(**{"MUG-1": 900})))

    assert (after.revision, quantities(after)) == (2, {"MUG-1": 900})
    waiting = await harness.until(handle, OrderStatus.PENDING_REVIEW)
    assert waiting.review is not None and waiting.review.reasons == ["total above 10,000.00"]
    assert held(harness, waiting.order_id) == {}
    assert live_bookings(harness, waiting.order_id) == []
    assert harness.fakes.stock == STOCK

    harness.fakes.stock["MUG-1"] = 1000
    await handle.execute_update(OrderWorkflow.approve, ReviewCommand(actor="operator"))
    final = await harness.deliver(handle)
    assert held(harness, final.order_id) == {"MUG-1": 900}
    assert final.invoice is not None and final.invoice.subtotal == Decimal("11255.00")


async def test_a_change_rejected_by_the_review_rules_leaves_the_order_as_it_was(harness: Harness) -> None:
    harness.fakes.change_review = ReviewOutcome(decision=ReviewDecision.REJECTED, reasons=["unknown SKU NOPE-0"])
    handle = await harness.start()
    changing = await _fulfilling_with_a_change(harness, handle, lines=lines(**{"MUG-1": 2, "NOPE-0": 1}))

    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await changing

    assert isinstance(failure.value.cause, ApplicationError) and failure.value.cause.type == "ChangeRejected"
    state = await handle.query(OrderWorkflow.status)
    assert (state.revision, quantities(state), state.total) == (1, {"MUG-1": 2, "TEE-2": 1}, Decimal("37.50"))
    assert "change refused" in [entry.event for entry in state.timeline]
    final = await harness.deliver(handle)
    assert held(harness, final.order_id) == {"MUG-1": 2, "TEE-2": 1}
    assert live_bookings(harness, final.order_id) == [f"B-{final.order_id}-1"]
    assert harness.fakes.calls["replace_lines"] == 0


async def test_a_shortage_on_a_change_of_an_order_that_cancels_when_short_is_refused(harness: Harness) -> None:
    handle = await harness.start(order_request(BackorderPolicy.CANCEL))
    changing = await _fulfilling_with_a_change(harness, handle, lines=lines(**{"MUG-1": 1, "TEE-2": 11}))

    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await changing

    assert "TEE-2 short by 11" in str(failure.value.cause)
    final = await harness.deliver(handle)
    assert (final.revision, quantities(final)) == (1, {"MUG-1": 2, "TEE-2": 1})
    assert held(harness, final.order_id) == {"MUG-1": 2, "TEE-2": 1}
    # The draft booked for the change was cancelled; the order's own stands.
    assert f"B-{final.order_id}-r2" in harness.fakes.cancelled_bookings
    assert live_bookings(harness, final.order_id) == [f"B-{final.order_id}-1"]


async def test_a_shortage_on_a_change_of_an_order_that_waits_backorders_it(harness: Harness) -> None:
    handle = await harness.start()
    after = await (await _fulfilling_with_a_change(harness, handle, lines=lines(**{"MUG-1": 2, "TEE-2": 11})))

    assert (after.revision, quantities(after)) == (2, {"MUG-1": 2, "TEE-2": 11})
    state = await harness.until(handle, OrderStatus.BACKORDERED)
    assert held(harness, state.order_id) == {}
    assert harness.fakes.stock == STOCK
    assert [(report.sku, report.quantity) for report in harness.fakes.reported] == [("TEE-2", 11)]
    assert live_bookings(harness, state.order_id) == []


async def test_the_carrier_refusing_the_new_address_leaves_stock_booking_and_revision_as_they_were(
    harness: Harness,
) -> None:
    harness.fakes.gates["reserve_line"] = gate = asyncio.Event()
    handle = await harness.start()
    await until(lambda: harness.fakes.calls["draft_booking"] == 1, timeout=10, interval=0.02)
    harness.fakes.fail["check_address"] = refusal("AddressUndeliverable")
    changing = asyncio.create_task(change(handle, lines=lines(**{"MUG-1": 3}), shipping_address=PARIS))
    await asyncio.sleep(0.2)
    gate.set()

    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await changing

    assert "AddressUndeliverable" in str(failure.value.cause)
    final = await harness.deliver(handle)
    assert (final.revision, quantities(final)) == (1, {"MUG-1": 2, "TEE-2": 1})
    assert final.shipping_address == builders.order_request().shipping_address
    assert held(harness, final.order_id) == {"MUG-1": 2, "TEE-2": 1}
    assert live_bookings(harness, final.order_id) == [f"B-{final.order_id}-1"]


async def test_a_change_arriving_with_the_order_itself_is_taken(harness: Harness) -> None:
    """Update-with-start: the change reaches the run in its first task, before its process has started."""
    harness.fakes.review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["customer is flagged"])
    order_id = str(uuid.uuid4())
    start = WithStartWorkflowOperation(
        OrderWorkflow.run,
        OrderInput(order_id=order_id, request=order_request()),
        id=names.order_workflow_id(order_id),
        task_queue=harness.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )

    after = await harness.env.client.execute_update_with_start_workflow(
        OrderWorkflow.change, ChangeCommand(lines=lines(**{"MUG-1": 1})), start_workflow_operation=start
    )
    harness.started.append(await start.workflow_handle())

    assert (after.revision, quantities(after), after.status) == (2, {"MUG-1": 1}, OrderStatus.PENDING_REVIEW)
