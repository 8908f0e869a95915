"""The analytics rollups: every status write moves its order to the cell of its status now, so the cells always
add up to the orders table; the migration counts the orders already there."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.orders import OrderRecordActivities
from db import rollups
from db.engine import sync_url
from db.migrate import alembic_config
from db.orders import get_order
from models.analytics_tables import OrderRollupRow
from models.order import OrderStatus
from models.records import RecordChangeInput
from models.tables import OrderRow
from tests.conftest import TEST_KEYRING
from tests.test_order_records import T0, change, received

Sessions = async_sessionmaker[AsyncSession]
Cells = dict[tuple[datetime, str, str], tuple[int, Decimal]]


async def rollup_cells(sessionmaker: Sessions) -> Cells:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(
                OrderRollupRow.hour,
                OrderRollupRow.status,
                OrderRollupRow.currency,
                OrderRollupRow.orders,
                OrderRollupRow.revenue,
            ).where(OrderRollupRow.orders > 0)
        )
        return {(hour.astimezone(UTC), status, currency): (n, revenue) for hour, status, currency, n, revenue in rows}


async def counted_from_orders(sessionmaker: Sessions) -> Cells:
    cells: Counter[tuple[datetime, str, str]] = Counter()
    money: dict[tuple[datetime, str, str], Decimal] = {}
    async with sessionmaker() as session:
        for placed, status, currency, total in await session.execute(
            select(OrderRow.created_at, OrderRow.status, OrderRow.currency, OrderRow.total)
        ):
            key = (placed.astimezone(UTC).replace(minute=0, second=0, microsecond=0), status, currency)
            cells[key] += 1
            money[key] = money.get(key, Decimal(0)) + total
    return {key: (n, money[key]) for key, n in cells.items()}


async def test_every_status_write_moves_the_order_to_its_status_now_once(sessionmaker: Sessions) -> None:
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)
    later = T0 + timedelta(hours=3, minutes=59)
    # o-1: in order, each write repeated, one arriving late.
    await records.record_order(received("o-1"))
    await records.record_order(received("o-1"))
    for seq, status in enumerate([OrderStatus.ALLOCATING, OrderStatus.SHIPPED, OrderStatus.DELIVERED], start=1):
        await records.record_status(change("o-1", seq, status))
        await records.record_status(change("o-1", seq, status))
    await records.record_status(change("o-1", 2, OrderStatus.SHIPPED))
    # o-2: a status change lands before the order record.
    await records.record_status(change("o-2", 1, OrderStatus.PENDING_REVIEW, created_at=later))
    await records.record_order(received("o-2", at=later))
    # o-3: four changes at once, in reverse.
    await records.record_order(received("o-3", at=later))
    statuses = [OrderStatus.ALLOCATING, OrderStatus.FULFILLING, OrderStatus.SHIPPED, OrderStatus.CANCELLED]
    await asyncio.gather(
        *(
            records.record_status(change("o-3", seq, status, created_at=later))
            for seq, status in reversed(list(enumerate(statuses, 1)))
        )
    )

    cells = await rollup_cells(sessionmaker)
    # Each order is 1 x 10.00 + 2 x 10.00.
    assert cells == {
        (T0, "delivered", "EUR"): (1, Decimal("30.00")),
        (T0 + timedelta(hours=3), "pending_review", "EUR"): (1, Decimal("30.00")),
        (T0 + timedelta(hours=3), "cancelled", "EUR"): (1, Decimal("30.00")),
    }
    assert cells == await counted_from_orders(sessionmaker)


async def test_a_changed_order_is_counted_at_its_new_total_and_moves_on_with_it(sessionmaker: Sessions) -> None:
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)
    await records.record_order(received("o-1"))
    await records.record_status(change("o-1", 1, OrderStatus.PENDING_REVIEW))
    async with sessionmaker() as session:
        placed = await get_order(session, "o-1", TEST_KEYRING)
    assert placed is not None
    # The customer adds units while the order waits for review: 30.00 becomes 55.00.
    changed = placed.model_copy(update={"total": Decimal("55.00"), "revision": 2})
    await records.record_change(RecordChangeInput(state=changed))
    after_change = await rollup_cells(sessionmaker)
    for seq, status in enumerate([OrderStatus.ALLOCATING, OrderStatus.SHIPPED], start=2):
        await records.record_status(change("o-1", seq, status))

    assert after_change == {(T0, "pending_review", "EUR"): (1, Decimal("55.00"))}
    assert await rollup_cells(sessionmaker) == {(T0, "shipped", "EUR"): (1, Decimal("55.00"))}
    assert await rollup_cells(sessionmaker) == await counted_from_orders(sessionmaker)


async def test_the_books_name_a_cell_that_differs_from_its_orders(sessionmaker: Sessions) -> None:
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)
    await records.record_order(received("o-1"))
    async with sessionmaker() as session:
        agreeing = await rollups.mismatches(session)
    async with sessionmaker.begin() as session:
        await session.execute(update(OrderRollupRow).values(revenue=OrderRollupRow.revenue + 5))

    async with sessionmaker() as session:
        differing = await rollups.mismatches(session)

    assert agreeing == []
    assert differing == [
        f"rollup {T0:%Y-%m-%d %H}h received EUR: kept (1, Decimal('35.00')), the orders make (1, Decimal('30.00'))"
    ]


def test_the_migration_counts_the_orders_already_there(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'before.sqlite3'}"
    config = alembic_config(url)
    command.upgrade(config, "0007")
    engine = create_engine(sync_url(url))
    placed = [
        ("a", "2026-11-02 10:05:00.000000", "delivered", "EUR", "20.00"),
        ("b", "2026-11-02 10:59:59.999999", "delivered", "EUR", "40.00"),
        ("c", "2026-11-02 11:00:00.000000", "delivered", "EUR", "5.00"),
        ("d", "2026-11-02 10:30:00.000000", "cancelled", "USD", "7.50"),
    ]
    with engine.begin() as connection:
        for order_id, at, status, currency, total in placed:
            connection.execute(
                text(
                    "INSERT INTO orders (order_id, workflow_id, customer_id, status, total, currency, last_version,"
                    " last_seq, created_at, updated_at) VALUES (:id, :id, 'c', :status, :total, :currency, 0, 1, :at,"
                    " :at)"
                ),
                {"id": order_id, "status": status, "total": total, "currency": currency, "at": at},
            )

    command.upgrade(config, "head")

    with engine.connect() as connection:
        cells = connection.execute(
            text("SELECT hour, status, currency, orders, revenue FROM order_rollups ORDER BY hour, status")
        ).all()
        marks: dict[str, str] = dict(connection.execute(text("SELECT order_id, status FROM order_rollup_marks")).all())
    engine.dispose()
    assert [tuple(cell) for cell in cells] == [
        ("2026-11-02 10:00:00.000000", "cancelled", "USD", 1, 7.5),
        ("2026-11-02 10:00:00.000000", "delivered", "EUR", 2, 60),
        ("2026-11-02 11:00:00.000000", "delivered", "EUR", 1, 5),
    ]
    assert marks == {"a": "delivered", "b": "delivered", "c": "delivered", "d": "cancelled"}


async def test_orders_of_one_hour_moving_opposite_ways_at_once_are_each_counted_once(sessionmaker: Sessions) -> None:
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)
    ids = [f"o-{n}" for n in range(16)]
    for n, order_id in enumerate(ids):
        await records.record_order(received(order_id))
        first = OrderStatus.ALLOCATING if n % 2 else OrderStatus.BACKORDERED
        await records.record_status(change(order_id, 1, first))

    # Half go allocating -> backordered while the other half go backordered -> allocating.
    await asyncio.gather(
        *(
            records.record_status(change(order_id, 2, OrderStatus.BACKORDERED if n % 2 else OrderStatus.ALLOCATING))
            for n, order_id in enumerate(ids)
        )
    )

    cells = await rollup_cells(sessionmaker)
    assert cells == {
        (T0, "allocating", "EUR"): (8, Decimal("240.00")),
        (T0, "backordered", "EUR"): (8, Decimal("240.00")),
    }
    assert cells == await counted_from_orders(sessionmaker)
