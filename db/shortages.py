"""Open shortages: which orders wait for which SKU, since when, for how many units.

Rows are keyed by SKU and order; a row is open while resolved_at is null. The replenishment
workflow records and resolves them, purchasing reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from models.purchasing import Shortage, ShortageList
from models.tables import ShortageRow


async def record_shortage(session: AsyncSession, sku: str, order_id: str, quantity: int, since: datetime) -> None:
    """Open the order's shortage of the SKU, or update it; a resolved one re-opens with the new quantity and since."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(ShortageRow).values(sku=sku, order_id=order_id, quantity=quantity, since=since, resolved_at=None)
    table = ShortageRow.__table__.c
    # An order still waiting keeps its place in the queue: only a re-opened shortage takes the new since.
    statement = statement.on_conflict_do_update(
        index_elements=[table.sku, table.order_id],
        set_={
            "quantity": statement.excluded.quantity,
            "since": case((table.resolved_at.is_(None), table.since), else_=statement.excluded.since),
            "resolved_at": None,
        },
    )
    await session.execute(statement)


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
            items[row.sku] = Shortage(
                sku=row.sku, outstanding_quantity=row.quantity, order_ids=[row.order_id], since=_aware(row.since)
            )
        else:
            item.outstanding_quantity += row.quantity
            item.order_ids.append(row.order_id)
    return ShortageList(items=list(items.values()))


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored here is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
