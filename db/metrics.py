"""What the API's metrics report of the database, read when Prometheus scrapes: three aggregate statements."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.purchasing import NoticeStatus
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
    returns = await session.execute(
        select(ReturnRow.status, func.count(), func.count(ReturnRow.needs_attention)).group_by(ReturnRow.status)
    )
    returns_by_status: dict[str, int] = {}
    flagged = 0
    for status, total, needing in returns:
        returns_by_status[status] = int(total)
        flagged += int(needing)
    return ServiceState(
        orders_by_status={status: int(orders) for status, orders in by_status},
        open_shortages=int(count),
        open_shortage_units=int(units),
        # SQLite hands back naive datetimes; everything stored is UTC.
        oldest_open_shortage=oldest.replace(tzinfo=oldest.tzinfo or UTC) if oldest is not None else None,
        returns_by_status=returns_by_status,
        returns_needing_attention=flagged,
        undelivered_purchasing_notices=int(notices),
    )
