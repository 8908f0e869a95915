"""Record the histories that the replay test keeps: `python -m tests.histories.record <generation>`.

Each scenario runs the real workflows on the time-skipping server against the
in-memory activities (the workflow tests' harness) and writes the workflow
history as JSON to a folder beside this file named after the generation of the
workflow code, e.g. the newest patch. A change that alters the histories is
guarded with workflow.patched() and recorded as a new generation; the older
generations stay, as orders started under them may still be in flight.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models import names
from models.order import (
    CancelCommand,
    OrderStatus,
    ReviewCommand,
    ReviewDecision,
    ReviewOutcome,
    TrackingEvent,
    TrackingStatus,
)
from models.purchasing import ReplenishmentInput, ShortageReport, StockReceived
from security.codec import data_converter
from tests.conftest import BIN, register_search_attributes
from tests.fakes import FakeSystems, refusal
from tests.test_order_workflow import SHORT_TASK, Harness
from workflows.order import OrderWorkflow
from workflows.replenishment import ReplenishmentWorkflow

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
# Stack traces name files by absolute path: kept histories name them from the project or site-packages.
MACHINE_PATHS = re.compile(rf"{re.escape(str(ROOT))}/(?:[^\s\"']*?/site-packages/)?".encode())
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


async def cancelled_while_settling(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    harness.fakes.gates["create_invoice"] = gate = asyncio.Event()
    handle = await harness.start(task_timeout=SHORT_TASK)
    await harness.until(handle, OrderStatus.FULFILLING)
    cancelling = asyncio.create_task(handle.execute_update(OrderWorkflow.cancel, CancelCommand(reason="mistake")))
    await asyncio.sleep(SHORT_TASK.total_seconds() * 1.5)
    gate.set()
    await cancelling
    await handle.result()
    return handle


async def cancelled_from_temporal_while_settling(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    harness.fakes.gates["create_invoice"] = gate = asyncio.Event()
    handle = await harness.start(task_timeout=SHORT_TASK)
    await harness.until(handle, OrderStatus.FULFILLING)
    await handle.cancel()
    await asyncio.sleep(SHORT_TASK.total_seconds() * 1.5)
    gate.set()
    await handle.result()
    return handle


async def temporal_cancel_refused_once_shipped(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    handle = await harness.start()
    await harness.until(handle, OrderStatus.SHIPPED)
    await handle.cancel()
    for _ in range(500):
        if any(entry.event == "cancellation refused" for entry in (await handle.query(OrderWorkflow.status)).timeline):
            break
        await asyncio.sleep(0.02)
    await harness.deliver(handle)
    return handle


async def continued_as_new_while_delivering(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    handle = await harness.start(max_history_events=120)  # type: ignore[arg-type]
    shipped = await harness.until(handle, OrderStatus.SHIPPED)
    first_run = (await handle.describe()).run_id
    for number in range(150):
        status = TrackingStatus.IN_TRANSIT if number % 10 else TrackingStatus.OUT_FOR_DELIVERY
        event = TrackingEvent(
            event_id=f"scan-{number}",
            order_id=shipped.order_id,
            tracking_number="T",
            status=status,
            at=datetime.now(UTC),
        )
        await handle.signal(OrderWorkflow.tracking_event, event)
    for _ in range(500):
        if (await handle.describe()).run_id != first_run:
            break
        await asyncio.sleep(0.02)
    await harness.deliver(handle)
    # The history kept is the first run's, which ends by continuing as new.
    return harness.env.client.get_workflow_handle(handle.id, run_id=first_run)


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
    "order_cancelled_while_settling": cancelled_while_settling,
    "order_failed_after_invoicing": failed_after_invoicing,
    "order_cancelled_from_temporal_while_settling": cancelled_from_temporal_while_settling,
    "order_temporal_cancel_refused_once_shipped": temporal_cancel_refused_once_shipped,
    "order_continued_as_new_while_delivering": continued_as_new_while_delivering,
    "replenishment_wakes_fifo": replenishment,
}


def without_machine_paths(history_json: str) -> str:
    """The history with the recording machine's paths cut from stack traces, also inside encoded payloads."""

    def clean(node: object) -> object:
        if isinstance(node, dict):
            return {key: clean_data(value) if key == "data" else clean(value) for key, value in node.items()}
        if isinstance(node, list):
            return [clean(item) for item in node]
        if isinstance(node, str):
            return MACHINE_PATHS.sub(b"", node.encode()).decode()
        return node

    def clean_data(data: object) -> object:
        if not isinstance(data, str):
            return clean(data)
        raw = base64.b64decode(data)
        cleaned = MACHINE_PATHS.sub(b"", raw)
        return data if cleaned == raw else base64.b64encode(cleaned).decode()

    return json.dumps(clean(json.loads(history_json)), indent=2)


async def main(generation: str) -> None:
    folder = HERE / generation
    folder.mkdir(exist_ok=True)
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
            (folder / f"{name}.json").write_text(without_machine_paths(history.to_json()))
            print(f"recorded {name}: {len(history.events)} events")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.histories.record <generation>")
    asyncio.run(main(sys.argv[1]))
