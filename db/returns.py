"""Returns in the database: the return claimed with its lines, its state as the workflow writes it,
the goods received (restocked once, or written off), and the listing.

Every function runs inside the caller's transaction. A new return is claimed with the order's row
locked, so two returns of one order asked at once cannot both cover the same units.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import dialect_insert
from db.orders import IdempotencyConflict, decode_cursor, encode_cursor
from db.stock import UnknownSku, receive_stock
from db.webhooks import enqueue_return_event
from models.returns import (
    VOID_RETURN_STATUSES,
    Condition,
    ReceiptLine,
    ReturnPage,
    ReturnState,
    ReturnStatus,
    ReturnSummary,
)
from models.tables import (
    OrderRow,
    ReturnIdempotencyKeyRow,
    ReturnLineRow,
    ReturnReceiptRow,
    ReturnRow,
    SkuRow,
    StockWriteOffRow,
    WarehouseRow,
)
from models.webhooks import RETURN_EVENT_PREFIX, ReturnWebhookEvent


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def lock_order(session: AsyncSession, order_id: str) -> None:
    """Hold the order's row until the transaction ends: returns of one order are claimed one at a time."""
    await session.execute(select(OrderRow.order_id).where(OrderRow.order_id == order_id).with_for_update())


async def covered_units(session: AsyncSession, order_id: str) -> dict[str, int]:
    """Units per SKU that the order's returns cover: all asked of an open return, what was received of a closed one."""
    void = [status.value for status in VOID_RETURN_STATUSES]
    open_rows = await session.execute(
        select(ReturnLineRow.sku, func.sum(ReturnLineRow.quantity))
        .join(ReturnRow, ReturnRow.return_id == ReturnLineRow.return_id)
        .where(
            ReturnLineRow.order_id == order_id,
            ReturnRow.status.not_in([*void, ReturnStatus.CLOSED.value]),
        )
        .group_by(ReturnLineRow.sku)
    )
    covered: dict[str, int] = {sku: int(units) for sku, units in open_rows}
    closed_rows = await session.execute(
        select(ReturnReceiptRow.sku, func.sum(ReturnReceiptRow.quantity))
        .join(ReturnRow, ReturnRow.return_id == ReturnReceiptRow.return_id)
        .where(ReturnRow.order_id == order_id, ReturnRow.status == ReturnStatus.CLOSED.value)
        .group_by(ReturnReceiptRow.sku)
    )
    for sku, units in closed_rows:
        covered[sku] = covered.get(sku, 0) + int(units)
    return covered


async def claim_idempotency_key(session: AsyncSession, owner: str, key: str, request_hash: str, return_id: str) -> str:
    """The return this key stands for: `return_id` when the key is new, the first return's id on a repeat.

    The same key with another body raises IdempotencyConflict.
    """
    return await claim_key(session, ReturnIdempotencyKeyRow, "return_id", owner, key, request_hash, return_id)


async def claim_key(
    session: AsyncSession, table: type[Any], id_name: str, owner: str, key: str, request_hash: str, new_id: str
) -> str:
    """The id a caller's key stands for in a keys table (owner, key, request_hash, <id_name>, created_at):
    `new_id` when the key is new, the first id on a repeat; IdempotencyConflict for another body."""
    values = {"owner": owner, "key": key, "request_hash": request_hash, id_name: new_id, "created_at": _now()}
    insert = dialect_insert(session, table).values(values).on_conflict_do_nothing(index_elements=["owner", "key"])
    await session.execute(insert)
    row = (
        await session.execute(
            select(getattr(table, id_name), table.request_hash).where(table.owner == owner, table.key == key)
        )
    ).one()
    held_id, held_hash = row
    if held_hash != request_hash:
        raise IdempotencyConflict(key, held_id)
    return str(held_id)


async def return_exists(session: AsyncSession, return_id: str) -> bool:
    return (await session.scalar(select(ReturnRow.return_id).where(ReturnRow.return_id == return_id))) is not None


async def create_return(session: AsyncSession, state: ReturnState) -> None:
    """The return as requested, with the lines it covers of its order."""
    now = state.created_at
    await session.execute(
        dialect_insert(session, ReturnRow).values(
            return_id=state.return_id,
            order_id=state.order_id,
            workflow_id=state.workflow_id,
            client_id=state.client_id,
            customer_id=state.customer_id,
            status=state.status.value,
            value=state.value,
            currency=state.currency,
            last_seq=0,
            state=state.model_dump(mode="json"),
            created_at=now,
            updated_at=now,
        )
    )
    await session.execute(
        dialect_insert(session, ReturnLineRow).values(
            [
                {
                    "return_id": state.return_id,
                    "line_no": line.line_no,
                    "order_id": state.order_id,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "reason": line.reason.value,
                }
                for line in state.lines
            ]
        )
    )


async def forget_return(session: AsyncSession, return_id: str) -> None:
    """Take back a return whose workflow never started, so that its units may be returned again."""
    await session.execute(delete(ReturnLineRow).where(ReturnLineRow.return_id == return_id))
    await session.execute(delete(ReturnRow).where(ReturnRow.return_id == return_id))


async def record_state(session: AsyncSession, state: ReturnState, seq: int) -> bool:
    """Write the return as its workflow reports it, unless a later report (higher seq) is already written.

    A report that changes the return's status writes its webhook event (return.<status>) too.
    """
    before = (
        await session.execute(
            select(ReturnRow.status, ReturnRow.last_seq).where(ReturnRow.return_id == state.return_id).with_for_update()
        )
    ).first()
    values: dict[str, Any] = {
        "status": state.status.value,
        "needs_attention": state.needs_attention,
        "last_seq": seq,
        "state": state.model_dump(mode="json"),
        "updated_at": state.updated_at,
    }
    if state.label is not None:
        values["tracking_number"] = state.label.tracking_number
    changed = await session.execute(
        update(ReturnRow)
        .where(ReturnRow.return_id == state.return_id, ReturnRow.last_seq < seq)
        .values(values)
        .returning(ReturnRow.return_id)
        .execution_options(synchronize_session=False)
    )
    if changed.first() is None:
        return False
    # The row is written `requested` when the return is claimed: the workflow's first report announces it.
    if before is not None and (before.status != state.status.value or before.last_seq == 0) and state.timeline:
        entry = state.timeline[-1]
        await enqueue_return_event(
            session,
            ReturnWebhookEvent(
                type=f"{RETURN_EVENT_PREFIX}{state.status.value}",
                order_id=state.order_id,
                return_id=state.return_id,
                status=state.status,
                seq=entry.seq,
                at=_utc(entry.at),
                event=entry.event,
            ),
        )
    return True


async def remember_tracking_number(session: AsyncSession, return_id: str, tracking_number: str) -> None:
    await session.execute(
        update(ReturnRow)
        .where(ReturnRow.return_id == return_id)
        .values(tracking_number=tracking_number)
        .execution_options(synchronize_session=False)
    )


async def return_of_tracking_number(session: AsyncSession, tracking_number: str) -> str | None:
    """The return whose label has this tracking number; None when it is not a return's (an order's parcel)."""
    found = await session.scalar(select(ReturnRow.return_id).where(ReturnRow.tracking_number == tracking_number))
    return str(found) if found is not None else None


async def get_return(session: AsyncSession, return_id: str) -> ReturnState | None:
    stored = await session.scalar(select(ReturnRow.state).where(ReturnRow.return_id == return_id))
    return ReturnState.model_validate(stored) if stored is not None else None


async def returns_of_order(session: AsyncSession, order_id: str) -> list[tuple[str, str]]:
    """(return id, status) of an order's returns, oldest first."""
    rows = await session.execute(
        select(ReturnRow.return_id, ReturnRow.status)
        .where(ReturnRow.order_id == order_id)
        .order_by(ReturnRow.created_at, ReturnRow.return_id)
    )
    return [(str(return_id), str(status)) for return_id, status in rows]


async def received_units(session: AsyncSession, order_id: str) -> dict[str, int]:
    """Units per SKU of the order that returns brought back to a warehouse, whatever their condition."""
    rows = await session.execute(
        select(ReturnReceiptRow.sku, func.sum(ReturnReceiptRow.quantity))
        .join(ReturnRow, ReturnRow.return_id == ReturnReceiptRow.return_id)
        .where(ReturnRow.order_id == order_id)
        .group_by(ReturnReceiptRow.sku)
    )
    return {sku: int(units) for sku, units in rows}


async def list_returns(
    session: AsyncSession,
    *,
    status: ReturnStatus | None,
    order_id: str | None,
    client_id: str | None,
    limit: int,
    cursor: str | None,
) -> ReturnPage:
    """Returns newest first, filtered; `next_cursor` continues after the last."""
    query = select(ReturnRow).order_by(ReturnRow.created_at.desc(), ReturnRow.return_id.desc()).limit(limit + 1)
    if status is not None:
        query = query.where(ReturnRow.status == status.value)
    if order_id is not None:
        query = query.where(ReturnRow.order_id == order_id)
    if client_id is not None:
        query = query.where(ReturnRow.client_id == client_id)
    if cursor is not None:
        after_created, after_id = decode_cursor(cursor)
        query = query.where(tuple_(ReturnRow.created_at, ReturnRow.return_id) < tuple_(after_created, after_id))
    rows = list((await session.execute(query)).scalars())
    items = [
        ReturnSummary(
            return_id=row.return_id,
            order_id=row.order_id,
            status=ReturnStatus(row.status),
            value=row.value,
            currency=row.currency,
            needs_attention=row.needs_attention,
            created_at=_utc(row.created_at),
            updated_at=_utc(row.updated_at),
        )
        for row in rows[:limit]
    ]
    next_cursor = encode_cursor(items[-1].created_at, items[-1].return_id) if len(rows) > limit else None
    return ReturnPage(items=items, next_cursor=next_cursor)


def restock_id(return_id: str, receipt_no: int, sku: str) -> str:
    """The stock receipt (and write-off) id of one SKU of one receipt of a return: booked once, whatever is retried."""
    return f"{return_id}:receipt:{receipt_no}:{sku}"


async def book_receipt(
    session: AsyncSession, return_id: str, receipt_no: int, warehouse: str, lines: list[ReceiptLine]
) -> dict[str, int]:
    """Book what the warehouse received: resellable units back on hand, damaged ones written off.

    Returns the units put back on the shelf per SKU by this call; a repeat of a receipt already
    booked changes nothing and returns the same units (the caller signals replenishment again).
    """
    units: dict[tuple[str, Condition], int] = {}
    for line in lines:
        units[(line.sku, line.condition)] = units.get((line.sku, line.condition), 0) + line.quantity
    now = _now()
    restocked: dict[str, int] = {}
    for (sku, condition), quantity in sorted(units.items()):
        await session.execute(
            dialect_insert(session, ReturnReceiptRow)
            .values(
                return_id=return_id,
                receipt_no=receipt_no,
                sku=sku,
                condition=condition.value,
                warehouse=warehouse,
                quantity=quantity,
                received_at=now,
            )
            .on_conflict_do_nothing(index_elements=["return_id", "receipt_no", "sku", "condition"])
        )
        booking_id = restock_id(return_id, receipt_no, sku)
        if condition == Condition.RESELLABLE:
            await receive_stock(session, sku, warehouse, quantity, booking_id)
            restocked[sku] = quantity
        else:
            await _write_off(session, booking_id, sku, warehouse, quantity, return_id, now)
    return restocked


async def _write_off(
    session: AsyncSession, write_off_id: str, sku: str, warehouse: str, quantity: int, return_id: str, at: datetime
) -> None:
    if (await session.scalar(select(SkuRow.sku).where(SkuRow.sku == sku))) is None:
        raise UnknownSku(sku)
    known = dialect_insert(session, WarehouseRow).values(code=warehouse, name=warehouse)
    await session.execute(known.on_conflict_do_nothing(index_elements=["code"]))
    await session.execute(
        dialect_insert(session, StockWriteOffRow)
        .values(
            write_off_id=write_off_id,
            sku=sku,
            warehouse=warehouse,
            quantity=quantity,
            return_id=return_id,
            reason="returned damaged",
            written_off_at=at,
        )
        .on_conflict_do_nothing(index_elements=["write_off_id"])
    )


async def written_off(session: AsyncSession, sku: str) -> int:
    """Units of the SKU written off, over all warehouses."""
    total = await session.scalar(
        select(func.coalesce(func.sum(StockWriteOffRow.quantity), 0)).where(StockWriteOffRow.sku == sku)
    )
    return int(total or 0)
