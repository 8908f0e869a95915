"""The analytics rollups kept by the order status writes (db.orders): each order counted once, under its status now.

An order is counted in the cell of the UTC hour it was placed in, its status and its currency
(models.analytics_tables). Called in the transaction that writes the order's status, with the
order's row locked, so concurrent writes of one order queue and the cells add up to the orders table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import dialect_insert
from models.analytics_tables import OrderRollupMarkRow, OrderRollupRow
from models.tables import OrderRow


def hour_of(moment: datetime) -> datetime:
    """The UTC hour `moment` falls in."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.replace(minute=0, second=0, microsecond=0)


async def count_order(session: AsyncSession, order_id: str) -> None:
    """Count the order under its status and total now: moved from the status and total it was counted under,
    if either differs (a status write, or a change of its lines); once."""
    found = (
        await session.execute(
            select(
                OrderRow.status,
                OrderRow.created_at,
                OrderRow.currency,
                OrderRow.total,
                OrderRollupMarkRow.status,
                OrderRollupMarkRow.total,
            )
            .outerjoin(OrderRollupMarkRow, OrderRollupMarkRow.order_id == OrderRow.order_id)
            .where(OrderRow.order_id == order_id)
            .with_for_update(of=OrderRow)
        )
    ).first()
    if found is None:
        return
    status, created_at, currency, total, counted, counted_total = found
    if (status, total) == (counted, counted_total):
        return
    hour = hour_of(created_at)
    moves = [(status, 1, total)] if counted is None else [(counted, -1, counted_total), (status, 1, total)]
    # Cells are locked in status order: two orders of one hour moving opposite ways cannot deadlock.
    for cell_status, change, amount in sorted(moves, key=lambda move: (move[0], move[1])):
        await _move(session, hour, cell_status, currency, change, amount)
    mark = dialect_insert(session, OrderRollupMarkRow).values(order_id=order_id, status=status, total=total)
    await session.execute(
        mark.on_conflict_do_update(index_elements=["order_id"], set_={"status": status, "total": total})
    )


async def _move(session: AsyncSession, hour: datetime, status: str, currency: str, orders: int, total: Decimal) -> None:
    if orders < 0:
        # An UPDATE: PostgreSQL checks an upsert's proposed row (a count of -1) before it finds the conflict.
        await session.execute(
            update(OrderRollupRow)
            .where(OrderRollupRow.hour == hour, OrderRollupRow.status == status, OrderRollupRow.currency == currency)
            .values(orders=OrderRollupRow.orders - 1, revenue=OrderRollupRow.revenue - total)
            .execution_options(synchronize_session=False)
        )
        return
    cell = dialect_insert(session, OrderRollupRow).values(
        hour=hour, status=status, currency=currency, orders=1, revenue=total
    )
    await session.execute(
        cell.on_conflict_do_update(
            index_elements=["hour", "status", "currency"],
            set_={"orders": OrderRollupRow.orders + 1, "revenue": OrderRollupRow.revenue + total},
        )
    )


async def mismatches(session: AsyncSession) -> list[str]:
    """Each cell of the rollups that differs from the orders it counts, as a line of text; none when all agree."""
    counted: dict[tuple[datetime, str, str], tuple[int, Decimal]] = {}
    for created_at, status, currency, total in await session.execute(
        select(OrderRow.created_at, OrderRow.status, OrderRow.currency, OrderRow.total)
    ):
        key = (hour_of(created_at), status, currency)
        orders, revenue = counted.get(key, (0, Decimal(0)))
        counted[key] = (orders + 1, revenue + total)
    kept = {
        (hour_of(hour), status, currency): (orders, revenue)
        for hour, status, currency, orders, revenue in await session.execute(
            select(
                OrderRollupRow.hour,
                OrderRollupRow.status,
                OrderRollupRow.currency,
                OrderRollupRow.orders,
                OrderRollupRow.revenue,
            )
        )
        if (orders, revenue) != (0, 0)
    }
    return [
        f"rollup {hour:%Y-%m-%d %H}h {status} {currency}: kept {kept.get(key)}, the orders make {counted.get(key)}"
        for key in sorted(counted.keys() | kept.keys())
        for hour, status, currency in [key]
        if kept.get(key) != counted.get(key)
    ]
