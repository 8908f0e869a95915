"""The `demand-forecast` Temporal schedule: a DemandForecastWorkflow every OMS_FORECAST_INTERVAL (daily by default).

The worker registers it at every start; registering again updates it in place, so however often
the worker starts there is one schedule. Operators see it in the Temporal UI and may trigger it.
"""

from __future__ import annotations

from temporalio.client import Client

from models.forecast import FORECAST_SCHEDULE_ID, FORECAST_WORKFLOW, FORECAST_WORKFLOW_ID, ForecastRequest
from settings import Settings
from temporal_client import ensure_periodic_schedule


async def ensure_forecast_schedule(client: Client, settings: Settings) -> str:
    """Create the schedule, or update it to these settings when it exists: "created" or "updated"."""
    if settings.forecast_interval is None:
        raise ValueError("no forecast interval configured (OMS_FORECAST_INTERVAL)")
    return await ensure_periodic_schedule(
        client,
        FORECAST_SCHEDULE_ID,
        workflow=FORECAST_WORKFLOW,
        arg=ForecastRequest(chunk_size=settings.forecast_chunk_size, history_days=settings.forecast_history_days),
        workflow_id=FORECAST_WORKFLOW_ID,
        task_queue=settings.task_queue,
        every=settings.forecast_interval,
        note=f"demand forecast and reorder suggestions every {settings.forecast_interval},"
        f" from {settings.forecast_history_days} days of orders",
    )
