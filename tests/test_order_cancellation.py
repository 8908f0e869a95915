"""Cancelling an order from Temporal (Request Cancellation in the UI, `temporal workflow cancel`) as from the API.

Each stage of an order on the time-skipping server, every outside step faked and counted: before the
point of no return every undo step runs once and the order ends cancelled, its timeline naming Temporal;
after it the request is refused on the timeline and the order goes on to delivery.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from models import names
from models.order import OrderState, OrderStatus, ReviewDecision, ReviewOutcome
from models.purchasing import ReplenishmentInput, ShortageReport
from tests.conftest import BIN
from tests.test_order_workflow import SHORT_TASK, Harness, compensations, order_request, running_harness
from workflows.order import OrderWorkflow
from workflows.replenishment import ReplenishmentWorkflow

Order = WorkflowHandle[OrderWorkflow, OrderState]


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Harness]:
    async with running_harness(time_skipping_env, task_queue, {"MUG-1": 10, "TEE-2": 10}) as running:
        yield running


async def cancelled_from_temporal(handle: Order) -> OrderState:
    """The order's end once it completed, as a Temporal run that finished its work (not one marked canceled)."""
    final = await handle.result()
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    assert final.status == OrderStatus.CANCELLED
    [requested] = [entry for entry in final.timeline if entry.event == "cancellation requested"]
    ended = final.timeline[-1]
    assert requested.actor == "temporal"
    assert requested.detail == "cancellation requested from the Temporal UI or CLI"
    assert (ended.event, ended.actor, ended.status) == ("order cancelled", "temporal", OrderStatus.CANCELLED)
    assert final.cancellation_reason == "cancellation requested from the Temporal UI or CLI"
    return final


async def test_an_order_waiting_for_review_is_cancelled_without_touching_stock(harness: Harness) -> None:
    harness.fakes.review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["customer is flagged"])
    handle = await harness.start()
    await harness.until(handle, OrderStatus.PENDING_REVIEW)

    await handle.cancel()

    await cancelled_from_temporal(handle)
    assert harness.fakes.calls["reserve_line"] == 0
    assert harness.fakes.notifications == ["cancelled"]
    # Every timeline entry reached the database.
    assert harness.fakes.statuses[-1] == "cancelled"


async def test_an_order_allocating_gives_back_what_was_reserved_and_the_draft_booking_made_meanwhile(
    harness: Harness,
) -> None:
    harness.fakes.gates["draft_booking"] = gate = asyncio.Event()
    handle = await harness.start(task_timeout=SHORT_TASK)
    await harness.until(handle, OrderStatus.ALLOCATING)

    await handle.cancel()
    await asyncio.sleep(SHORT_TASK.total_seconds() * 1.5)
    # The booking in flight when the cancellation came is made, then undone: never left behind.
    gate.set()

    await cancelled_from_temporal(handle)
    assert compensations(harness.fakes) == {"release_line": 2, "cancel_booking": 1, "void_invoice": 0}
    assert harness.fakes.calls["draft_booking"] == 1
    assert harness.fakes.stock == {"MUG-1": 10, "TEE-2": 10}
    assert harness.fakes.calls["create_invoice"] == 0


async def test_a_backordered_order_is_cancelled_and_leaves_the_skus_shortage_list(harness: Harness) -> None:
    sku = f"LAMP-{uuid.uuid4().hex[:8]}"
    harness.fakes.stock[sku] = 0
    handle = await harness.start(order_request(**{"MUG-1": 2, sku: 1}))
    backordered = await harness.until(handle, OrderStatus.BACKORDERED)
    # As purchasing's report would: the SKU's replenishment run holds the order's demand.
    replenishment = await harness.env.client.start_workflow(
        ReplenishmentWorkflow.run,
        ReplenishmentInput(sku=sku),
        id=names.replenishment_workflow_id(sku),
        task_queue=harness.task_queue,
    )
    await replenishment.signal(
        ReplenishmentWorkflow.shortage, ShortageReport(order_id=backordered.order_id, quantity=1)
    )
    assert [w.order_id for w in await waiting_for(replenishment, backordered.order_id)] == [backordered.order_id]

    await handle.cancel()

    await cancelled_from_temporal(handle)
    assert compensations(harness.fakes) == {"release_line": 1, "cancel_booking": 1, "void_invoice": 0}
    assert harness.fakes.stock["MUG-1"] == 10
    assert await waiting_for(replenishment, None) == []
    assert harness.fakes.calls["resolve_shortages"] == 1
    # The time-skipping server may have timed the run out once nothing was left to wait for.
    current = harness.env.client.get_workflow_handle(replenishment.id)
    if (await current.describe()).status == WorkflowExecutionStatus.RUNNING:
        await current.terminate("test finished")


async def waiting_for(replenishment: WorkflowHandle, order_id: str | None) -> list:  # type: ignore[type-arg]
    """The replenishment run's waiting orders once `order_id` is among them (None: once none waits)."""
    for _ in range(500):
        waiting = await replenishment.query(ReplenishmentWorkflow.demand)
        if (order_id is None and not waiting) or (order_id is not None and waiting):
            return waiting
        await asyncio.sleep(0.02)
    raise AssertionError(f"replenishment never reached the expected demand; it holds {waiting}")


async def test_an_order_settling_before_the_booking_is_confirmed_undoes_each_step_once(harness: Harness) -> None:
    harness.fakes.gates["create_invoice"] = gate = asyncio.Event()
    handle = await harness.start(task_timeout=SHORT_TASK)
    await harness.until(handle, OrderStatus.FULFILLING)

    await handle.cancel()
    await asyncio.sleep(SHORT_TASK.total_seconds() * 1.5)
    gate.set()

    final = await cancelled_from_temporal(handle)
    assert compensations(harness.fakes) == {"release_line": 2, "cancel_booking": 1, "void_invoice": 1}
    assert (harness.fakes.calls["confirm_booking"], harness.fakes.calls["commit_order"]) == (0, 0)
    assert harness.fakes.stock == {"MUG-1": 10, "TEE-2": 10}
    assert final.invoice is not None and final.invoice.status == "void"
    assert final.shipment is not None and final.shipment.status == "cancelled"


async def test_an_order_being_booked_with_the_carrier_refuses_the_cancellation_and_is_delivered(
    harness: Harness,
) -> None:
    harness.fakes.gates["confirm_booking"] = gate = asyncio.Event()
    handle = await harness.start(task_timeout=SHORT_TASK)
    await until_called(harness, "confirm_booking")

    await handle.cancel()
    await asyncio.sleep(SHORT_TASK.total_seconds() * 1.5)
    gate.set()

    final = await harness.deliver(handle)
    assert final.status == OrderStatus.DELIVERED
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    [refused] = [entry for entry in final.timeline if entry.event == "cancellation refused"]
    assert refused.actor == "temporal"
    assert refused.detail is not None and "handed to the carrier" in refused.detail
    assert compensations(harness.fakes) == {"release_line": 0, "cancel_booking": 0, "void_invoice": 0}
    assert harness.fakes.calls["commit_order"] == 1
    assert final.cancellation_reason is None


async def test_a_shipped_order_refuses_the_cancellation_and_is_delivered(harness: Harness) -> None:
    handle = await harness.start()
    await harness.until(handle, OrderStatus.SHIPPED)

    await handle.cancel()
    refused = await until_event(harness, handle, "cancellation refused")

    assert (refused.actor, refused.status) == ("temporal", OrderStatus.SHIPPED)
    final = await harness.deliver(handle)
    assert final.status == OrderStatus.DELIVERED
    assert compensations(harness.fakes) == {"release_line": 0, "cancel_booking": 0, "void_invoice": 0}


async def test_the_temporal_cli_cancels_a_backordered_order_like_the_api(harness: Harness) -> None:
    harness.fakes.stock["TEE-2"] = 0
    handle = await harness.start()
    await harness.until(handle, OrderStatus.BACKORDERED)

    cli = await asyncio.create_subprocess_exec(
        str(BIN / "temporal"),
        "workflow",
        "cancel",
        "--address",
        harness.env.client.service_client.config.target_host,
        "--namespace",
        harness.env.client.namespace,
        "--workflow-id",
        handle.id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await cli.communicate()
    assert cli.returncode == 0, output.decode()

    await cancelled_from_temporal(handle)
    assert compensations(harness.fakes) == {"release_line": 1, "cancel_booking": 1, "void_invoice": 0}
    assert harness.fakes.stock == {"MUG-1": 10, "TEE-2": 0}


async def until_called(harness: Harness, step: str) -> None:
    for _ in range(500):
        if harness.fakes.calls[step]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{step} never ran")


async def until_event(harness: Harness, handle: Order, event: str):  # type: ignore[no-untyped-def]
    for _ in range(500):
        state = await handle.query(OrderWorkflow.status)
        found = [entry for entry in state.timeline if entry.event == event]
        if found:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"the order's timeline never showed {event!r}")


async def test_a_backordered_order_whose_skus_replenishment_has_closed_is_still_cancelled(harness: Harness) -> None:
    # Signalling a closed (or never started) replenishment run fails as "not found": nothing holds the demand.
    sku = f"LAMP-{uuid.uuid4().hex[:8]}"
    harness.fakes.stock[sku] = 0
    replenishment = await harness.env.client.start_workflow(
        ReplenishmentWorkflow.run,
        ReplenishmentInput(sku=sku),
        id=names.replenishment_workflow_id(sku),
        task_queue=harness.task_queue,
    )
    # Its first workflow task done before it closes: the time-skipping server would otherwise keep time
    # locked for the rest of the session waiting for a task of a run that no longer exists.
    assert await replenishment.query(ReplenishmentWorkflow.demand) == []
    await replenishment.terminate("closed for the test")
    handle = await harness.start(order_request(**{sku: 1}))
    await harness.until(handle, OrderStatus.BACKORDERED)

    await handle.cancel()

    final = await cancelled_from_temporal(handle)
    assert final.status == OrderStatus.CANCELLED
    assert compensations(harness.fakes) == {"release_line": 0, "cancel_booking": 1, "void_invoice": 0}


async def test_an_order_cancelled_the_moment_it_starts_gives_back_whatever_it_got_to(harness: Harness) -> None:
    handle = await harness.start()
    await handle.cancel()

    await cancelled_from_temporal(handle)
    calls = harness.fakes.calls
    assert calls["record_order"] == 1
    assert (calls["release_line"], calls["cancel_booking"]) == (calls["reserve_line"], calls["draft_booking"])
    assert harness.fakes.stock == {"MUG-1": 10, "TEE-2": 10}
    assert calls["create_invoice"] == 0
