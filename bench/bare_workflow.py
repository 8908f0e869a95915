"""The ceiling's workflow: one activity, then done. Its own module, so the sandbox can import it by name."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def bare_step(number: int) -> int:
    return number + 1


@workflow.defn
class BareWorkflow:
    @workflow.run
    async def run(self, number: int) -> int:
        return await workflow.execute_activity(bare_step, number, start_to_close_timeout=timedelta(seconds=30))
