"""The stock ledger as the order workflow sees it: no oversell, whole lines, one effect per key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.inventory import InventoryActivities
from db import stock
from db.engine import create_engine, create_sessionmaker
from db.migrate import upgrade
from models.inventory import CommitOrderInput, LineKey, ReserveLineInput, StockLevel, WarehouseStock
from models.order import Allocation
from models.tables import ReservationRow, StockRow

Sessions = async_sessionmaker[AsyncSession]


async def stock_in(sessionmaker: Sessions, sku: str, **on_hand: int) -> None:
    async with sessionmaker.begin() as session:
        for warehouse, quantity in on_hand.items():
            await stock.set_on_hand(session, sku, warehouse, quantity)


async def level(sessionmaker: Sessions, sku: str) -> StockLevel:
    async with sessionmaker() as session:
        found = await stock.stock_level(session, sku)
    assert found is not None
    return found


async def reservation_states(sessionmaker: Sessions, order_id: str) -> list[tuple[int, int, str, str, int]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(
                ReservationRow.line_no,
                ReservationRow.attempt,
                ReservationRow.warehouse,
                ReservationRow.state,
                ReservationRow.quantity,
            )
            .where(ReservationRow.order_id == order_id)
            .order_by(ReservationRow.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def line(order_id: str, quantity: int, sku: str = "HOT-1", line_no: int = 1, attempt: int = 1) -> ReserveLineInput:
    return ReserveLineInput(
        key=LineKey(order_id=order_id, line_no=line_no, attempt=attempt), sku=sku, quantity=quantity
    )


async def test_hot_sku_never_oversells_under_200_concurrent_reservations(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "HOT-1", A=30, B=20)
    inventory = InventoryActivities(sessionmaker, [])
    done = asyncio.Event()
    oversold: list[tuple[str, int, int]] = []
    samples = 0

    async def watch() -> None:
        nonlocal samples
        while not done.is_set():
            async with sessionmaker() as session:
                rows = await session.execute(select(StockRow.warehouse, StockRow.on_hand, StockRow.reserved))
                oversold.extend((w, on_hand, reserved) for w, on_hand, reserved in rows if reserved > on_hand)
            samples += 1
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(*(inventory.reserve_line(line(f"o-{n}", 1)) for n in range(200)))
    done.set()
    await watcher

    assert sum(1 for r in results if r.allocations and r.shortage == 0) == 50
    assert sum(1 for r in results if not r.allocations and r.shortage == 1) == 150
    final = await level(sessionmaker, "HOT-1")
    assert (final.on_hand, final.reserved, final.available) == (50, 50, 0)
    assert samples > 1
    assert oversold == []
    async with sessionmaker() as session:
        held = await session.scalar(select(func.sum(ReservationRow.quantity)).where(ReservationRow.state == "reserved"))
    assert held == 50


async def test_a_line_is_split_across_warehouses_in_priority_order(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "SPLIT-1", D=1, C=2, B=3, A=5)
    # C, then B, then the unlisted ones by code: A, D.
    inventory = InventoryActivities(sessionmaker, ["C", "B"])

    result = await inventory.reserve_line(line("o-1", 9, sku="SPLIT-1"))

    assert result.shortage == 0
    assert result.allocations == [
        Allocation(warehouse="C", quantity=2),
        Allocation(warehouse="B", quantity=3),
        Allocation(warehouse="A", quantity=4),
    ]
    after = await level(sessionmaker, "SPLIT-1")
    assert after.warehouses == [
        WarehouseStock(warehouse="A", on_hand=5, reserved=4, available=1),
        WarehouseStock(warehouse="B", on_hand=3, reserved=3, available=0),
        WarehouseStock(warehouse="C", on_hand=2, reserved=2, available=0),
        WarehouseStock(warehouse="D", on_hand=1, reserved=0, available=1),
    ]


async def test_a_line_bigger_than_the_stock_reserves_nothing(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "WHOLE-1", A=3, B=4)
    inventory = InventoryActivities(sessionmaker, [])

    result = await inventory.reserve_line(line("o-1", 8, sku="WHOLE-1"))

    assert result.allocations == []
    assert result.shortage == 8
    assert (await level(sessionmaker, "WHOLE-1")).reserved == 0
    assert await reservation_states(sessionmaker, "o-1") == []
    assert await inventory.available_stock("WHOLE-1") == 7


async def test_an_unknown_sku_is_a_shortage(sessionmaker: Sessions) -> None:
    result = await InventoryActivities(sessionmaker, []).reserve_line(line("o-1", 2, sku="NOPE"))
    assert (result.allocations, result.shortage) == ([], 2)


async def test_reserving_the_same_key_twice_holds_stock_once(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "KEY-1", A=2, B=5)
    inventory = InventoryActivities(sessionmaker, [])

    first = await inventory.reserve_line(line("o-1", 4, sku="KEY-1"))
    again = await inventory.reserve_line(line("o-1", 4, sku="KEY-1"))

    assert first.allocations == [Allocation(warehouse="A", quantity=2), Allocation(warehouse="B", quantity=2)]
    assert again == first
    assert (await level(sessionmaker, "KEY-1")).reserved == 4


async def test_concurrent_duplicates_of_one_key_make_one_reservation(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "DUP-1", A=100)
    inventory = InventoryActivities(sessionmaker, [])

    results = await asyncio.gather(*(inventory.reserve_line(line("o-1", 3, sku="DUP-1")) for _ in range(20)))

    assert all(r.allocations == [Allocation(warehouse="A", quantity=3)] for r in results)
    assert await reservation_states(sessionmaker, "o-1") == [(1, 1, "A", "reserved", 3)]
    assert (await level(sessionmaker, "DUP-1")).reserved == 3


async def test_releasing_twice_gives_the_stock_back_once(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "REL-1", A=10)
    inventory = InventoryActivities(sessionmaker, [])
    await inventory.reserve_line(line("o-1", 4, sku="REL-1"))
    await inventory.reserve_line(line("o-2", 5, sku="REL-1"))
    key = LineKey(order_id="o-1", line_no=1, attempt=1)

    await inventory.release_line(key)
    await inventory.release_line(key)

    after = await level(sessionmaker, "REL-1")
    assert (after.on_hand, after.reserved) == (10, 5)
    assert await reservation_states(sessionmaker, "o-1") == [(1, 1, "A", "released", 4)]


async def test_concurrent_releases_give_the_stock_back_once(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "REL-2", A=3, B=3)
    inventory = InventoryActivities(sessionmaker, [])
    await inventory.reserve_line(line("o-1", 5, sku="REL-2"))
    await inventory.reserve_line(line("o-2", 1, sku="REL-2"))

    await asyncio.gather(*(inventory.release_line(LineKey(order_id="o-1", line_no=1, attempt=1)) for _ in range(10)))

    assert (await level(sessionmaker, "REL-2")).reserved == 1


async def test_committing_twice_ships_the_stock_once(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "COM-1", A=10)
    await stock_in(sessionmaker, "COM-2", A=2, B=2)
    inventory = InventoryActivities(sessionmaker, [])
    await inventory.reserve_line(line("o-1", 3, sku="COM-1", line_no=1))
    await inventory.reserve_line(line("o-1", 3, sku="COM-2", line_no=2))

    await asyncio.gather(*(inventory.commit_order(CommitOrderInput(order_id="o-1")) for _ in range(2)))
    await inventory.commit_order(CommitOrderInput(order_id="o-1"))

    first = await level(sessionmaker, "COM-1")
    second = await level(sessionmaker, "COM-2")
    assert (first.on_hand, first.reserved) == (7, 0)
    assert (second.on_hand, second.reserved) == (1, 0)
    assert [w.on_hand for w in second.warehouses] == [0, 1]
    assert {state for *_, state, _ in await reservation_states(sessionmaker, "o-1")} == {"committed"}


async def test_releasing_an_order_gives_back_every_line_and_round_it_holds_once(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "ALL-1", A=10)
    inventory = InventoryActivities(sessionmaker, [])
    await inventory.reserve_line(line("o-1", 2, sku="ALL-1", line_no=1, attempt=1))
    await inventory.release_line(LineKey(order_id="o-1", line_no=1, attempt=1))
    await inventory.reserve_line(line("o-1", 3, sku="ALL-1", line_no=1, attempt=2))
    await inventory.reserve_line(line("o-1", 4, sku="ALL-1", line_no=2, attempt=2))
    await inventory.reserve_line(line("o-2", 1, sku="ALL-1"))

    async with sessionmaker.begin() as session:
        released = await stock.release_order(session, "o-1")
    async with sessionmaker.begin() as session:
        again = await stock.release_order(session, "o-1")

    assert (released, again) == (7, 0)
    after = await level(sessionmaker, "ALL-1")
    assert (after.on_hand, after.reserved) == (10, 1)
    assert {state for *_, state, _ in await reservation_states(sessionmaker, "o-1")} == {"released"}


async def test_release_after_commit_changes_nothing(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "COM-3", A=10)
    inventory = InventoryActivities(sessionmaker, [])
    await inventory.reserve_line(line("o-1", 4, sku="COM-3"))
    await inventory.commit_order(CommitOrderInput(order_id="o-1"))

    await inventory.release_line(LineKey(order_id="o-1", line_no=1, attempt=1))

    after = await level(sessionmaker, "COM-3")
    assert (after.on_hand, after.reserved) == (6, 0)
    assert await reservation_states(sessionmaker, "o-1") == [(1, 1, "A", "committed", 4)]


async def test_commit_after_release_ships_nothing(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "COM-4", A=10)
    inventory = InventoryActivities(sessionmaker, [])
    await inventory.reserve_line(line("o-1", 4, sku="COM-4"))
    await inventory.release_line(LineKey(order_id="o-1", line_no=1, attempt=1))

    await inventory.commit_order(CommitOrderInput(order_id="o-1"))

    after = await level(sessionmaker, "COM-4")
    assert (after.on_hand, after.reserved) == (10, 0)


async def test_a_new_attempt_after_release_reserves_again(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "ATT-1", A=5)
    inventory = InventoryActivities(sessionmaker, [])
    await inventory.reserve_line(line("o-1", 5, sku="ATT-1", attempt=1))
    await inventory.release_line(LineKey(order_id="o-1", line_no=1, attempt=1))

    stale = await inventory.reserve_line(line("o-1", 5, sku="ATT-1", attempt=1))
    assert (await level(sessionmaker, "ATT-1")).reserved == 0, "a released key is not reserved again"
    fresh = await inventory.reserve_line(line("o-1", 5, sku="ATT-1", attempt=2))

    assert stale.allocations == [Allocation(warehouse="A", quantity=5)]
    assert fresh.allocations == [Allocation(warehouse="A", quantity=5)]
    assert (await level(sessionmaker, "ATT-1")).reserved == 5
    assert await reservation_states(sessionmaker, "o-1") == [(1, 1, "A", "released", 5), (1, 2, "A", "reserved", 5)]


async def test_a_round_that_found_too_little_answers_the_same_when_asked_again_after_stock_came_in(
    sessionmaker: Sessions,
) -> None:
    # A workflow task lost after its round ran asks again: it must take the same path, not ship on stock it never held.
    await stock_in(sessionmaker, "LATE-1", A=2)
    inventory = InventoryActivities(sessionmaker, [])
    short = await inventory.reserve_line(line("o-1", 5, sku="LATE-1"))
    async with sessionmaker.begin() as session:
        await stock.receive_stock(session, "LATE-1", "A", 10, "rcpt-late")

    again = await inventory.reserve_line(line("o-1", 5, sku="LATE-1"))
    next_round = await inventory.reserve_line(line("o-1", 5, sku="LATE-1", attempt=2))

    assert (short.shortage, again.shortage, again.allocations) == (5, 5, [])
    assert next_round.allocations == [Allocation(warehouse="A", quantity=5)]
    assert (await level(sessionmaker, "LATE-1")).reserved == 5


async def test_on_hand_cannot_be_set_below_what_is_reserved(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "SET-1", A=10)
    await InventoryActivities(sessionmaker, []).reserve_line(line("o-1", 6, sku="SET-1"))

    with pytest.raises(stock.StockBelowReserved):
        async with sessionmaker.begin() as session:
            await stock.set_on_hand(session, "SET-1", "A", 5)
    await stock_in(sessionmaker, "SET-1", A=6)

    after = await level(sessionmaker, "SET-1")
    assert (after.on_hand, after.reserved, after.available) == (6, 6, 0)


async def test_receiving_stock_counts_each_receipt_once(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "REC-1", A=1)

    async with sessionmaker.begin() as session:
        first = await stock.receive_stock(session, "REC-1", "A", 5, "rcpt-1")
    async with sessionmaker.begin() as session:
        again = await stock.receive_stock(session, "REC-1", "A", 5, "rcpt-1")
    async with sessionmaker.begin() as session:
        elsewhere = await stock.receive_stock(session, "REC-1", "NEW", 2, "rcpt-2")

    assert (first, again, elsewhere) == (True, False, True)
    after = await level(sessionmaker, "REC-1")
    assert [(w.warehouse, w.on_hand) for w in after.warehouses] == [("A", 6), ("NEW", 2)]


async def test_receiving_an_unknown_sku_is_refused(sessionmaker: Sessions) -> None:
    with pytest.raises(stock.UnknownSku):
        async with sessionmaker.begin() as session:
            await stock.receive_stock(session, "GHOST", "A", 5, "rcpt-1")
    async with sessionmaker() as session:
        assert await stock.stock_level(session, "GHOST") is None


async def test_the_database_refuses_reserved_above_on_hand(sessionmaker: Sessions) -> None:
    await stock_in(sessionmaker, "CHK-1", A=3)

    with pytest.raises(IntegrityError):
        async with sessionmaker.begin() as session:
            await session.execute(update(StockRow).where(StockRow.sku == "CHK-1").values(reserved=4))

    assert (await level(sessionmaker, "CHK-1")).reserved == 0


@pytest.fixture
async def sqlite_sessionmaker(tmp_path: Path) -> AsyncIterator[Sessions]:
    url = f"sqlite:///{tmp_path}/stock.sqlite3"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def test_the_same_ledger_works_on_sqlite(sqlite_sessionmaker: Sessions) -> None:
    sessions = sqlite_sessionmaker
    await stock_in(sessions, "LITE-1", A=2, B=4)
    inventory = InventoryActivities(sessions, ["B"])

    first = await inventory.reserve_line(line("o-1", 5, sku="LITE-1"))
    again = await inventory.reserve_line(line("o-1", 5, sku="LITE-1"))
    too_big = await inventory.reserve_line(line("o-2", 2, sku="LITE-1"))
    assert first.allocations == [Allocation(warehouse="B", quantity=4), Allocation(warehouse="A", quantity=1)]
    assert again == first
    assert too_big.shortage == 2
    assert (await level(sessions, "LITE-1")).reserved == 5

    await inventory.release_line(LineKey(order_id="o-1", line_no=1, attempt=1))
    await inventory.release_line(LineKey(order_id="o-1", line_no=1, attempt=1))
    assert (await level(sessions, "LITE-1")).reserved == 0

    await inventory.reserve_line(line("o-1", 5, sku="LITE-1", attempt=2))
    await inventory.commit_order(CommitOrderInput(order_id="o-1"))
    await inventory.commit_order(CommitOrderInput(order_id="o-1"))
    after = await level(sessions, "LITE-1")
    assert (after.on_hand, after.reserved) == (1, 0)

    await inventory.reserve_line(line("o-3", 1, sku="LITE-1"))
    with pytest.raises(stock.StockBelowReserved):
        async with sessions.begin() as session:
            await stock.set_on_hand(session, "LITE-1", "A", 0)
    with pytest.raises(IntegrityError):
        async with sessions.begin() as session:
            await session.execute(text("UPDATE stock SET reserved = on_hand + 1 WHERE sku = 'LITE-1'"))


async def test_sqlite_never_oversells_under_concurrent_reservations(sqlite_sessionmaker: Sessions) -> None:
    await stock_in(sqlite_sessionmaker, "LITE-2", A=3, B=2)
    inventory = InventoryActivities(sqlite_sessionmaker, [])

    results = await asyncio.gather(*(inventory.reserve_line(line(f"o-{n}", 1, sku="LITE-2")) for n in range(20)))

    assert sum(1 for r in results if r.allocations) == 5
    assert sum(r.shortage for r in results) == 15
    after = await level(sqlite_sessionmaker, "LITE-2")
    assert (after.on_hand, after.reserved) == (5, 5)
