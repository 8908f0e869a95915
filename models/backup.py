"""The payloads of the scheduled backup: what the workflow asks of its activity, and what it answers."""

from __future__ import annotations

from pydantic import BaseModel


class BackupRequest(BaseModel):
    # Why the backup is taken, for the UI: "schedule" or the operator's word when triggered by hand.
    reason: str = "schedule"


class BackupTaken(BaseModel):
    name: str
    folder: str
    bytes: int
    files: list[str]
    alembic_revision: str | None = None
    uploaded_to: str | None = None
    deleted: list[str] = []
