"""The order workflow's behaviour, on the time-skipping server, with every outside step faked and counted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.order_client import initial_search_attributes
from models import names
from models.order import (
    BackorderPolicy,
    CancelCommand,
    OrderInput,
    OrderRequest,
    OrderState,
    OrderStatus,
    ReviewCommand,
    ReviewDecision,
    ReviewOutcome,
    TrackingEvent,
    TrackingStatus,
)
from security.codec import data_converter
from tests import builders
from tests.builders import line
from tests.conftest import BIN, TEST_KEYRING, register_search_attributes
from tests.fakes import FakeSystems, refusal
from tests.polling import NotYet, eventually
from workflows.order import OrderWorkflow
from workflows.replenishment import ReplenishmentWorkflow

Started = Callable[..., "asyncio.Future[WorkflowHandle[OrderWorkflow, OrderState]]"]


def order_request(policy: BackorderPolicy = BackorderPolicy.WAIT, **quantities: int) -> OrderRequest:
    lines = quantities or {"MUG-1": 2, "TEE-2": 1}
    return builders.order_request(
        lines=[line(sku, qty, "12.50") for sku, qty in lines.items()], backorder_policy=policy
    )


# Local steps run inside a workflow task, which heartbeats at 80% of its timeout: messages sent to an
# order busy with them, like a cancellation, reach it then, or when one of its activities completes.
SHORT_TASK = timedelta(seconds=1)


class Harness:
    def __init__(self, env: WorkflowEnvironment, task_queue: str, fakes: FakeSystems) -> None:
        self.env = env
        self.task_queue = task_queue
        self.fakes = fakes
        self.started: list[WorkflowHandle[OrderWorkflow, OrderState]] = []

    async def start(
        self, request: OrderRequest | None = None, task_timeout: timedelta | None = None, **deadlines: timedelta
    ) -> WorkflowHandle[OrderWorkflow, OrderState]:
        order_id = str(uuid.uuid4())
        request = request or order_request()
        # Started as the API starts an order: searchable as received from the start.
        handle = await self.env.client.start_workflow(
            OrderWorkflow.run,
            OrderInput(order_id=order_id, request=request, **deadlines),
            id=names.order_workflow_id(order_id),
            task_queue=self.task_queue,
            task_timeout=task_timeout,
            search_attributes=initial_search_attributes(request),
        )
        self.started.append(handle)
        return handle

    async def stop_leftovers(self) -> None:
        """Orders a test leaves running would hold up time skipping for the next tests once their worker is gone."""
        for handle in self.started:
            description = await handle.describe()
            if description.status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test finished")

    async def until(
        self, handle: WorkflowHandle[OrderWorkflow, OrderState], status: OrderStatus, flagged: bool = False
    ) -> OrderState:
        async def reached() -> OrderState:
            state = await handle.query(OrderWorkflow.status)
            if state.status != status or (state.needs_attention is not None) < flagged:
                raise NotYet(f"order never reached {status}; it is {state.status}")
            return state

        return await eventually(reached, timeout=10, interval=0.02)

    async def deliver(self, handle: WorkflowHandle[OrderWorkflow, OrderState]) -> OrderState:
        state = await self.until(handle, OrderStatus.SHIPPED)
        for number, status in enumerate((TrackingStatus.IN_TRANSIT, TrackingStatus.DELIVERED)):
            await handle.signal(
                OrderWorkflow.tracking_event,
                TrackingEvent(
                    event_id=f"ev-{number}",
                    order_id=state.order_id,
                    tracking_number=state.shipment.tracking_number if state.shipment else "?",
                    status=status,
                    at=datetime.now(UTC),
                ),
            )
        return await handle.result()


@asynccontextmanager
async def running_harness(env: WorkflowEnvironment, task_queue: str, stock: dict[str, int]) -> AsyncIterator[Harness]:
    """A worker of the order and replenishment workflows on faked systems holding `stock`."""
    fakes = FakeSystems(stock=stock)
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[OrderWorkflow, ReplenishmentWorkflow],
        activities=fakes.activities(),
    ):
        harness = Harness(env, task_queue, fakes)
        yield harness
        await harness.stop_leftovers()


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Harness]:
    async with running_harness(time_skipping_env, task_queue, {"MUG-1": 10, "TEE-2": 10}) as running:
        yield running


def compensations(fakes: FakeSystems) -> dict[str, int]:
    return {step: fakes.calls[step] for step in ("release_line", "cancel_booking", "void_invoice")}


async def test_an_approved_order_is_allocated_settled_shipped_and_delivered(harness: Harness) -> None:
    handle = await harness.start()

    final = await harness.deliver(handle)

    assert final.status == OrderStatus.DELIVERED
    assert [line.allocations[0].quantity for line in final.lines] == [2, 1]
    assert final.invoice is not None and final.invoice.total == Decimal("51.00")
    assert final.shipment is not None and final.shipment.tracking_number == f"TRK-{final.order_id}"
    assert final.shipment.status == "delivered"
    statuses = [event.status for event in final.timeline]
    assert statuses[0] == OrderStatus.RECEIVED and statuses[-1] == OrderStatus.DELIVERED
    assert {OrderStatus.ALLOCATING, OrderStatus.FULFILLING, OrderStatus.SHIPPED} <= set(statuses)
    calls = harness.fakes.calls
    assert (calls["reserve_line"], calls["draft_booking"], calls["create_invoice"]) == (2, 1, 1)
    assert (calls["confirm_booking"], calls["commit_order"]) == (1, 1)
    assert compensations(harness.fakes) == {"release_line": 0, "cancel_booking": 0, "void_invoice": 0}
    assert harness.fakes.notifications.count("shipped") == 1
    assert harness.fakes.notifications.count("delivered") == 1
    # Every timeline entry reached the database, in order.
    assert harness.fakes.statuses == [event.status.value for event in final.timeline]


async def test_search_attributes_follow_the_status(harness: Harness) -> None:
    handle = await harness.start()
    await harness.deliver(handle)

    described = await handle.describe()

    attributes = described.typed_search_attributes
    assert attributes.get(names.SA_ORDER_STATUS) == "delivered"
    assert attributes.get(names.SA_CUSTOMER_ID) == "C-1"
    assert attributes.get(names.SA_ORDER_TOTAL) == 37.5
    assert attributes.get(names.SA_SKUS) == ["MUG-1", "TEE-2"]


async def test_manual_review_approved_by_an_operator_goes_on_to_delivery(harness: Harness) -> None:
    harness.fakes.review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["total above 10,000.00"])
    handle = await harness.start()
    await harness.until(handle, OrderStatus.PENDING_REVIEW)

    after = await handle.execute_update(OrderWorkflow.approve, ReviewCommand(note="known customer", actor="op-1"))

    assert after.status != OrderStatus.PENDING_REVIEW
    final = await harness.deliver(handle)
    assert final.status == OrderStatus.DELIVERED
    assert final.review is not None
    assert (final.review.decision, final.review.reviewed_by, final.review.note) == (
        "approved",
        "op-1",
        "known customer",
    )


async def test_manual_review_rejected_by_an_operator_ends_rejected_without_touching_stock(harness: Harness) -> None:
    harness.fakes.review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["customer is flagged"])
    handle = await harness.start()
    await harness.until(handle, OrderStatus.PENDING_REVIEW)

    after = await handle.execute_update(OrderWorkflow.reject, ReviewCommand(note="fraud suspected"))

    assert after.status == OrderStatus.REJECTED
    assert (await handle.result()).review.decision == ReviewDecision.REJECTED  # type: ignore[union-attr]
    assert harness.fakes.calls["reserve_line"] == 0


async def test_manual_review_not_decided_within_the_deadline_cancels_the_order(harness: Harness) -> None:
    harness.fakes.review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["customer is flagged"])
    handle = await harness.start()

    final = await handle.result()

    assert final.status == OrderStatus.CANCELLED
    assert final.timeline[-1].event == "manual review deadline passed"
    assert final.timeline[-1].at - final.created_at >= OrderInput.model_fields["review_timeout"].default


async def test_review_decisions_are_refused_when_the_order_is_not_waiting_for_review(harness: Harness) -> None:
    handle = await harness.start()
    await harness.until(handle, OrderStatus.SHIPPED)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(OrderWorkflow.approve, ReviewCommand())

    assert "not waiting for review" in str(refused.value.cause)


async def test_order_rejected_by_the_rules_records_the_reasons(harness: Harness) -> None:
    harness.fakes.review = ReviewOutcome(
        decision=ReviewDecision.REJECTED, reasons=["customer email is malformed", "unknown SKU X"]
    )
    handle = await harness.start()

    final = await handle.result()

    assert final.status == OrderStatus.REJECTED
    assert final.timeline[-1].detail == "customer email is malformed; unknown SKU X"
    assert harness.fakes.calls["reserve_line"] == 0


async def test_shortage_compensates_backorders_and_ships_after_restock(harness: Harness) -> None:
    harness.fakes.stock["TEE-2"] = 0
    handle = await harness.start()

    backordered = await harness.until(handle, OrderStatus.BACKORDERED)

    # The line that was reserved and the draft booking were undone, each once.
    assert compensations(harness.fakes) == {"release_line": 1, "cancel_booking": 1, "void_invoice": 0}
    assert harness.fakes.stock["MUG-1"] == 10
    assert all(line.allocations == [] for line in backordered.lines)
    assert [(r.sku, r.quantity) for r in harness.fakes.reported] == [("TEE-2", 1)]
    assert "backordered" in harness.fakes.notifications

    harness.fakes.stock["TEE-2"] = 5
    await handle.signal(OrderWorkflow.restock)
    final = await harness.deliver(handle)

    assert final.status == OrderStatus.DELIVERED
    assert harness.fakes.stock == {"MUG-1": 8, "TEE-2": 4}
    assert compensations(harness.fakes) == {"release_line": 1, "cancel_booking": 1, "void_invoice": 0}
    assert harness.fakes.calls["draft_booking"] == 2
    assert final.shipment is not None and final.shipment.booking_id.endswith("-2")


async def test_backorder_deadline_cancels_the_order(harness: Harness) -> None:
    harness.fakes.stock["TEE-2"] = 0
    handle = await harness.start()

    final = await handle.result()

    assert final.status == OrderStatus.CANCELLED
    assert final.timeline[-1].event == "backorder deadline passed"
    assert harness.fakes.stock["MUG-1"] == 10
    assert "cancelled" in harness.fakes.notifications


async def test_cancel_policy_cancels_at_once_on_shortage(harness: Harness) -> None:
    harness.fakes.stock["TEE-2"] = 0
    handle = await harness.start(order_request(BackorderPolicy.CANCEL))

    final = await handle.result()

    assert final.status == OrderStatus.CANCELLED
    assert final.timeline[-1].event == "stock shortage"
    assert harness.fakes.reported == []
    assert compensations(harness.fakes) == {"release_line": 1, "cancel_booking": 1, "void_invoice": 0}


async def test_cancel_while_waiting_for_review(harness: Harness) -> None:
    harness.fakes.review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["customer is flagged"])
    handle = await harness.start()
    await harness.until(handle, OrderStatus.PENDING_REVIEW)

    final = await handle.execute_update(OrderWorkflow.cancel, CancelCommand(reason="customer changed mind"))

    assert final.status == OrderStatus.CANCELLED
    assert final.cancellation_reason == "customer changed mind"
    assert harness.fakes.calls["reserve_line"] == 0


async def test_cancel_while_backordered_releases_nothing_twice(harness: Harness) -> None:
    harness.fakes.stock["TEE-2"] = 0
    handle = await harness.start()
    await harness.until(handle, OrderStatus.BACKORDERED)

    final = await handle.execute_update(OrderWorkflow.cancel, CancelCommand(reason="too slow"))

    assert final.status == OrderStatus.CANCELLED
    assert compensations(harness.fakes) == {"release_line": 1, "cancel_booking": 1, "void_invoice": 0}


async def test_cancel_while_allocating_releases_what_was_reserved(harness: Harness) -> None:
    harness.fakes.gates["draft_booking"] = gate = asyncio.Event()
    handle = await harness.start(task_timeout=SHORT_TASK)
    await harness.until(handle, OrderStatus.ALLOCATING)

    cancelling = asyncio.create_task(handle.execute_update(OrderWorkflow.cancel, CancelCommand(reason="mistake")))
    await asyncio.sleep(SHORT_TASK.total_seconds() * 1.5)
    gate.set()
    final = await cancelling

    assert final.status == OrderStatus.CANCELLED
    assert compensations(harness.fakes) == {"release_line": 2, "cancel_booking": 1, "void_invoice": 0}
    assert harness.fakes.stock == {"MUG-1": 10, "TEE-2": 10}


async def test_cancel_while_settling_voids_the_invoice_and_releases_stock(harness: Harness) -> None:
    # The scenario kept as a replay history: cancelled while finance is still writing the invoice.
    from tests.histories.record import cancelled_while_settling

    final = await (await cancelled_while_settling(harness)).result()

    assert final.status == OrderStatus.CANCELLED
    assert compensations(harness.fakes) == {"release_line": 2, "cancel_booking": 1, "void_invoice": 1}
    assert harness.fakes.calls["confirm_booking"] == 0
    assert harness.fakes.calls["commit_order"] == 0


async def test_cancel_after_shipment_is_refused_with_the_reason(harness: Harness) -> None:
    handle = await harness.start()
    await harness.until(handle, OrderStatus.SHIPPED)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(OrderWorkflow.cancel, CancelCommand(reason="too late"))

    assert "handed to the carrier" in str(refused.value.cause)
    assert (await harness.deliver(handle)).status == OrderStatus.DELIVERED
    assert compensations(harness.fakes) == {"release_line": 0, "cancel_booking": 0, "void_invoice": 0}


async def test_cancel_signal_cancels_like_the_update(harness: Harness) -> None:
    harness.fakes.stock["TEE-2"] = 0
    handle = await harness.start()
    await harness.until(handle, OrderStatus.BACKORDERED)

    await handle.signal(OrderWorkflow.cancel_signal, CancelCommand(reason="by signal", actor="operator"))

    final = await handle.result()
    assert final.status == OrderStatus.CANCELLED
    assert final.timeline[-1].actor == "operator"


async def test_failure_after_invoicing_runs_every_compensation_exactly_once(harness: Harness) -> None:
    harness.fakes.fail["confirm_booking"] = refusal("BookingRefused")
    handle = await harness.start()

    final = await handle.result()

    assert final.status == OrderStatus.FAILED
    assert "BookingRefused" in (final.timeline[-1].detail or "")
    assert compensations(harness.fakes) == {"release_line": 2, "cancel_booking": 1, "void_invoice": 1}
    assert harness.fakes.calls["commit_order"] == 0
    assert harness.fakes.stock == {"MUG-1": 10, "TEE-2": 10}
    assert final.invoice is not None and final.invoice.status == "void"


async def test_undeliverable_address_fails_the_order_and_releases_stock(harness: Harness) -> None:
    harness.fakes.fail["check_address"] = refusal("AddressUndeliverable")
    handle = await harness.start()

    final = await handle.result()

    assert final.status == OrderStatus.FAILED
    assert "AddressUndeliverable" in (final.timeline[-1].detail or "")
    assert harness.fakes.stock == {"MUG-1": 10, "TEE-2": 10}
    assert harness.fakes.calls["create_invoice"] == 0


async def test_crm_and_notification_failures_never_block_the_order(harness: Harness) -> None:
    for step in ("upsert_customer", "record_purchase", "notify_customer"):
        harness.fakes.fail[step] = refusal("ServiceDown")
    handle = await harness.start()

    final = await harness.deliver(handle)

    assert final.status == OrderStatus.DELIVERED


@pytest.mark.integration
async def test_no_delivery_confirmation_flags_the_order_for_an_operator(task_queue: str) -> None:
    # A server of its own: skipping time must not wake the other tests' long-running orders.
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(TEST_KEYRING), test_server_existing_path=str(BIN / "temporal-test-server")
    )
    try:
        await register_search_attributes(env.client)
        fakes = FakeSystems(stock={"MUG-1": 10, "TEE-2": 10})
        async with Worker(env.client, task_queue=task_queue, workflows=[OrderWorkflow], activities=fakes.activities()):
            harness = Harness(env, task_queue, fakes)
            handle = await harness.start(delivery_timeout=timedelta(minutes=1))
            await harness.until(handle, OrderStatus.SHIPPED)

            await env.sleep(timedelta(minutes=2))
            state = await harness.until(handle, OrderStatus.SHIPPED, flagged=True)

            assert state.needs_attention == "no delivery confirmation from the carrier in time"
            final = await harness.deliver(handle)
            assert final.status == OrderStatus.DELIVERED and final.needs_attention is None
    finally:
        await env.shutdown()
