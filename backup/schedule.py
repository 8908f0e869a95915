"""The `backup-periodic` Temporal schedule: a BackupWorkflow every OMS_BACKUP_INTERVAL, on the worker's task queue.

Registering it again updates it in place, so every start of the stack may register it.
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

from backup import BACKUP_SCHEDULE_ID, BACKUP_WORKFLOW, BACKUP_WORKFLOW_ID
from models.backup import BackupRequest
from settings import Settings


def backup_schedule(settings: Settings) -> Schedule:
    if settings.backup_interval is None:
        raise ValueError("no backup interval configured (OMS_BACKUP_INTERVAL)")
    return Schedule(
        action=ScheduleActionStartWorkflow(
            BACKUP_WORKFLOW, BackupRequest(), id=BACKUP_WORKFLOW_ID, task_queue=settings.task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=settings.backup_interval)]),
        # A backup still running when the next is due: the next is skipped, never stacked.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=f"a backup every {settings.backup_interval} into {settings.backup_dir}"),
    )


async def ensure_backup_schedule(client: Client, settings: Settings) -> str:
    """Create the schedule, or update it to these settings when it exists: "created" or "updated"."""
    schedule = backup_schedule(settings)
    try:
        await client.create_schedule(BACKUP_SCHEDULE_ID, schedule)
        return "created"
    except ScheduleAlreadyRunningError:

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(BACKUP_SCHEDULE_ID).update(update)
        return "updated"
