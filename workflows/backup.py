"""The scheduled backup: one run of the `backup-periodic` schedule takes one backup.

A workflow of its own so that operators see every backup, its duration and any failure in the
Temporal UI; the copy itself is an activity that heartbeats while it works.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.backup import BackupActivities
    from backup import BACKUP_WORKFLOW
    from models.backup import BackupRequest, BackupTaken


@workflow.defn(name=BACKUP_WORKFLOW)
class BackupWorkflow:
    @workflow.run
    async def run(self, request: BackupRequest) -> BackupTaken:
        return await workflow.execute_activity_method(
            BackupActivities.take_backup,
            request,
            summary="Back up the order database and the Temporal store",
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=30), maximum_interval=timedelta(minutes=5), maximum_attempts=3
            ),
        )
