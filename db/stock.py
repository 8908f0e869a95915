"""The stock ledger: stock per SKU and warehouse, and the reservations that hold it for order lines.

Every function runs inside the caller's transaction. A reservation first locks the SKU's stock rows
(SELECT ... FOR UPDATE, in warehouse order, so two reservations of one SKU queue instead of
deadlocking), so no two transactions can hand out the same unit; the CHECK constraint
reserved <= on_hand stays the last guard. On SQLite FOR UPDATE is ignored, which is fine because
the engine opens every transaction with BEGIN IMMEDIATE and so serialises writers.

Reservations are keyed by (order id, line number, allocation round): asking twice with one key
answers with what the first call answered, stock held or a shortage, and changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import dialect_insert
from db.forecast import receive_on_order
from models.inventory import (
    LineKey,
    ReplaceLinesInput,
    ReplaceLinesResult,
    ReserveLineResult,
    StockLevel,
    WarehouseStock,
)
from models.order import Allocation
from models.tables import LineShortageRow, ReservationRow, SkuRow, StockReceiptRow, StockRow, WarehouseRow

RESERVED = "reserved"
RELEASED = "released"
COMMITTED = "committed"


class StockError(Exception):
    """A stock change that would break the ledger's rules."""


class UnknownSku(StockError):
    def __init__(self, sku: str) -> None:
        super().__init__(f"unknown SKU {sku}")
        self.sku = sku


class StockBelowReserved(StockError):
    def __init__(self, sku: str, warehouse: str, on_hand: int, reserved: int) -> None:
        super().__init__(f"{sku} at {warehouse}: on hand {on_hand} would be below the {reserved} units reserved")
        self.sku = sku
        self.warehouse = warehouse
        self.on_hand = on_hand
        self.reserved = reserved


def _now() -> datetime:
    return datetime.now(UTC)


async def _ensure_warehouse(session: AsyncSession, code: str) -> None:
    statement = dialect_insert(session, WarehouseRow).values(code=code, name=code)
    await session.execute(statement.on_conflict_do_nothing(index_elements=["code"]))


async def _sku_exists(session: AsyncSession, sku: str) -> bool:
    return (await session.scalar(select(SkuRow.sku).where(SkuRow.sku == sku))) is not None


async def set_on_hand(session: AsyncSession, sku: str, warehouse: str, on_hand: int) -> None:
    """Count of the SKU on the shelf at the warehouse, creating SKU and warehouse when new."""
    if on_hand < 0:
        raise StockError(f"{sku} at {warehouse}: on hand cannot be negative")
    new_sku = dialect_insert(session, SkuRow).values(sku=sku, name=sku, active=True)
    await session.execute(new_sku.on_conflict_do_nothing(index_elements=["sku"]))
    await _ensure_warehouse(session, warehouse)
    # One conditional upsert: the update only happens when the new count still covers what is reserved.
    insert = dialect_insert(session, StockRow).values(sku=sku, warehouse=warehouse, on_hand=on_hand, reserved=0)
    upsert = insert.on_conflict_do_update(
        index_elements=["sku", "warehouse"],
        set_={"on_hand": on_hand},
        where=StockRow.reserved <= on_hand,
    ).returning(StockRow.sku)
    if (await session.execute(upsert)).first() is None:
        reserved = await session.scalar(
            select(StockRow.reserved).where(StockRow.sku == sku, StockRow.warehouse == warehouse)
        )
        raise StockBelowReserved(sku, warehouse, on_hand, reserved or 0)


async def receive_stock(session: AsyncSession, sku: str, warehouse: str, quantity: int, receipt_id: str) -> bool:
    """Add a supplier delivery to on_hand once per receipt id; False when the receipt was already booked."""
    if quantity <= 0:
        raise StockError(f"receipt {receipt_id}: quantity must be positive")
    if not await _sku_exists(session, sku):
        raise UnknownSku(sku)
    await _ensure_warehouse(session, warehouse)
    receipt = (
        dialect_insert(session, StockReceiptRow)
        .values(receipt_id=receipt_id, sku=sku, warehouse=warehouse, quantity=quantity, received_at=_now())
        .on_conflict_do_nothing(index_elements=["receipt_id"])
        .returning(StockReceiptRow.receipt_id)
    )
    if (await session.execute(receipt)).first() is None:
        return False
    await receive_on_order(session, sku, warehouse, quantity)
    insert = dialect_insert(session, StockRow).values(sku=sku, warehouse=warehouse, on_hand=quantity, reserved=0)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=["sku", "warehouse"],
            set_={"on_hand": StockRow.on_hand + quantity},
        )
    )
    return True


async def stock_level(session: AsyncSession, sku: str) -> StockLevel | None:
    """The SKU's stock over all warehouses and per warehouse; None for an unknown SKU."""
    if not await _sku_exists(session, sku):
        return None
    rows = await session.execute(
        select(StockRow.warehouse, StockRow.on_hand, StockRow.reserved)
        .where(StockRow.sku == sku)
        .order_by(StockRow.warehouse)
    )
    return _level(sku, [WarehouseStock(warehouse=w, on_hand=o, reserved=r, available=o - r) for w, o, r in rows])


async def stock_levels(session: AsyncSession) -> list[StockLevel]:
    """Every SKU's stock over all warehouses and per warehouse, by SKU (one with no stock row yet has none)."""
    rows = await session.execute(
        select(SkuRow.sku, StockRow.warehouse, StockRow.on_hand, StockRow.reserved)
        .outerjoin(StockRow, StockRow.sku == SkuRow.sku)
        .order_by(SkuRow.sku, StockRow.warehouse)
    )
    warehouses: dict[str, list[WarehouseStock]] = defaultdict(list)
    for sku, warehouse, on_hand, reserved in rows:
        stock = warehouses[sku]
        if warehouse is not None:
            stock.append(
                WarehouseStock(warehouse=warehouse, on_hand=on_hand, reserved=reserved, available=on_hand - reserved)
            )
    return [_level(sku, stock) for sku, stock in warehouses.items()]


def _level(sku: str, warehouses: list[WarehouseStock]) -> StockLevel:
    on_hand = sum(w.on_hand for w in warehouses)
    reserved = sum(w.reserved for w in warehouses)
    return StockLevel(sku=sku, on_hand=on_hand, reserved=reserved, available=on_hand - reserved, warehouses=warehouses)


async def available_stock(session: AsyncSession, sku: str) -> int:
    """Units on hand and not reserved, over all warehouses (0 for an unknown SKU)."""
    total = await session.scalar(
        select(func.coalesce(func.sum(StockRow.on_hand - StockRow.reserved), 0)).where(StockRow.sku == sku)
    )
    return int(total or 0)


def priority_order(warehouses: Sequence[str], priority: Sequence[str]) -> list[str]:
    """Listed warehouses first, in the listed order; the others after them, by code."""
    rank = {code: index for index, code in enumerate(priority)}
    return sorted(warehouses, key=lambda code: (rank.get(code, len(rank)), code))


def _key_filter(
    key: LineKey, table: type[ReservationRow] | type[LineShortageRow] = ReservationRow
) -> tuple[ColumnElement[bool], ...]:
    return (table.order_id == key.order_id, table.line_no == key.line_no, table.attempt == key.attempt)


async def _held_for(session: AsyncSession, key: LineKey) -> list[Allocation]:
    statement = (
        select(ReservationRow.warehouse, ReservationRow.quantity).where(*_key_filter(key)).order_by(ReservationRow.id)
    )
    return [
        Allocation(warehouse=warehouse, quantity=quantity) for warehouse, quantity in await session.execute(statement)
    ]


def _result(key: LineKey, sku: str, allocations: list[Allocation]) -> ReserveLineResult:
    return ReserveLineResult(line_no=key.line_no, sku=sku, allocations=allocations)


async def reserve_line(
    session: AsyncSession, key: LineKey, sku: str, quantity: int, priority: Sequence[str]
) -> ReserveLineResult:
    """Hold the line's whole quantity across warehouses in priority order, or hold nothing and report the shortage.

    A key asked before gets the first answer back, whatever happened since: the reservation it
    got, even if released or committed, or the shortage it found, even if stock has come in.
    """
    if quantity <= 0:
        raise StockError(f"line {key.line_no} of order {key.order_id}: quantity must be positive")
    locked = await session.execute(
        select(StockRow.warehouse, StockRow.on_hand, StockRow.reserved)
        .where(StockRow.sku == sku)
        .order_by(StockRow.warehouse)
        .with_for_update()
    )
    free = {warehouse: on_hand - reserved for warehouse, on_hand, reserved in locked}
    # Read after taking the lock: a duplicate that held it before us has committed by now.
    held = await _held_for(session, key)
    if held:
        return _result(key, sku, held)
    short = await session.scalar(select(LineShortageRow.quantity).where(*_key_filter(key, LineShortageRow)))
    if short is not None:
        return ReserveLineResult(line_no=key.line_no, sku=sku, shortage=short)

    plan: list[tuple[str, int]] = []
    missing = quantity
    for warehouse in priority_order(list(free), priority):
        if missing == 0:
            break
        if free[warehouse] > 0:
            take = min(free[warehouse], missing)
            plan.append((warehouse, take))
            missing -= take
    if missing > 0:
        await session.execute(
            dialect_insert(session, LineShortageRow)
            .values(
                order_id=key.order_id,
                line_no=key.line_no,
                attempt=key.attempt,
                sku=sku,
                quantity=quantity,
                created_at=_now(),
            )
            .on_conflict_do_nothing(index_elements=["order_id", "line_no", "attempt"])
        )
        return ReserveLineResult(line_no=key.line_no, sku=sku, shortage=quantity)

    now = _now()
    try:
        async with session.begin_nested():
            for warehouse, take in plan:
                # Conditional even under the lock, so the database, not this code, decides what is free.
                changed = await session.execute(
                    update(StockRow)
                    .where(
                        StockRow.sku == sku,
                        StockRow.warehouse == warehouse,
                        StockRow.on_hand - StockRow.reserved >= take,
                    )
                    .values(reserved=StockRow.reserved + take)
                    .returning(StockRow.warehouse)
                    .execution_options(synchronize_session=False)
                )
                if changed.first() is None:
                    raise StockError(f"{sku} at {warehouse} changed during the reservation")
            await session.execute(
                dialect_insert(session, ReservationRow).values(
                    [
                        {
                            "order_id": key.order_id,
                            "line_no": key.line_no,
                            "attempt": key.attempt,
                            "sku": sku,
                            "warehouse": warehouse,
                            "quantity": take,
                            "state": RESERVED,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for warehouse, take in plan
                    ]
                )
            )
    except IntegrityError:
        # A duplicate of this key got in first (possible only where the lock did not apply).
        held = await _held_for(session, key)
        if not held:
            raise
        return _result(key, sku, held)
    return _result(key, sku, [Allocation(warehouse=warehouse, quantity=take) for warehouse, take in plan])


async def _settle(session: AsyncSession, conditions: Sequence[ColumnElement[bool]], state: str) -> int:
    """Move the matching 'reserved' rows to `state` and take them off `reserved` (and off on_hand for a commit).

    Returns the number of units moved. Rows already released or committed are left alone, so a
    second call changes nothing.
    """
    ids = list(
        (
            await session.execute(
                select(ReservationRow.id)
                .where(*conditions, ReservationRow.state == RESERVED)
                .order_by(ReservationRow.id)
                .with_for_update()
            )
        ).scalars()
    )
    if not ids:
        return 0
    moved = await session.execute(
        update(ReservationRow)
        .where(ReservationRow.id.in_(ids), ReservationRow.state == RESERVED)
        .values(state=state, updated_at=_now())
        .returning(ReservationRow.sku, ReservationRow.warehouse, ReservationRow.quantity)
        .execution_options(synchronize_session=False)
    )
    units: dict[tuple[str, str], int] = defaultdict(int)
    for sku, warehouse, quantity in moved:
        units[(sku, warehouse)] += quantity
    # Stock rows in (sku, warehouse) order, the same order every writer takes them in.
    for (sku, warehouse), quantity in sorted(units.items()):
        values = {"reserved": StockRow.reserved - quantity}
        if state == COMMITTED:
            values["on_hand"] = StockRow.on_hand - quantity
        await session.execute(
            update(StockRow)
            .where(StockRow.sku == sku, StockRow.warehouse == warehouse)
            .values(values)
            .execution_options(synchronize_session=False)
        )
    return sum(units.values())


async def release_line(session: AsyncSession, key: LineKey) -> int:
    """Give back what the key holds; returns the units released (0 when nothing was held)."""
    return await _settle(session, _key_filter(key), RELEASED)


async def replace_lines(
    session: AsyncSession, change: ReplaceLinesInput, priority: Sequence[str]
) -> ReplaceLinesResult:
    """Release the `release` keys and reserve every `reserve` line, in one go: all of it, or nothing when any is short.

    The stock rows of every SKU involved are locked first, in (sku, warehouse) order, the order every
    writer takes them in. Asked again (same order and round), it answers as the first time: the lines
    it holds, or the shortages it found, which are kept like an allocation round's.
    """
    skus = sorted({line.sku for line in change.reserve} | set(await _skus_held(session, change.release)))
    await session.execute(
        select(StockRow.sku).where(StockRow.sku.in_(skus)).order_by(StockRow.sku, StockRow.warehouse).with_for_update()
    )
    # Lines in (sku, line) order, answered in that order too.
    wanted = sorted(change.reserve, key=lambda line: (line.sku, line.key.line_no))
    keys = [line.key for line in wanted]
    if await _any_held(session, keys) or await _any_shortage(session, keys):
        return ReplaceLinesResult(lines=[await _first_answer(session, line.key, line.sku) for line in wanted])
    results: list[ReserveLineResult] = []
    savepoint = await session.begin_nested()
    for key in change.release:
        await release_line(session, key)
    for line in wanted:
        results.append(await reserve_line(session, line.key, line.sku, line.quantity, priority))
    if not any(result.shortage for result in results):
        await savepoint.commit()
        return ReplaceLinesResult(lines=results)
    # Short: nothing released, nothing held; the short lines are kept as this round's answer.
    await savepoint.rollback()
    short = [result for result in results if result.shortage]
    await session.execute(
        dialect_insert(session, LineShortageRow)
        .values(
            [
                {
                    "order_id": change.order_id,
                    "line_no": result.line_no,
                    "attempt": change.round,
                    "sku": result.sku,
                    "quantity": result.shortage,
                    "created_at": _now(),
                }
                for result in short
            ]
        )
        .on_conflict_do_nothing(index_elements=["order_id", "line_no", "attempt"])
    )
    return ReplaceLinesResult(
        lines=[
            result if result.shortage else ReserveLineResult(line_no=result.line_no, sku=result.sku)
            for result in results
        ]
    )


async def _skus_held(session: AsyncSession, keys: Sequence[LineKey]) -> list[str]:
    skus: set[str] = set()
    for key in keys:
        skus.update((await session.execute(select(ReservationRow.sku).where(*_key_filter(key)))).scalars())
    return sorted(skus)


async def _any_held(session: AsyncSession, keys: Sequence[LineKey]) -> bool:
    for key in keys:
        if await _held_for(session, key):
            return True
    return False


async def _any_shortage(session: AsyncSession, keys: Sequence[LineKey]) -> bool:
    for key in keys:
        if await session.scalar(select(LineShortageRow.quantity).where(*_key_filter(key, LineShortageRow))):
            return True
    return False


async def _first_answer(session: AsyncSession, key: LineKey, sku: str) -> ReserveLineResult:
    held = await _held_for(session, key)
    if held:
        return _result(key, sku, held)
    short = await session.scalar(select(LineShortageRow.quantity).where(*_key_filter(key, LineShortageRow)))
    return ReserveLineResult(line_no=key.line_no, sku=sku, shortage=short or 0)


async def release_order(session: AsyncSession, order_id: str) -> int:
    """Give back everything the order still holds, whatever line or round; returns the units released."""
    return await _settle(session, (ReservationRow.order_id == order_id,), RELEASED)


async def commit_order(session: AsyncSession, order_id: str) -> int:
    """The order's held stock leaves the warehouses; returns the units committed (0 on a repeat)."""
    return await _settle(session, (ReservationRow.order_id == order_id,), COMMITTED)
