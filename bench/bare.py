"""The ceiling: a workflow that runs one activity and returns, on a worker set up like the order worker.

`python -m bench.bare` runs that worker (the project's data converter, interceptors and workflow runner)
on OMS_TASK_QUEUE until SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal

from temporalio.worker import Worker

from bench.bare_workflow import BareWorkflow, bare_step
from observability.interceptors import WorkerContextInterceptor
from settings import get_settings
from temporal_client import connect, workflow_runner


async def main() -> None:
    settings = get_settings()
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[BareWorkflow],
        activities=[bare_step],
        interceptors=[WorkerContextInterceptor()],
        max_cached_workflows=settings.worker_max_cached_workflows,
        workflow_runner=workflow_runner(settings),
    ):
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
