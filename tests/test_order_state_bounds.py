"""An order stays the same size whatever the carrier sends: its status writes, its state and its history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.order import OrderInput, OrderStatus, TrackingEvent, TrackingStatus
from tests.fakes import FakeSystems
from tests.test_order_workflow import Harness
from workflows.order import KEPT_TIMELINE_ENTRIES, OrderWorkflow

TRACKING_EVENTS = 5_000
SCANS_PER_STATUS = 20
CYCLE = (TrackingStatus.IN_TRANSIT, TrackingStatus.OUT_FOR_DELIVERY, TrackingStatus.EXCEPTION)


@pytest.fixture
async def harness(dev_server_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Harness]:
    # The dev server: the time-skipping one takes a tenth of a second for each local step.
    fakes = FakeSystems(stock={"MUG-1": 10, "TEE-2": 10})
    async with Worker(
        dev_server_env.client, task_queue=task_queue, workflows=[OrderWorkflow], activities=fakes.activities()
    ):
        harness = Harness(dev_server_env, task_queue, fakes)
        yield harness
        await harness.stop_leftovers()


async def test_thousands_of_tracking_events_leave_the_order_bounded_and_it_is_still_delivered(
    harness: Harness,
) -> None:
    handle = await harness.start()
    shipped = await harness.until(handle, OrderStatus.SHIPPED)
    first_run = (await handle.describe()).run_id
    entries_before_tracking = shipped.timeline[-1].seq

    def scan(number: int) -> TrackingEvent:
        # Runs of 20 scans in one status, the status changing between runs: 250 changes in all.
        return TrackingEvent(
            event_id=f"scan-{number}",
            order_id=shipped.order_id,
            tracking_number=shipped.shipment.tracking_number if shipped.shipment else "?",
            status=CYCLE[number // SCANS_PER_STATUS % len(CYCLE)],
            at=datetime.now(UTC),
        )

    # Each run's scans at once, in any order; a run is all in before the next is sent.
    for start in range(0, TRACKING_EVENTS, SCANS_PER_STATUS):
        run = range(start, start + SCANS_PER_STATUS)
        await asyncio.gather(*(handle.signal(OrderWorkflow.tracking_event, scan(n)) for n in run))
    # A carrier sending again an event it sent a little earlier is not heard twice.
    await handle.signal(OrderWorkflow.tracking_event, scan(TRACKING_EVENTS - SCANS_PER_STATUS - 1))
    changes = TRACKING_EVENTS // SCANS_PER_STATUS
    state = await until_recorded(harness, handle, entries_before_tracking + changes)

    # The order keeps its newest entries, numbered on from the first; the database was sent every one.
    assert len(state.timeline) == KEPT_TIMELINE_ENTRIES
    assert state.timeline[-1].seq == entries_before_tracking + changes
    assert [entry.event for entry in state.timeline[-3:]] == [
        "carrier: out_for_delivery",
        "carrier: exception",
        "carrier: in_transit",
    ]
    assert state.shipment is not None and state.shipment.status == "in_transit"
    assert len(state.model_dump_json()) < 40_000
    await asyncio.sleep(0.5)
    assert harness.fakes.status_seqs == set(range(1, entries_before_tracking + changes + 1))
    # A status write is the same size for the 5,000th scan as for the first.
    assert max(harness.fakes.status_bytes) < 2_000
    # The history was carried on in new runs before it grew long.
    current = await handle.describe()
    assert current.run_id != first_run
    assert current.status == WorkflowExecutionStatus.RUNNING
    assert len((await handle.fetch_history()).events) < OrderInput.model_fields["max_history_events"].default + 1_000

    final = await harness.deliver(handle)

    assert final.status == OrderStatus.DELIVERED
    assert final.shipment is not None and final.shipment.status == "delivered"
    assert final.timeline[-1].event == "delivered"
    assert harness.fakes.notifications.count("delivered") == 1
    assert harness.fakes.statuses[-1] == "delivered"


async def until_recorded(harness: Harness, handle, entries: int):  # type: ignore[no-untyped-def]
    """The order's state once its timeline has `entries` entries, each written to the database."""
    for _ in range(3_000):
        state = await handle.query(OrderWorkflow.status)
        if state.timeline[-1].seq >= entries and len(harness.fakes.status_seqs) >= entries:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(harness.fakes.status_seqs)} timeline entries written, not {entries}")
