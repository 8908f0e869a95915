"""Open shortages: which orders wait for which SKU, since when, for how many units.

Rows are keyed by SKU and order; a row is open while resolved_at is null. The replenishment
workflow records and resolves them, purchasing reads them. Each row also says whether purchasing
has been told of it: the key of the latest notice, its status, how often it was tried and the
last error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from models.purchasing import NoticeStatus, Shortage, ShortageList, ShortageNotice
from models.tables import ShortageRow


async def record_shortage(
    session: AsyncSession,
    sku: str,
    order_id: str,
    quantity: int,
    since: datetime,
    *,
    notice_key: str | None = None,
) -> None:
    """Open the order's shortage of the SKU, or update it; a resolved one re-opens with the new quantity and since.

    With a `notice_key`, a notice to purchasing under that key is pending; the same key again changes nothing.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    notice = (
        {
            "notice_key": notice_key,
            "notice_status": NoticeStatus.PENDING.value,
            "notice_attempts": 0,
            "notice_error": None,
        }
        if notice_key is not None
        else {}
    )
    statement = insert(ShortageRow).values(
        sku=sku, order_id=order_id, quantity=quantity, since=since, resolved_at=None, **notice
    )
    table = ShortageRow.__table__.c
    new_notice = table.notice_key.is_distinct_from(statement.excluded.notice_key)
    notice_changes = (
        {
            name: case((new_notice, getattr(statement.excluded, name)), else_=getattr(table, name))
            for name in ("notice_status", "notice_attempts", "notice_error")
        }
        | {"notice_key": statement.excluded.notice_key}
        if notice_key is not None
        else {}
    )
    # An order still waiting keeps its place in the queue: only a re-opened shortage takes the new since.
    statement = statement.on_conflict_do_update(
        index_elements=[table.sku, table.order_id],
        set_={
            "quantity": statement.excluded.quantity,
            "since": case((table.resolved_at.is_(None), table.since), else_=statement.excluded.since),
            "resolved_at": None,
            **notice_changes,
        },
    )
    await session.execute(statement)


async def note_notice_try(
    session: AsyncSession, sku: str, order_id: str, notice_key: str, status: NoticeStatus, error: str | None
) -> None:
    """Count one try to deliver the notice under `notice_key` and note its outcome.

    A try of a notice that a newer one has replaced changes nothing, and a delivered notice stays delivered.
    """
    await session.execute(
        update(ShortageRow)
        .where(
            ShortageRow.sku == sku,
            ShortageRow.order_id == order_id,
            ShortageRow.notice_key == notice_key,
            ShortageRow.notice_status != NoticeStatus.DELIVERED.value,
        )
        .values(notice_status=status.value, notice_attempts=ShortageRow.notice_attempts + 1, notice_error=error)
    )


async def resolve_shortages(session: AsyncSession, sku: str, order_ids: Sequence[str]) -> None:
    """Close the open shortages of these orders for the SKU; already closed or unknown ones are left alone."""
    if not order_ids:
        return
    await session.execute(
        update(ShortageRow)
        .where(
            ShortageRow.sku == sku,
            ShortageRow.order_id.in_(list(order_ids)),
            ShortageRow.resolved_at.is_(None),
        )
        .values(resolved_at=datetime.now(UTC))
    )


async def open_shortages(session: AsyncSession) -> ShortageList:
    """One item per SKU with open shortages, the longest-waiting SKU first."""
    rows = await session.scalars(
        select(ShortageRow)
        .where(ShortageRow.resolved_at.is_(None))
        .order_by(ShortageRow.since, ShortageRow.sku, ShortageRow.order_id)
    )
    items: dict[str, Shortage] = {}
    for row in rows:
        item = items.get(row.sku)
        if item is None:
            item = items[row.sku] = Shortage(sku=row.sku, outstanding_quantity=0, order_ids=[], since=_aware(row.since))
        item.outstanding_quantity += row.quantity
        item.order_ids.append(row.order_id)
        if row.notice_status is not None:
            item.notices.append(
                ShortageNotice(
                    order_id=row.order_id,
                    status=NoticeStatus(row.notice_status),
                    attempts=row.notice_attempts,
                    last_error=row.notice_error,
                )
            )
    return ShortageList(items=list(items.values()))


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored here is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
