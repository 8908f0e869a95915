"""The bulk job workflow on the time-skipping server, its items' activities stood in for.

Each test starts a job of a few items and reads it the way the API does (api/bulk_client.py): how
many are in flight at once, a refusal recorded and never tried again, a failure retried on request
(in the running job and in a job that has closed), a cancelled job, and a long job carried on in new
runs with every item done once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.bulk import ITEM_REFUSED, heartbeating
from api import bulk_client
from api.refusals import ActionRefused
from models.bulk import (
    BulkAction,
    BulkJobInput,
    BulkJobKind,
    BulkProgress,
    CancelJobCommand,
    ItemInput,
    ItemResult,
    JobItem,
    JobStatus,
    ProgressPage,
    RetryCommand,
)
from models.names import bulk_workflow_id
from security.api_keys import Principal, Role
from settings import Settings
from tests.polling import eventually, until
from workflows.bulk import BulkJobWorkflow

OPERATOR = Principal(key_id="k-1", name="operations desk", role=Role.OPERATOR)


class FakeOrders:
    """The items' activities: each call counted; those `held` wait for `gate`; refused or failing as told."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self.most_in_flight = 0
        self.refuse: dict[str, str] = {}
        self.failing: set[str] = set()
        self.held: set[str] = set()
        self.gate = asyncio.Event()

    @activity.defn(name="act_on_order")
    async def act_on_order(self, item: ItemInput) -> ItemResult:
        return await self._item(item)

    @activity.defn(name="place_order")
    async def place_order(self, item: ItemInput) -> ItemResult:
        return await self._item(item)

    async def _item(self, item: ItemInput) -> ItemResult:
        self.calls[item.ref] += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            # Long enough for the job to start the items it may run beside this one.
            await asyncio.sleep(0.05)
            if item.ref in self.held:
                async with heartbeating():
                    await self.gate.wait()
            if item.ref in self.refuse:
                raise ApplicationError(self.refuse[item.ref], type=ITEM_REFUSED, non_retryable=True)
            if item.ref in self.failing:
                raise RuntimeError("the order did not answer")
            return ItemResult(order_id=item.order_id or f"placed-{item.ref}")
        finally:
            self.in_flight -= 1


@dataclass
class Jobs:
    env: WorkflowEnvironment
    client: Client
    task_queue: str
    fakes: FakeOrders

    @property
    def settings(self) -> Settings:
        return Settings().model_copy(update={"task_queue": self.task_queue})

    async def start(
        self, refs: list[str], *, concurrency: int = 20, max_history_events: int = 4_000
    ) -> WorkflowHandle[BulkJobWorkflow, BulkProgress]:
        job_id = str(uuid.uuid4())
        job = BulkJobInput(
            job_id=job_id,
            kind=BulkJobKind.ACTIONS,
            action=BulkAction.APPROVE,
            reason="checked by hand",
            actor="operator",
            items=[JobItem(ref=ref, order_id=ref) for ref in refs],
            concurrency=concurrency,
            max_history_events=max_history_events,
            created_at=datetime.now(UTC),
        )
        return await self.client.start_workflow(
            BulkJobWorkflow.run, job, id=bulk_workflow_id(job_id), task_queue=self.task_queue
        )


@pytest.fixture
async def jobs(time_skipping_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Jobs]:
    fakes = FakeOrders()
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[BulkJobWorkflow],
        activities=[fakes.act_on_order, fakes.place_order],
    ):
        yield Jobs(time_skipping_env, time_skipping_env.client, task_queue, fakes)


def outcomes(progress: BulkProgress) -> dict[str, str]:
    return {item.ref: item.outcome.value for item in progress.items}


async def test_a_job_keeps_no_more_items_in_flight_than_its_concurrency_and_does_each_once(jobs: Jobs) -> None:
    refs = [f"O-{n}" for n in range(12)]
    handle = await jobs.start(refs, concurrency=3)

    final = await handle.result()

    assert (final.status, final.total, final.done, final.failed) == (JobStatus.COMPLETED, 12, 12, 0)
    assert jobs.fakes.most_in_flight == 3
    assert jobs.fakes.calls == Counter(refs)


async def test_a_refused_item_is_recorded_with_the_orders_reason_and_never_tried_again(jobs: Jobs) -> None:
    jobs.fakes.refuse["O-2"] = "order is shipped, not waiting for review"
    handle = await jobs.start(["O-1", "O-2", "O-3"])

    await handle.result()
    view = await bulk_client.job_view(jobs.client, handle.id.removeprefix("bulk-"))

    assert (view.done, view.refused, view.failed) == (2, 1, 0)
    refused = next(item for item in view.items if item.ref == "O-2")
    assert (refused.outcome, refused.reason) == ("refused", "order is shipped, not waiting for review")
    assert jobs.fakes.calls["O-2"] == 1


async def test_failed_items_of_a_running_job_are_tried_again_on_request_and_only_they(jobs: Jobs) -> None:
    jobs.fakes.failing.add("O-2")
    jobs.fakes.refuse["O-3"] = "order is cancelled"
    # The job stays open while its last item is held.
    jobs.fakes.held.add("O-4")
    handle = await jobs.start(["O-1", "O-2", "O-3", "O-4"], concurrency=1)

    async def failed() -> None:
        # The failing item's tries back off for 15 s in all, skipped here.
        await jobs.env.sleep(4)
        assert (await handle.query(BulkJobWorkflow.progress, ProgressPage())).failed == 1
        assert jobs.fakes.in_flight == 1

    await eventually(failed, timeout=30, interval=0)
    jobs.fakes.failing.clear()
    retried = await handle.execute_update(BulkJobWorkflow.retry_failed, RetryCommand())
    jobs.fakes.gate.set()
    final = await handle.result()

    assert retried == 1
    assert outcomes(final) == {"O-1": "done", "O-2": "done", "O-3": "refused", "O-4": "done"}
    # Five tries before it failed, one more on request; the refused item was never tried again.
    assert (jobs.fakes.calls["O-2"], jobs.fakes.calls["O-3"]) == (6, 1)


async def test_failed_items_of_a_closed_job_are_tried_again_in_a_new_run_of_the_same_job(jobs: Jobs) -> None:
    jobs.fakes.failing.add("O-2")
    handle = await jobs.start(["O-1", "O-2"])
    first = await handle.result()
    assert (first.status, first.failed) == (JobStatus.COMPLETED, 1)
    job_id = handle.id.removeprefix("bulk-")

    jobs.fakes.failing.clear()
    accepted = await bulk_client.retry_failed(jobs.client, job_id, actor=OPERATOR, settings=jobs.settings)
    final: BulkProgress = await jobs.client.get_workflow_handle(handle.id, result_type=BulkProgress).result()

    assert accepted.retried == 1
    assert outcomes(final) == {"O-1": "done", "O-2": "done"}
    assert jobs.fakes.calls == Counter({"O-1": 1, "O-2": 6})
    view = await bulk_client.job_view(jobs.client, job_id)
    assert (view.status, view.done, view.failed) == ("completed", 2, 0)


async def test_a_cancelled_job_starts_no_more_items_and_ends_cancelled(jobs: Jobs) -> None:
    refs = [f"O-{n}" for n in range(6)]
    jobs.fakes.held.update(refs)
    handle = await jobs.start(refs, concurrency=2)
    await until(lambda: jobs.fakes.in_flight == 2, timeout=10)

    untried = await handle.execute_update(BulkJobWorkflow.cancel_job, CancelJobCommand())
    jobs.fakes.gate.set()
    final = await handle.result()

    assert untried == 4
    assert final.status == JobStatus.CANCELLED
    assert Counter(outcomes(final).values()) == {"done": 2, "cancelled": 4}
    assert sum(jobs.fakes.calls.values()) == 2


async def test_a_job_cancelled_from_the_temporal_ui_ends_as_the_cancel_update_ends_it(jobs: Jobs) -> None:
    refs = [f"O-{n}" for n in range(4)]
    jobs.fakes.held.update(refs)
    handle = await jobs.start(refs, concurrency=1)
    await until(lambda: jobs.fakes.in_flight == 1, timeout=10)

    await handle.cancel()
    jobs.fakes.gate.set()
    final = await handle.result()

    assert final.status == JobStatus.CANCELLED
    assert outcomes(final) == {"O-0": "done", "O-1": "cancelled", "O-2": "cancelled", "O-3": "cancelled"}


async def test_a_job_terminated_from_outside_is_a_refusal_to_read_not_a_server_error(jobs: Jobs) -> None:
    jobs.fakes.held.add("O-1")
    handle = await jobs.start(["O-1"])
    await until(lambda: jobs.fakes.in_flight == 1, timeout=10)
    await handle.terminate("stopped by hand")
    jobs.fakes.gate.set()

    with pytest.raises(ActionRefused) as refused:
        await bulk_client.job_view(jobs.client, handle.id.removeprefix("bulk-"))

    assert refused.value.detail == f"bulk job {handle.id.removeprefix('bulk-')} was terminated"


async def test_a_long_job_carries_on_in_new_runs_with_every_item_done_once(jobs: Jobs) -> None:
    # Kept last: a run continued as new while a task is worked on stops the server skipping time.
    refs = [f"O-{n}" for n in range(40)]
    handle = await jobs.start(refs, concurrency=4, max_history_events=60)

    final: BulkProgress = await jobs.client.get_workflow_handle(handle.id, result_type=BulkProgress).result()

    first_run = await jobs.client.get_workflow_handle(handle.id, run_id=handle.result_run_id).describe()
    assert first_run.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    latest = await jobs.client.get_workflow_handle(handle.id).describe()
    assert latest.run_id != handle.result_run_id
    assert (final.status, final.total, final.done) == (JobStatus.COMPLETED, 40, 40)
    assert [item.ref for item in final.items] == refs
    assert jobs.fakes.calls == Counter(refs)
