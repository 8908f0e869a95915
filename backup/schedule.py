"""The `backup-periodic` Temporal schedule: a BackupWorkflow every OMS_BACKUP_INTERVAL, on the worker's task queue.

Registering it again updates it in place, so every start of the stack may register it.
"""

from __future__ import annotations

from temporalio.client import Client

from backup import BACKUP_SCHEDULE_ID, BACKUP_WORKFLOW, BACKUP_WORKFLOW_ID
from models.backup import BackupRequest
from settings import Settings
from temporal_client import ensure_periodic_schedule


async def ensure_backup_schedule(client: Client, settings: Settings) -> str:
    """Create the schedule, or update it to these settings when it exists: "created" or "updated"."""
    if settings.backup_interval is None:
        raise ValueError("no backup interval configured (OMS_BACKUP_INTERVAL)")
    return await ensure_periodic_schedule(
        client,
        BACKUP_SCHEDULE_ID,
        workflow=BACKUP_WORKFLOW,
        arg=BackupRequest(),
        workflow_id=BACKUP_WORKFLOW_ID,
        task_queue=settings.task_queue,
        every=settings.backup_interval,
        note=f"a backup every {settings.backup_interval} into {settings.backup_dir}",
    )
