"""The ceiling: a workflow that runs one activity and returns, on a worker set up like the order worker.

`python -m bench.bare` runs that worker (sandboxed workflows, the project's data converter)
on OMS_TASK_QUEUE until SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.worker import Worker

from settings import get_settings
from temporal_client import connect


@activity.defn
async def bare_step(number: int) -> int:
    return number + 1


@workflow.defn
class BareWorkflow:
    @workflow.run
    async def run(self, number: int) -> int:
        return await workflow.execute_activity(bare_step, number, start_to_close_timeout=timedelta(seconds=30))


async def main() -> None:
    settings = get_settings()
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Worker(client, task_queue=settings.task_queue, workflows=[BareWorkflow], activities=[bare_step]):
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
