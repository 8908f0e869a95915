"""Record the bulk job workflow's kept histories: `python -m tests.histories.record_bulk <generation>`.

As tests/histories/record.py does for orders: each scenario runs the real bulk job workflow on the
time-skipping server against the workflow tests' stand-in item steps, and its history is written,
unencrypted and without this machine's paths, to bulk/<generation>/ beside this file.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from models.bulk import BulkProgress, CancelJobCommand, ProgressPage, RetryCommand
from tests.histories.record import keep, recording_server
from tests.polling import eventually, until
from tests.test_bulk_workflow import FakeOrders, Jobs
from workflows.bulk import BulkJobWorkflow

HERE = Path(__file__).parent / "bulk"
TASK_QUEUE = "record-bulk-histories"
Handle = WorkflowHandle[BulkJobWorkflow, BulkProgress]
Scenario = Callable[[Jobs], Awaitable[Handle]]


async def completed_with_a_refusal(jobs: Jobs) -> Handle:
    jobs.fakes.refuse["O-2"] = "order is shipped, not waiting for review"
    handle = await jobs.start(["O-1", "O-2", "O-3"], concurrency=2)
    await handle.result()
    return handle


async def failed_item_retried(jobs: Jobs) -> Handle:
    jobs.fakes.failing.add("O-2")
    jobs.fakes.held.add("O-3")
    handle = await jobs.start(["O-1", "O-2", "O-3"], concurrency=1)
    await jobs.env.sleep(20)

    async def failed() -> None:
        assert (await handle.query(BulkJobWorkflow.progress, ProgressPage())).failed == 1

    await eventually(failed, timeout=30)
    jobs.fakes.failing.clear()
    await handle.execute_update(BulkJobWorkflow.retry_failed, RetryCommand())
    jobs.fakes.gate.set()
    await handle.result()
    return handle


async def cancelled(jobs: Jobs) -> Handle:
    refs = [f"O-{n}" for n in range(5)]
    jobs.fakes.held.update(refs)
    handle = await jobs.start(refs, concurrency=2)
    await until(lambda: jobs.fakes.in_flight == 2, timeout=10)
    await handle.execute_update(BulkJobWorkflow.cancel_job, CancelJobCommand())
    jobs.fakes.gate.set()
    await handle.result()
    return handle


async def continued_as_new(jobs: Jobs) -> Handle:
    handle = await jobs.start([f"O-{n}" for n in range(12)], concurrency=3, max_history_events=30)
    await jobs.client.get_workflow_handle(handle.id).result()
    # The first run's history, which ends in its hand-over.
    return jobs.client.get_workflow_handle(handle.id, run_id=handle.result_run_id, result_type=BulkProgress)


SCENARIOS: dict[str, Scenario] = {
    "bulk_completed_with_a_refusal": completed_with_a_refusal,
    "bulk_failed_item_retried": failed_item_retried,
    "bulk_cancelled": cancelled,
    "bulk_continued_as_new": continued_as_new,
}


async def main(generation: str) -> None:
    async with recording_server() as env:
        # Kept last: a run continued as new stops the server skipping time.
        for name, scenario in SCENARIOS.items():
            fakes = FakeOrders()
            async with Worker(
                env.client,
                task_queue=TASK_QUEUE,
                workflows=[BulkJobWorkflow],
                activities=[fakes.act_on_order, fakes.place_order],
            ):
                handle = await scenario(Jobs(env, env.client, TASK_QUEUE, fakes))
                await keep(HERE / generation, name, handle)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.histories.record_bulk <generation>")
    asyncio.run(main(sys.argv[1]))
