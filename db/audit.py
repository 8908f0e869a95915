"""The audit log: entries are appended and read, never changed (PostgreSQL refuses UPDATE and DELETE)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.orders import InvalidCursor
from models.audit import AuditEntry, AuditOutcome, AuditPage
from models.tables import AuditRow


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def append_entry(session: AsyncSession, entry: AuditEntry) -> None:
    # One INSERT, without the unit of work: this runs for every mutating request.
    await session.execute(insert(AuditRow).values(**entry.model_dump(exclude={"id"})))


def _encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"audit:{entry_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, entry_id = raw.split(":")
        if kind != "audit":
            raise ValueError(kind)
        return int(entry_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidCursor("invalid cursor") from error


async def list_entries(
    session: AsyncSession,
    *,
    key_id: str | None = None,
    action: str | None = None,
    outcome: AuditOutcome | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> AuditPage:
    """Entries newest first, filtered (`since` inclusive, `until` exclusive); `next_cursor` continues the list."""
    query = select(AuditRow)
    if key_id is not None:
        query = query.where(AuditRow.key_id == key_id)
    if action is not None:
        query = query.where(AuditRow.action == action)
    if outcome is not None:
        query = query.where(AuditRow.outcome == outcome.value)
    if since is not None:
        query = query.where(AuditRow.at >= _utc(since))
    if until is not None:
        query = query.where(AuditRow.at < _utc(until))
    if cursor is not None:
        query = query.where(AuditRow.id < _decode_cursor(cursor))
    # One row more than asked tells whether another page exists.
    rows = (await session.scalars(query.order_by(AuditRow.id.desc()).limit(limit + 1))).all()
    items = [
        AuditEntry(
            id=row.id,
            at=_utc(row.at),
            key_id=row.key_id,
            actor=row.actor,
            role=row.role,
            action=row.action,
            target=row.target,
            outcome=AuditOutcome(row.outcome),
            status_code=row.status_code,
            source=row.source,
            request_id=row.request_id,
        )
        for row in rows[:limit]
    ]
    next_cursor = _encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return AuditPage(items=items, next_cursor=next_cursor)
