"""The per-SKU replenishment workflow, on the time-skipping server with its steps faked and counted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models import names
from models.purchasing import ReplenishmentInput, ShortageReport, StockReceived, WaitingOrder, Withdrawal
from tests.fakes import FakeSystems
from tests.polling import NotYet, eventually, until
from workflows.replenishment import ReplenishmentWorkflow

Replenishment = WorkflowHandle[ReplenishmentWorkflow, None]


@pytest.fixture
async def fakes(time_skipping_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[FakeSystems]:
    fakes = FakeSystems()
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[ReplenishmentWorkflow],
        activities=fakes.activities(),
    ):
        yield fakes


async def start(client: Client, task_queue: str, **options: int) -> Replenishment:
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    return await client.start_workflow(
        ReplenishmentWorkflow.run,
        ReplenishmentInput(sku=sku, **options),
        id=names.replenishment_workflow_id(sku),
        task_queue=task_queue,
    )


async def demand_becomes(handle: Replenishment, check: Callable[[list[WaitingOrder]], bool]) -> list[WaitingOrder]:
    async def checked() -> list[WaitingOrder]:
        waiting = await handle.query(ReplenishmentWorkflow.demand)
        if not check(waiting):
            raise NotYet(f"demand is {waiting}")
        return waiting

    return await eventually(checked, timeout=6, interval=0.02)


CLOSING_ACTIVITY_EVENTS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
}


async def finish(handle: WorkflowHandle[Any, Any]) -> None:
    """Terminate a run once it is at rest: its last workflow task completed and no activity of it running.

    The time-skipping server stops skipping time for good when a workflow is terminated while one of
    its tasks is being worked on, which would hold up every later test that waits on a timer. A run
    whose notices keep failing is terminated after a while all the same, between two tries.
    """
    for _ in range(100):
        events = [event.event_type for event in (await handle.fetch_history()).events]
        scheduled = events.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        closed = sum(1 for event in events if event in CLOSING_ACTIVITY_EVENTS)
        if events[-1] == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and scheduled == closed:
            break
        await asyncio.sleep(0.05)
    await handle.terminate("test finished")


async def test_stock_wakes_waiting_orders_first_come_first_served_as_far_as_it_covers(
    time_skipping_env: WorkflowEnvironment, task_queue: str, fakes: FakeSystems
) -> None:
    handle = await start(time_skipping_env.client, task_queue)
    sku = handle.id.removeprefix("replenish-")
    for order_id, quantity in (("o-1", 2), ("o-2", 5), ("o-3", 1)):
        await handle.signal(ReplenishmentWorkflow.shortage, ShortageReport(order_id=order_id, quantity=quantity))
    await demand_becomes(handle, lambda waiting: len(waiting) == 3)
    # Purchasing is told in the background, each shortage once.
    await until(lambda: fakes.calls["notify_purchasing"] >= 3, timeout=6)
    assert fakes.calls["notify_purchasing"] == 3

    # 3 units cover o-1 (2) but not o-2 (5); o-3 must not overtake o-2.
    fakes.stock[sku] = 3
    await handle.signal(
        ReplenishmentWorkflow.stock_received, StockReceived(receipt_id="r-1", warehouse="W", quantity=3)
    )
    waiting = await demand_becomes(handle, lambda waiting: len(waiting) == 2)

    assert [w.order_id for w in waiting] == ["o-2", "o-3"]
    await finish(handle)


async def test_a_withdrawn_order_no_longer_waits(
    time_skipping_env: WorkflowEnvironment, task_queue: str, fakes: FakeSystems
) -> None:
    handle = await start(time_skipping_env.client, task_queue)
    await handle.signal(ReplenishmentWorkflow.shortage, ShortageReport(order_id="o-1", quantity=2))
    await handle.signal(ReplenishmentWorkflow.shortage, ShortageReport(order_id="o-2", quantity=1))
    await handle.signal(ReplenishmentWorkflow.withdraw, Withdrawal(order_id="o-1"))

    waiting = await demand_becomes(handle, lambda waiting: [w.order_id for w in waiting] == ["o-2"])

    assert waiting[0].quantity == 1
    await finish(handle)


async def test_a_long_history_continues_as_new_keeping_the_waiting_orders(
    time_skipping_env: WorkflowEnvironment, task_queue: str, fakes: FakeSystems
) -> None:
    handle = await start(time_skipping_env.client, task_queue, max_history_events=40)
    first_run = (await handle.describe()).run_id
    for number in range(12):
        await handle.signal(ReplenishmentWorkflow.shortage, ShortageReport(order_id=f"o-{number}", quantity=1))

    latest = time_skipping_env.client.get_workflow_handle_for(ReplenishmentWorkflow.run, handle.id)

    async def continued() -> None:
        if (await latest.describe()).run_id == first_run:
            raise NotYet("the workflow never continued as new")

    await eventually(continued, timeout=6, interval=0.02)

    waiting = await demand_becomes(latest, lambda waiting: len(waiting) == 12)
    assert [w.order_id for w in waiting] == [f"o-{number}" for number in range(12)]
    await finish(latest)
