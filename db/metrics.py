"""What the API's metrics report of the database, read when Prometheus scrapes: two aggregate statements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.purchasing import NoticeStatus
from models.tables import OrderRow, ShortageRow


@dataclass(frozen=True)
class ServiceState:
    orders_by_status: dict[str, int]
    # Open shortages: one per order and SKU it waits for.
    open_shortages: int
    open_shortage_units: int
    oldest_open_shortage: datetime | None
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
    return ServiceState(
        orders_by_status={status: int(orders) for status, orders in by_status},
        open_shortages=int(count),
        open_shortage_units=int(units),
        # SQLite hands back naive datetimes; everything stored is UTC.
        oldest_open_shortage=oldest.replace(tzinfo=oldest.tzinfo or UTC) if oldest is not None else None,
        undelivered_purchasing_notices=int(notices),
    )
