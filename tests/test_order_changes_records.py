"""A change's stock and record steps on the real PostgreSQL: all or nothing, once per revision, address sealed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.inventory import InventoryActivities
from activities.orders import OrderRecordActivities
from db import orders
from domain.changes import change_round
from models.inventory import LineKey, ReplaceLinesInput, ReserveLineInput
from models.order import Address, LineState, OrderState, OrderStatus, TimelineEvent
from models.records import RecordChangeInput, RecordOrderInput, StatusChangeInput
from models.tables import OrderLineRow, OrderRow
from tests import builders
from tests.builders import line
from tests.conftest import TEST_KEYRING
from tests.test_inventory import level, reservation_states, stock_in

Sessions = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PARIS = Address(name="Ada Lovelace", line1="1 Rue de Rivoli", city="Paris", postal_code="75001", country="FR")


def key(line_no: int, attempt: int) -> LineKey:
    return LineKey(order_id="o-1", line_no=line_no, attempt=attempt)


def reserve(line_no: int, sku: str, quantity: int, attempt: int) -> ReserveLineInput:
    return ReserveLineInput(key=key(line_no, attempt), sku=sku, quantity=quantity)


async def test_a_change_releases_and_reserves_its_lines_at_once_and_only_once(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "MUG-1", A=3)
    await stock_in(sessionmaker, "TEE-2", A=5)
    inventory = InventoryActivities(sessionmaker, ["A"])
    await inventory.reserve_line(reserve(1, "MUG-1", 2, 1))
    await inventory.reserve_line(reserve(2, "TEE-2", 1, 1))
    # MUG-1 2 → 3 uses the line's own two units and the last free one; TEE-2 is removed.
    change = ReplaceLinesInput(
        order_id="o-1", round=change_round(2), release=[key(1, 1), key(2, 1)], reserve=[reserve(1, "MUG-1", 3, -2)]
    )

    first = await inventory.replace_lines(change)
    again = await inventory.replace_lines(change)

    assert not first.short and first == again
    assert [(result.line_no, [a.quantity for a in result.allocations]) for result in first.lines] == [(1, [3])]
    assert ((await level(sessionmaker, "MUG-1")).reserved, (await level(sessionmaker, "TEE-2")).reserved) == (3, 0)
    assert await reservation_states(sessionmaker, "o-1") == [
        (1, 1, "A", "released", 2),
        (2, 1, "A", "released", 1),
        (1, -2, "A", "reserved", 3),
    ]


async def test_a_change_short_of_one_line_releases_and_reserves_nothing(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "MUG-1", A=3)
    await stock_in(sessionmaker, "CUP-9", A=1)
    inventory = InventoryActivities(sessionmaker, ["A"])
    await inventory.reserve_line(reserve(1, "MUG-1", 2, 1))
    change = ReplaceLinesInput(
        order_id="o-1",
        round=change_round(2),
        release=[key(1, 1)],
        reserve=[reserve(1, "MUG-1", 1, -2), reserve(2, "CUP-9", 4, -2)],
    )

    first = await inventory.replace_lines(change)
    # Stock coming in meanwhile does not change the answer a revision got.
    await stock_in(sessionmaker, "CUP-9", A=10)
    again = await inventory.replace_lines(change)

    assert first.short and first == again
    assert [(result.sku, result.shortage, result.allocations) for result in first.lines] == [
        ("CUP-9", 4, []),
        ("MUG-1", 0, []),
    ]
    assert ((await level(sessionmaker, "MUG-1")).reserved, (await level(sessionmaker, "CUP-9")).reserved) == (2, 0)
    assert await reservation_states(sessionmaker, "o-1") == [(1, 1, "A", "reserved", 2)]


async def test_a_recorded_change_is_read_back_with_its_lines_sealed_address_and_revision(
    sessionmaker: Sessions,
) -> None:
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)
    request = builders.order_request(lines=[line("MUG-1", 2, "12.50"), line("TEE-2", 1, "12.50")])
    await records.record_order(
        RecordOrderInput(order_id="o-1", workflow_id="order-o-1", request=request, received_at=T0)
    )
    placed = OrderState.received("o-1", "order-o-1", request, T0)
    event = TimelineEvent(seq=1, at=T0, status=OrderStatus.RECEIVED, actor="client", event="order received")
    await records.record_status(StatusChangeInput.of(placed, event, version=3))
    changed = placed.model_copy(
        update={
            "lines": [
                LineState(line_no=1, sku="MUG-1", quantity=3, unit_price=Decimal("12.50")),
                LineState(line_no=3, sku="CUP-9", quantity=1, unit_price=Decimal("4.00")),
            ],
            "total": Decimal("41.50"),
            "shipping_address": PARIS,
            "revision": 2,
        }
    )

    await records.record_change(RecordChangeInput(state=changed))
    # A late repeat of an older revision changes nothing.
    await records.record_change(RecordChangeInput(state=placed.model_copy(update={"revision": 2})))

    async with sessionmaker() as session:
        read = await orders.get_order(session, "o-1", TEST_KEYRING)
        row = (await session.execute(select(OrderRow).where(OrderRow.order_id == "o-1"))).scalar_one()
        stored_lines = (
            await session.execute(
                select(OrderLineRow.line_no, OrderLineRow.sku, OrderLineRow.quantity)
                .where(OrderLineRow.order_id == "o-1")
                .order_by(OrderLineRow.line_no)
            )
        ).all()
    assert read is not None
    assert (read.revision, read.total, read.shipping_address) == (2, Decimal("41.50"), PARIS)
    assert [(each.line_no, each.sku, each.quantity) for each in read.lines] == [(1, "MUG-1", 3), (3, "CUP-9", 1)]
    assert (row.revision, row.total) == (2, Decimal("41.50"))
    assert [tuple(each) for each in stored_lines] == [(1, "MUG-1", 3), (3, "CUP-9", 1)]
    # The address is personal: only the sealed part holds it.
    assert row.state is not None and "shipping_address" not in row.state and "Rivoli" not in str(row.state)
    assert row.pii is not None and "Rivoli" not in row.pii
