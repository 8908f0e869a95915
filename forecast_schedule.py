"""The `demand-forecast` Temporal schedule: a DemandForecastWorkflow every OMS_FORECAST_INTERVAL (daily by default).

The worker registers it at every start; registering again updates it in place, so however often
the worker starts there is one schedule. Operators see it in the Temporal UI and may trigger it.
"""

from __future__ import annotations

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from models.forecast import FORECAST_SCHEDULE_ID, FORECAST_WORKFLOW, FORECAST_WORKFLOW_ID, ForecastRequest
from settings import Settings


def forecast_schedule(settings: Settings) -> Schedule:
    if settings.forecast_interval is None:
        raise ValueError("no forecast interval configured (OMS_FORECAST_INTERVAL)")
    request = ForecastRequest(chunk_size=settings.forecast_chunk_size, history_days=settings.forecast_history_days)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            FORECAST_WORKFLOW, request, id=FORECAST_WORKFLOW_ID, task_queue=settings.task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=settings.forecast_interval)]),
        # A run still going when the next is due: the next is skipped, never stacked.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(
            note=f"demand forecast and reorder suggestions every {settings.forecast_interval},"
            f" from {settings.forecast_history_days} days of orders"
        ),
    )


async def ensure_forecast_schedule(client: Client, settings: Settings) -> str:
    """Create the schedule, or update it to these settings when it exists: "created" or "updated"."""
    schedule = forecast_schedule(settings)
    try:
        await client.create_schedule(FORECAST_SCHEDULE_ID, schedule)
        return "created"
    except ScheduleAlreadyRunningError:

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(FORECAST_SCHEDULE_ID).update(update)
        return "updated"
