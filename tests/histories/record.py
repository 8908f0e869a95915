"""Record the histories that the replay test keeps: `python -m tests.histories.record`.

Each scenario runs the real workflows on the time-skipping server against the
in-memory activities (the workflow tests' harness) and writes the workflow
history as JSON beside this file. Record again only when no order can be in
flight with the old code; otherwise guard the change with workflow.patched().
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models import names
from models.order import CancelCommand, OrderStatus, ReviewCommand, ReviewDecision, ReviewOutcome
from models.purchasing import ReplenishmentInput, ShortageReport, StockReceived
from security.codec import data_converter
from tests.conftest import BIN, register_search_attributes
from tests.fakes import FakeSystems, refusal
from tests.test_order_workflow import Harness
from workflows.order import OrderWorkflow
from workflows.replenishment import ReplenishmentWorkflow

HERE = Path(__file__).parent
TASK_QUEUE = "record-histories"
Scenario = Callable[[Harness], Awaitable[WorkflowHandle]]  # type: ignore[type-arg]


async def delivered(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    handle = await harness.start()
    await harness.deliver(handle)
    return handle


async def approved_by_operator(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    harness.fakes.review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["total above threshold"])
    handle = await harness.start()
    await harness.until(handle, OrderStatus.PENDING_REVIEW)
    await handle.execute_update(OrderWorkflow.approve, ReviewCommand(note="ok", actor="op-1"))
    await harness.deliver(handle)
    return handle


async def backordered_then_restocked(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    harness.fakes.stock["TEE-2"] = 0
    handle = await harness.start()
    await harness.until(handle, OrderStatus.BACKORDERED)
    harness.fakes.stock["TEE-2"] = 3
    await handle.signal(OrderWorkflow.restock)
    await harness.deliver(handle)
    return handle


async def cancelled_while_backordered(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    harness.fakes.stock["TEE-2"] = 0
    handle = await harness.start()
    await harness.until(handle, OrderStatus.BACKORDERED)
    await handle.execute_update(OrderWorkflow.cancel, CancelCommand(reason="changed mind"))
    await handle.result()
    return handle


async def failed_after_invoicing(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    harness.fakes.fail["confirm_booking"] = refusal("BookingRefused")
    handle = await harness.start()
    await handle.result()
    return handle


async def replenishment(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    harness.fakes.stock["LAMP-4"] = 0
    handle = await harness.env.client.start_workflow(
        ReplenishmentWorkflow.run,
        ReplenishmentInput(sku="LAMP-4"),
        id=names.replenishment_workflow_id("LAMP-4"),
        task_queue=harness.task_queue,
    )
    for order_id, quantity in (("o-1", 2), ("o-2", 5)):
        await handle.signal(ReplenishmentWorkflow.shortage, ShortageReport(order_id=order_id, quantity=quantity))
    harness.fakes.stock["LAMP-4"] = 3
    await handle.signal(
        ReplenishmentWorkflow.stock_received, StockReceived(receipt_id="r-1", warehouse="W", quantity=3)
    )
    for _ in range(500):
        if [w.order_id for w in await handle.query(ReplenishmentWorkflow.demand)] == ["o-2"]:
            break
        await asyncio.sleep(0.02)
    await handle.terminate("history recorded")
    return handle


SCENARIOS: dict[str, Scenario] = {
    "order_delivered": delivered,
    "order_approved_by_operator": approved_by_operator,
    "order_backordered_then_restocked": backordered_then_restocked,
    "order_cancelled_while_backordered": cancelled_while_backordered,
    "order_failed_after_invoicing": failed_after_invoicing,
    "replenishment_wakes_fifo": replenishment,
}


async def main() -> None:
    # Recorded unencrypted, so the kept histories can be read, and replayed with any keyring.
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(None), test_server_existing_path=str(BIN / "temporal-test-server")
    )
    try:
        await register_search_attributes(env.client)
        for name, scenario in SCENARIOS.items():
            fakes = FakeSystems(stock={"MUG-1": 10, "TEE-2": 10})
            async with Worker(
                env.client,
                task_queue=TASK_QUEUE,
                workflows=[OrderWorkflow, ReplenishmentWorkflow],
                activities=fakes.activities(),
            ):
                handle = await scenario(Harness(env, TASK_QUEUE, fakes))
                history = await handle.fetch_history()
            (HERE / f"{name}.json").write_text(history.to_json())
            print(f"recorded {name}: {len(history.events)} events")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
