"""The scheduled backup's one step: take a backup of every store (backup/store.py), heartbeating meanwhile."""

from __future__ import annotations

import asyncio
import contextlib

from temporalio import activity
from temporalio.exceptions import ApplicationError

from backup.manifest import BackupError
from backup.store import create
from models.backup import BackupRequest, BackupTaken
from settings import Settings

BACKUP_FAILED = "BackupFailed"
HEARTBEAT_SECONDS = 5.0


class BackupActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn
    async def take_backup(self, request: BackupRequest) -> BackupTaken:
        """The copy runs in a thread; this task heartbeats with what it is doing until the copy is done."""
        doing = ["starting"]
        copying = asyncio.create_task(
            asyncio.to_thread(create, self._settings, progress=lambda step: doing.append(step))
        )
        try:
            while True:
                done, _ = await asyncio.wait({copying}, timeout=HEARTBEAT_SECONDS)
                activity.heartbeat(doing[-1])
                if done:
                    break
            created = copying.result()
        except BackupError as error:
            # A configuration fault or a store that does not answer: retried by the policy (it may pass), then
            # the run's failure in the UI, under this type, with the one line the command line would print.
            raise ApplicationError(str(error), type=BACKUP_FAILED) from None
        finally:
            if not copying.done():
                # Cancelled: the copy in its thread cannot be interrupted; let it finish so no half folder stays.
                with contextlib.suppress(Exception):
                    await asyncio.shield(copying)
        activity.logger.info("backup taken", extra={"backup": created.manifest.name, "reason": request.reason})
        return BackupTaken(
            name=created.manifest.name,
            folder=str(created.folder),
            bytes=created.manifest.bytes,
            files=[part.file for part in created.manifest.parts],
            alembic_revision=created.manifest.alembic_revision,
            uploaded_to=created.uploaded_to,
            deleted=created.deleted,
        )
