"""What the API's metrics report of the database, read when Prometheus scrapes: four aggregate statements."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.purchasing import NoticeStatus
from models.refund_tables import RefundRow
from models.tables import OrderRow, ReturnRow, ShortageRow


@dataclass(frozen=True)
class ServiceState:
    orders_by_status: dict[str, int]
    # Open shortages: one per order and SKU it waits for.
    open_shortages: int
    open_shortage_units: int
    oldest_open_shortage: datetime | None
    returns_by_status: dict[str, int] = field(default_factory=dict)
    # Returns an operator must look at, e.g. a refund that keeps failing.
    returns_needing_attention: int = 0
    # Open shortages whose latest notice purchasing has not received: pending, failing or refused.
    undelivered_purchasing_notices: int = 0
    refunds_by_status: dict[str, int] = field(default_factory=dict)
    # Refunds an operator must look at: finance keeps failing them.
    refunds_needing_attention: int = 0


async def read_state(session: AsyncSession) -> ServiceState:
    """Orders by status (one GROUP BY over the status index) and the open shortages in one aggregate."""
    by_status = await session.execute(select(OrderRow.status, func.count()).group_by(OrderRow.status))
    undelivered = ShortageRow.notice_status.is_not(None) & (ShortageRow.notice_status != NoticeStatus.DELIVERED.value)
    shortages = await session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(ShortageRow.quantity), 0),
            func.min(ShortageRow.since),
            func.count().filter(undelivered),
        ).where(ShortageRow.resolved_at.is_(None))
    )
    count, units, oldest, notices = shortages.one()
    returns_by_status, flagged = await _by_status(session, ReturnRow)
    refunds_by_status, refunds_flagged = await _by_status(session, RefundRow)
    return ServiceState(
        orders_by_status={status: int(orders) for status, orders in by_status},
        open_shortages=int(count),
        open_shortage_units=int(units),
        # SQLite hands back naive datetimes; everything stored is UTC.
        oldest_open_shortage=oldest.replace(tzinfo=oldest.tzinfo or UTC) if oldest is not None else None,
        returns_by_status=returns_by_status,
        returns_needing_attention=flagged,
        undelivered_purchasing_notices=int(notices),
        refunds_by_status=refunds_by_status,
        refunds_needing_attention=refunds_flagged,
    )


async def _by_status(session: AsyncSession, table: type[ReturnRow] | type[RefundRow]) -> tuple[dict[str, int], int]:
    """Rows of a table with `status` and `needs_attention` per status, and how many are flagged for an operator."""
    rows = await session.execute(
        select(table.status, func.count(), func.count(table.needs_attention)).group_by(table.status)
    )
    by_status: dict[str, int] = {}
    flagged = 0
    for status, total, needing in rows:
        by_status[status] = int(total)
        flagged += int(needing)
    return by_status, flagged
