"""Order records: the order row and its lines, its timeline, the reads behind GET /orders, idempotency keys.

The workflow is the source of truth; these rows are what it last reported, written so that
activity retries and messages arriving out of order leave them as if each was written once, in order.
Every function runs inside the caller's transaction.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Row, Select, delete, exists, select, tuple_, union, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import personal, rollups
from db.engine import dialect_insert
from models.order import ID_PATTERN, OrderFilter, OrderPage, OrderState, OrderStatus, OrderSummary, TimelineEvent
from models.records import OrderFacts, RecordChangeInput, RecordOrderInput, StatusChangeInput
from models.tables import IdempotencyKeyRow, OrderEventRow, OrderLineRow, OrderRow
from security.keyring import Keyring


class InvalidCursor(ValueError):
    """A pagination cursor this service did not hand out."""


class IdempotencyConflict(Exception):
    """The idempotency key was already used for a different request."""

    def __init__(self, key: str, order_id: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used for a different request (order {order_id})")
        self.key = key
        self.order_id = order_id


def _utc(moment: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; everything stored here is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def _insert_lines(session: AsyncSession, order_id: str, placed_at: datetime, lines: list[dict[str, Any]]) -> None:
    statement = dialect_insert(session, OrderLineRow).values(
        [{"order_id": order_id, "placed_at": placed_at, **line} for line in lines]
    )
    await session.execute(statement.on_conflict_do_nothing(index_elements=["order_id", "line_no"]))


async def record_order(session: AsyncSession, request: RecordOrderInput, keyring: Keyring) -> None:
    """Insert the order (status received), its lines numbered from 1 and its state; a repeat changes nothing.

    The customer's personal data is stored apart from the state, encrypted under `keyring`'s active key.
    Status changes later carry only what changes (record_status); should one have landed first, the
    order it created is completed here under what it wrote.
    """
    received_at = _utc(request.received_at)
    received = OrderState.received(
        request.order_id, request.workflow_id, request.request, received_at, client_id=request.client_id
    )
    received.replacement_for = request.replacement_for
    public, pii = _sealed_without_timeline(received, keyring)
    order = dialect_insert(session, OrderRow).values(
        order_id=request.order_id,
        workflow_id=request.workflow_id,
        client_id=request.client_id,
        customer_id=request.request.customer.id,
        status=OrderStatus.RECEIVED.value,
        total=request.request.total,
        currency=request.request.currency,
        last_seq=0,
        state=public,
        pii=pii,
        created_at=received_at,
        updated_at=received_at,
    )
    created = await session.execute(
        order.on_conflict_do_nothing(index_elements=["order_id"]).returning(OrderRow.order_id)
    )
    await _insert_lines(
        session,
        request.order_id,
        received_at,
        [
            {"line_no": number, "sku": line.sku, "quantity": line.quantity, "unit_price": line.unit_price}
            for number, line in enumerate(request.request.lines, start=1)
        ],
    )
    if created.first() is None:
        stored = (
            await session.execute(select(OrderRow.state).where(OrderRow.order_id == request.order_id).with_for_update())
        ).scalar_one()
        if not _is_whole(stored):
            # Written by status changes alone so far: what they wrote stands over the order as received.
            written = dict(stored or {})
            pending = written.pop(_PENDING_ALLOCATIONS, [])
            whole = {**public, **written, "lines": public["lines"]}
            _apply_allocations(whole, pending)
            await session.execute(
                update(OrderRow)
                .where(OrderRow.order_id == request.order_id)
                .values(state=whole, pii=pii)
                .execution_options(synchronize_session=False)
            )
    await rollups.count_order(session, request.order_id)


async def record_status(session: AsyncSession, change: StatusChangeInput, keyring: Keyring) -> bool:
    """Write the timeline entry once, and move the order row forward only if this entry is its newest.

    Entries are ordered by (version, seq). An entry of a later version replaces the one at its seq;
    when it is the order's newest, entries a lost workflow task wrote beyond it are dropped, and
    such entries landing late are refused: the timeline is the one of the run that went on.
    The newest entry's facts (models.records.OrderFacts) are set on the stored state; the rest of
    it (customer, address, lines) is the order record's. Personal data sealed under a key that is no
    longer `keyring`'s active one is sealed again under the active key, so a rotation reaches live orders.
    Returns whether the entry was written (false for a repeat or a superseded entry).
    """
    order_id, event, version = change.order.order_id, change.event, change.version
    newest = await _lock_order_row(session, change)
    if version < newest.last_version and event.seq > newest.last_seq:
        return False
    values = {
        "at": _utc(event.at),
        "status": event.status.value,
        "actor": event.actor,
        "event": event.event,
        "detail": event.detail,
        "version": version,
    }
    entry = dialect_insert(session, OrderEventRow).values(order_id=order_id, seq=event.seq, **values)
    written = await session.execute(
        entry.on_conflict_do_update(
            index_elements=["order_id", "seq"], set_=values, where=OrderEventRow.version < version
        ).returning(OrderEventRow.seq)
    )
    if written.first() is None:
        return False
    if (version, event.seq) > (newest.last_version, newest.last_seq):
        newest_values: dict[str, Any] = {
            "status": event.status.value,
            "last_version": version,
            "last_seq": event.seq,
            "updated_at": _utc(change.facts.updated_at),
            "state": _with_facts(newest.state, event.status, change.facts),
        }
        if newest.pii is not None and (pii := personal.resealed(order_id, newest.pii, keyring)) is not None:
            newest_values["pii"] = pii
        await session.execute(
            update(OrderRow)
            .where(OrderRow.order_id == order_id)
            .values(**newest_values)
            .execution_options(synchronize_session=False)
        )
        if newest.last_seq > event.seq:
            # Only an entry that was the newest can have been written beyond this one's seq.
            await session.execute(
                delete(OrderEventRow).where(
                    OrderEventRow.order_id == order_id,
                    OrderEventRow.seq > event.seq,
                    OrderEventRow.version < version,
                )
            )
        await rollups.count_order(session, order_id)
    return True


async def record_change(session: AsyncSession, change: RecordChangeInput, keyring: Keyring) -> bool:
    """Write an accepted change over the record: lines, shipping address (sealed), total and revision.

    Only a newer revision is written, so a retried or late write of an older one changes nothing. The
    rest of the stored state (status, review, shipment...) is what status changes write, and stays.
    Returns whether the change was written.
    """
    state = change.state
    public, pii = _sealed_without_timeline(state, keyring)
    row = (
        await session.execute(
            select(OrderRow.revision, OrderRow.state).where(OrderRow.order_id == state.order_id).with_for_update()
        )
    ).first()
    if row is None or row.revision >= state.revision or not _is_whole(row.state):
        return False
    stored = {**row.state, **{name: public[name] for name in ("lines", "total", "revision")}}
    await session.execute(
        update(OrderRow)
        .where(OrderRow.order_id == state.order_id)
        .values(revision=state.revision, total=state.total, state=stored, pii=pii)
        .execution_options(synchronize_session=False)
    )
    numbers = [line.line_no for line in state.lines]
    await session.execute(
        delete(OrderLineRow).where(OrderLineRow.order_id == state.order_id, OrderLineRow.line_no.not_in(numbers))
    )
    for line in state.lines:
        values = {"sku": line.sku, "quantity": line.quantity, "unit_price": line.unit_price}
        statement = dialect_insert(session, OrderLineRow).values(
            order_id=state.order_id, line_no=line.line_no, placed_at=_utc(state.created_at), **values
        )
        await session.execute(statement.on_conflict_do_update(index_elements=["order_id", "line_no"], set_=values))
    await rollups.count_order(session, state.order_id)
    return True


# Allocations of a status change that landed before the order record had lines to put them on.
_PENDING_ALLOCATIONS = "pending_allocations"


def _sealed_without_timeline(state: OrderState, keyring: Keyring) -> tuple[dict[str, Any], str]:
    public, pii = personal.seal(state, keyring)
    # The timeline lives in its own table, one row per entry.
    public.pop("timeline", None)
    return public, pii


def _is_whole(stored: dict[str, Any] | None) -> bool:
    """Whether the stored state holds the order as received (its lines), not only facts written before it."""
    return stored is not None and "lines" in stored


def _with_facts(stored: dict[str, Any] | None, status: OrderStatus, facts: OrderFacts) -> dict[str, Any]:
    """The stored state (JSON) with the status and facts of a status change set on it."""
    state = dict(stored or {})
    # The timeline of rows written before status changes carried only facts is the events table's.
    state.pop("timeline", None)
    state.update(facts.model_dump(mode="json", exclude={"allocations"}))
    state["status"] = status.value
    allocations = [held.model_dump(mode="json") for held in facts.allocations]
    if _is_whole(state):
        state["lines"] = [dict(line) for line in state["lines"]]
        _apply_allocations(state, allocations)
    else:
        state[_PENDING_ALLOCATIONS] = allocations
    return state


def _apply_allocations(state: dict[str, Any], allocations: list[dict[str, Any]]) -> None:
    held = {line["line_no"]: line["allocations"] for line in allocations}
    for line in state["lines"]:
        line["allocations"] = held.get(line["line_no"], [])


async def _lock_order_row(session: AsyncSession, change: StatusChangeInput) -> Row[Any]:
    """The order row's newest (version, seq), state and pii, locked until the transaction ends (writes queue).

    A status change may be the first write that lands (record_order still being retried): it creates the row.
    """
    header = change.order
    newest = select(OrderRow.last_version, OrderRow.last_seq, OrderRow.state, OrderRow.pii).where(
        OrderRow.order_id == header.order_id
    )
    found = (await session.execute(newest.with_for_update())).first()
    if found is not None:
        return found
    order = dialect_insert(session, OrderRow).values(
        order_id=header.order_id,
        workflow_id=header.workflow_id,
        client_id=header.client_id,
        customer_id=header.customer_id,
        status=change.event.status.value,
        total=header.total,
        currency=header.currency,
        last_version=0,
        last_seq=0,
        state=None,
        created_at=_utc(header.created_at),
        updated_at=_utc(header.created_at),
    )
    await session.execute(order.on_conflict_do_nothing(index_elements=["order_id"]))
    return (await session.execute(newest.with_for_update())).one()


async def get_order(session: AsyncSession, order_id: str, keyring: Keyring) -> OrderState | None:
    """The order as last reported, with its full timeline; None when unknown or not reported yet."""
    row = (
        await session.execute(
            select(OrderRow.state, OrderRow.pii, OrderRow.last_seq).where(OrderRow.order_id == order_id)
        )
    ).first()
    if row is None or row.last_seq == 0 or not _is_whole(row.state):
        return None
    stored = personal.unseal(order_id, row.state, row.pii, keyring)
    events = await session.execute(
        select(
            OrderEventRow.seq,
            OrderEventRow.at,
            OrderEventRow.status,
            OrderEventRow.actor,
            OrderEventRow.event,
            OrderEventRow.detail,
        )
        .where(OrderEventRow.order_id == order_id)
        .order_by(OrderEventRow.seq)
    )
    timeline = [
        TimelineEvent(seq=seq, at=_utc(at), status=OrderStatus(status), actor=actor, event=name, detail=detail)
        for seq, at, status, actor, name, detail in events
    ]
    return OrderState.model_validate(stored).model_copy(update={"timeline": timeline})


def encode_cursor(created_at: datetime, order_id: str) -> str:
    raw = json.dumps([_utc(created_at).isoformat(), order_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, order_id = json.loads(raw)
        if not isinstance(created_at, str) or not isinstance(order_id, str):
            raise TypeError("cursor fields are not strings")
        if not re.fullmatch(ID_PATTERN, order_id):
            # Whatever is in it reaches the query; PostgreSQL refuses a NUL in text with an error.
            raise ValueError("cursor order id is not an order id")
        return _utc(datetime.fromisoformat(created_at)), order_id
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as error:
        raise InvalidCursor("invalid cursor") from error


Columns = TypeVarTuple("Columns")


def matching(query: Select[*Columns], where: OrderFilter) -> Select[*Columns]:
    """`query` over orders narrowed to those `where` names."""
    if where.status is not None:
        query = query.where(OrderRow.status == where.status.value)
    if where.customer_id is not None:
        query = query.where(OrderRow.customer_id == where.customer_id)
    if where.client_id is not None:
        query = query.where(OrderRow.client_id == where.client_id)
    if where.sku is not None:
        query = query.where(_has_sku(where.sku))
    if where.q is not None:
        # Each of the three through its own index, rather than one OR that reads every order.
        found = union(
            select(OrderRow.order_id).where(OrderRow.order_id == where.q),
            select(OrderRow.order_id).where(OrderRow.customer_id == where.q),
            select(OrderLineRow.order_id).where(OrderLineRow.sku == where.q),
        )
        query = query.where(OrderRow.order_id.in_(found))
    if where.created_from is not None:
        query = query.where(OrderRow.created_at >= where.created_from)
    if where.created_to is not None:
        query = query.where(OrderRow.created_at < where.created_to)
    return query


def _has_sku(sku: str) -> ColumnElement[bool]:
    return exists().where(OrderLineRow.order_id == OrderRow.order_id, OrderLineRow.sku == sku)


def page_query(where: OrderFilter, *, limit: int, cursor: str | None) -> Select[*tuple[Any, ...]]:
    """The query behind a page of GET /orders: `limit` + 1 orders newest first, after `cursor`'s."""
    columns = select(
        OrderRow.order_id,
        OrderRow.workflow_id,
        OrderRow.client_id,
        OrderRow.status,
        OrderRow.customer_id,
        OrderRow.total,
        OrderRow.currency,
        OrderRow.created_at,
        OrderRow.updated_at,
    )
    placed: tuple[Any, Any] = (OrderRow.created_at, OrderRow.order_id)
    if where.sku is not None:
        # Through the SKU's lines, which carry their order's placing time: the index on (sku, placed_at,
        # order_id) yields them newest first, and the page is full after as many orders as it shows,
        # however many orders the SKU has. Grouped, as an order may hold the SKU on two lines.
        placed = (OrderLineRow.placed_at, OrderLineRow.order_id)
        columns = columns.join(OrderLineRow, OrderLineRow.order_id == OrderRow.order_id).where(
            OrderLineRow.sku == where.sku
        )
        query = matching(columns, where.model_copy(update={"sku": None}))
        query = query.group_by(*placed, OrderRow.order_id)
    else:
        query = matching(columns, where)
    if cursor is not None:
        after_created, after_id = decode_cursor(cursor)
        # A row comparison, so that the index scan starts right after the cursor.
        query = query.where(tuple_(*placed) < tuple_(after_created, after_id))
    # One row more than asked tells whether another page exists.
    return query.order_by(placed[0].desc(), placed[1].desc()).limit(limit + 1)


async def list_orders(session: AsyncSession, where: OrderFilter, *, limit: int, cursor: str | None) -> OrderPage:
    """Orders newest first, those `where` names; `next_cursor` continues after the last."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    query = page_query(where, limit=limit, cursor=cursor)
    found = (await session.execute(query)).all()
    rows = found[:limit]
    skus = await _skus_of(session, [row.order_id for row in rows])
    items = [
        OrderSummary(
            order_id=row.order_id,
            workflow_id=row.workflow_id,
            client_id=row.client_id,
            status=OrderStatus(row.status),
            customer_id=row.customer_id,
            total=row.total,
            currency=row.currency,
            skus=skus.get(row.order_id, []),
            created_at=_utc(row.created_at),
            updated_at=_utc(row.updated_at),
        )
        for row in rows
    ]
    next_cursor = encode_cursor(items[-1].created_at, items[-1].order_id) if len(found) > limit else None
    return OrderPage(items=items, next_cursor=next_cursor)


async def _skus_of(session: AsyncSession, order_ids: list[str]) -> dict[str, list[str]]:
    """Each order's SKUs in line order, in one query for the whole page."""
    if not order_ids:
        return {}
    rows = await session.execute(
        select(OrderLineRow.order_id, OrderLineRow.sku)
        .where(OrderLineRow.order_id.in_(order_ids))
        .order_by(OrderLineRow.order_id, OrderLineRow.line_no)
    )
    skus: dict[str, list[str]] = {}
    for order_id, sku in rows:
        skus.setdefault(order_id, []).append(sku)
    return skus


async def claim_idempotency_key(
    session: AsyncSession, key: str, request_hash: str, order_id: str, owner: str = ""
) -> str:
    """The order id that holds `owner`'s key: `order_id` if this call claimed it, the earlier one otherwise."""
    claim = dialect_insert(session, IdempotencyKeyRow).values(
        owner=owner, key=key, request_hash=request_hash, order_id=order_id, created_at=datetime.now(UTC)
    )
    # A concurrent claim of the same key waits on the unique index and then does nothing.
    await session.execute(claim.on_conflict_do_nothing(index_elements=["owner", "key"]))
    holder = (
        await session.execute(
            select(IdempotencyKeyRow.request_hash, IdempotencyKeyRow.order_id).where(
                IdempotencyKeyRow.owner == owner, IdempotencyKeyRow.key == key
            )
        )
    ).one()
    if holder.request_hash != request_hash:
        raise IdempotencyConflict(key, holder.order_id)
    return str(holder.order_id)
