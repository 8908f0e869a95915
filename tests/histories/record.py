"""Record the histories that the replay test keeps: `python -m tests.histories.record <generation> [scenario ...]`.

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
import contextlib
import json
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models import names
from models.changes import ChangeCommand
from models.order import (
    Address,
    BackorderPolicy,
    CancelCommand,
    OrderLine,
    OrderRequest,
    OrderStatus,
    ReviewCommand,
    ReviewDecision,
    ReviewOutcome,
    TrackingEvent,
    TrackingStatus,
)
from models.purchasing import Allocated, ReplenishmentInput, ShortageReport, StockReceived, Withdrawal
from security.codec import data_converter
from tests.conftest import BIN, register_search_attributes
from tests.fakes import FakeSystems, refusal
from tests.test_order_workflow import SHORT_TASK, Harness, order_request
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


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the scenario never reached the state it waits for")


def _replenishment(harness: Harness, sku: str) -> WorkflowHandle[ReplenishmentWorkflow, None]:
    return harness.env.client.get_workflow_handle_for(ReplenishmentWorkflow.run, names.replenishment_workflow_id(sku))


async def _start_replenishment(harness: Harness, sku: str, **options: int) -> WorkflowHandle:  # type: ignore[type-arg]
    return await harness.env.client.start_workflow(
        ReplenishmentWorkflow.run,
        ReplenishmentInput(sku=sku, **options),
        id=names.replenishment_workflow_id(sku),
        task_queue=harness.task_queue,
    )


async def woken_by_replenishment(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    """An order backordered, woken by the SKU's run on a receipt; it allocates and tells the run."""
    harness.fakes.forward_shortages = True
    harness.fakes.stock["DESK-5"] = 0
    handle = await harness.start(order_request(**{"MUG-1": 1, "DESK-5": 1}))
    await harness.until(handle, OrderStatus.BACKORDERED)
    replenishment = _replenishment(harness, "DESK-5")
    await _until(lambda: _demand_is(replenishment, 1))
    harness.fakes.stock["DESK-5"] = 1
    await replenishment.signal(
        ReplenishmentWorkflow.stock_received, StockReceived(receipt_id="r-1", warehouse="W", quantity=1)
    )
    await harness.until(handle, OrderStatus.SHIPPED)
    await _until(lambda: _demand_is(replenishment, 0))
    # Before waiting for the order's result, which lets the server skip time up to an idle run's timeout.
    await replenishment.terminate("history recorded")
    await harness.deliver(handle)
    return handle


async def restocked_by_operator_while_short(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    """An operator's restock signal finds too little: the order reports again, then is cancelled."""
    harness.fakes.forward_shortages = True
    harness.fakes.stock["SOFA-6"] = 0
    handle = await harness.start(order_request(**{"SOFA-6": 2}))
    await harness.until(handle, OrderStatus.BACKORDERED)
    await handle.signal(OrderWorkflow.restock)
    await _until(lambda: _reported(harness, 2))
    await harness.until(handle, OrderStatus.BACKORDERED)
    await handle.execute_update(OrderWorkflow.cancel, CancelCommand(reason="too slow"))
    await _until(lambda: _demand_is(_replenishment(harness, "SOFA-6"), 0))
    await _replenishment(harness, "SOFA-6").terminate("history recorded")
    await handle.result()
    return handle


async def replenishment_keeps_woken_orders(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    """Real orders wait; the first is woken, allocates and says so; the second withdraws; a notice is refused."""
    harness.fakes.forward_shortages = True
    harness.fakes.stock["RUG-7"] = 0
    harness.fakes.fail["notify_purchasing"] = refusal("PurchasingRefused")
    first = await harness.start(order_request(**{"RUG-7": 1}))
    await harness.until(first, OrderStatus.BACKORDERED)
    second = await harness.start(order_request(**{"RUG-7": 1}))
    await harness.until(second, OrderStatus.BACKORDERED)
    replenishment = _replenishment(harness, "RUG-7")
    await _until(lambda: _demand_is(replenishment, 2))
    del harness.fakes.fail["notify_purchasing"]
    harness.fakes.stock["RUG-7"] = 1
    await replenishment.signal(
        ReplenishmentWorkflow.stock_received, StockReceived(receipt_id="r-1", warehouse="W", quantity=1)
    )
    await harness.until(first, OrderStatus.SHIPPED)
    await _until(lambda: _demand_is(replenishment, 1))
    await second.execute_update(OrderWorkflow.cancel, CancelCommand(reason="found it elsewhere"))
    await _until(lambda: _demand_is(replenishment, 0))
    await replenishment.terminate("history recorded")
    return replenishment


async def replenishment_notice_outage(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    """Purchasing does not answer a burst of tries: the run pauses, tries again, delivers; receipts go on meanwhile."""
    harness.fakes.fail["notify_purchasing"] = ApplicationError("purchasing answered 503", type="ProviderUnavailable")
    handle = await _start_replenishment(harness, "LAMP-8")
    await handle.signal(ReplenishmentWorkflow.shortage, ShortageReport(order_id="o-1", quantity=1, round=1))
    await handle.signal(ReplenishmentWorkflow.shortage, ShortageReport(order_id="o-2", quantity=1, round=1))
    harness.fakes.stock["LAMP-8"] = 1
    await handle.signal(
        ReplenishmentWorkflow.stock_received, StockReceived(receipt_id="r-1", warehouse="W", quantity=1)
    )
    await handle.signal(ReplenishmentWorkflow.allocated, Allocated(order_id="o-1"))
    await harness.env.sleep(timedelta(minutes=2))
    del harness.fakes.fail["notify_purchasing"]
    await harness.env.sleep(timedelta(minutes=3))
    await _until(lambda: _undelivered_is(handle, 0))
    await handle.signal(ReplenishmentWorkflow.withdraw, Withdrawal(order_id="o-2"))
    await _until(lambda: _demand_is(handle, 0))
    await handle.terminate("history recorded")
    return handle


async def replenishment_continues_as_new_with_notices(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    """The first run of a SKU whose history grew long: it continues as new with its undelivered notices."""
    harness.fakes.fail["notify_purchasing"] = ApplicationError("purchasing answered 503", type="ProviderUnavailable")
    handle = await _start_replenishment(harness, "VASE-9", max_history_events=30)
    first_run = (await handle.describe()).run_id
    for number in range(12):
        await handle.signal(ReplenishmentWorkflow.shortage, ShortageReport(order_id=f"o-{number}", quantity=1, round=1))
        # One at a time: a run reads its history's length as of the start of each workflow task.
        await _until(lambda: _at_least(handle, number + 1))  # noqa: B023
    # The run continues as new between two bursts of tries, once the first bursts have failed.
    await harness.env.sleep(timedelta(seconds=40))
    latest = _replenishment(harness, "VASE-9")
    await _until(lambda: _continued(latest, first_run))
    await latest.terminate("history recorded")
    return harness.env.client.get_workflow_handle(handle.id, run_id=first_run)


async def _demand_is(handle: WorkflowHandle, count: int) -> bool:  # type: ignore[type-arg]
    try:
        return len(await handle.query(ReplenishmentWorkflow.demand)) == count
    except Exception:  # not started yet
        return False


async def _at_least(handle: WorkflowHandle, count: int) -> bool:  # type: ignore[type-arg]
    try:
        return len(await handle.query(ReplenishmentWorkflow.demand)) >= count
    except Exception:  # continued as new, or not started yet
        return True


async def _undelivered_is(handle: WorkflowHandle, count: int) -> bool:  # type: ignore[type-arg]
    return len(await handle.query(ReplenishmentWorkflow.undelivered_notices)) == count


async def _reported(harness: Harness, count: int) -> bool:
    return len(harness.fakes.reported) >= count


async def _continued(handle: WorkflowHandle, first_run: str) -> bool:  # type: ignore[type-arg]
    return (await handle.describe()).run_id != first_run


def _lines(**quantities: int) -> list[OrderLine]:
    return [OrderLine(sku=sku, quantity=quantity, unit_price="12.50") for sku, quantity in quantities.items()]


PARIS = Address(name="Ada Lovelace", line1="1 Rue de Rivoli", city="Paris", postal_code="75001", country="FR")


async def changed_while_waiting_for_review(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    harness.fakes.review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["customer is flagged"])
    harness.fakes.stock["CUP-9"] = 5
    handle = await harness.start()
    await harness.until(handle, OrderStatus.PENDING_REVIEW)
    change = ChangeCommand(lines=_lines(**{"MUG-1": 3, "CUP-9": 1}), shipping_address=PARIS, expected_revision=1)
    await handle.execute_update(OrderWorkflow.change, change)
    await handle.execute_update(OrderWorkflow.approve, ReviewCommand(note="ok", actor="op-1"))
    await harness.deliver(handle)
    return handle


async def _change_while_allocating(
    harness: Harness, change: ChangeCommand, request: OrderRequest | None = None
) -> WorkflowHandle:  # type: ignore[type-arg]
    """A change sent while the order allocates: it acts once stock and booking are held, before the invoice."""
    harness.fakes.gates["reserve_line"] = gate = asyncio.Event()
    harness.fakes.stock["CUP-9"] = 5
    handle = await harness.start(request)
    await harness.until(handle, OrderStatus.ALLOCATING)
    changing = asyncio.create_task(handle.execute_update(OrderWorkflow.change, change))
    await _until(lambda: _called(harness, "draft_booking"))
    await asyncio.sleep(0.2)
    gate.set()
    # A refused change is part of the history kept, as is an accepted one.
    with contextlib.suppress(WorkflowUpdateFailedError):
        await changing
    return handle


async def changed_while_allocating(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    """Stock released and reserved at once, the booking drafted again for the new address, the old one cancelled."""
    change = ChangeCommand(lines=_lines(**{"MUG-1": 1, "CUP-9": 2}), shipping_address=PARIS)
    handle = await _change_while_allocating(harness, change)
    await harness.deliver(handle)
    return handle


async def change_sent_back_to_review(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    """The rules send the changed order to an operator: stock and booking are let go until approved."""
    harness.fakes.change_review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["total above threshold"])
    handle = await _change_while_allocating(harness, ChangeCommand(lines=_lines(**{"MUG-1": 5})))
    await harness.until(handle, OrderStatus.PENDING_REVIEW)
    await handle.execute_update(OrderWorkflow.approve, ReviewCommand(note="ok", actor="op-1"))
    await harness.deliver(handle)
    return handle


async def change_refused_for_stock(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    """An order that cancels when short refuses a change it has no stock for; the new draft is cancelled."""
    change = ChangeCommand(lines=_lines(**{"MUG-1": 2, "TEE-2": 11}))
    handle = await _change_while_allocating(harness, change, order_request(BackorderPolicy.CANCEL))
    await harness.deliver(handle)
    return handle


async def changed_while_backordered(harness: Harness) -> WorkflowHandle:  # type: ignore[type-arg]
    """A backordered order without its short line allocates at once."""
    harness.fakes.stock["TEE-2"] = 0
    handle = await harness.start()
    await harness.until(handle, OrderStatus.BACKORDERED)
    await handle.execute_update(OrderWorkflow.change, ChangeCommand(lines=_lines(**{"MUG-1": 3})))
    await harness.deliver(handle)
    return handle


async def _called(harness: Harness, step: str) -> bool:
    return harness.fakes.calls[step] > 0


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
    "order_woken_by_replenishment": woken_by_replenishment,
    "order_restocked_by_operator_while_short": restocked_by_operator_while_short,
    "replenishment_keeps_woken_orders": replenishment_keeps_woken_orders,
    "replenishment_notice_outage": replenishment_notice_outage,
    "replenishment_continues_as_new_with_notices": replenishment_continues_as_new_with_notices,
    "order_changed_while_waiting_for_review": changed_while_waiting_for_review,
    "order_changed_while_allocating": changed_while_allocating,
    "order_change_sent_back_to_review": change_sent_back_to_review,
    "order_changed_while_backordered": changed_while_backordered,
    "order_change_refused_for_stock": change_refused_for_stock,
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


@contextlib.asynccontextmanager
async def recording_server() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server for recording. Histories are recorded unencrypted, so the kept ones can be
    read, and replayed with any keyring."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(None), test_server_existing_path=str(BIN / "temporal-test-server")
    )
    try:
        await register_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


async def keep(folder: Path, name: str, handle: WorkflowHandle[Any, Any]) -> None:
    """Write the run's history as `<folder>/<name>.json`, without this machine's paths."""
    history = await handle.fetch_history()
    _write(folder / f"{name}.json", without_machine_paths(history.to_json()))
    print(f"recorded {name}: {len(history.events)} events")


def _write(file: Path, text: str) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)


async def main(generation: str, only: list[str] | None = None) -> None:
    async with recording_server() as env:
        for name, scenario in SCENARIOS.items():
            if only and name not in only:
                continue
            fakes = FakeSystems(stock={"MUG-1": 10, "TEE-2": 10})
            async with Worker(
                env.client,
                task_queue=TASK_QUEUE,
                workflows=[OrderWorkflow, ReplenishmentWorkflow],
                activities=fakes.activities(),
            ):
                handle = await scenario(Harness(env, TASK_QUEUE, fakes))
                await keep(HERE / generation, name, handle)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tests.histories.record <generation> [scenario ...]  (all scenarios by default)")
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
