"""Refunds in the database: each claimed against its order's invoice, its outcome, and the events of both.

Every function runs inside the caller's transaction. A refund is claimed with the order's row locked
(db.returns.lock_order), the cap checked against the refunds already holding part of the invoice,
so two refunds asked at once cannot both pass it. Each status change writes its webhook event in the
same transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import dialect_insert
from db.returns import claim_key
from db.webhooks import enqueue_refund_event
from domain.refunds import check_cap
from models.order import Invoice
from models.refund_tables import RefundIdempotencyKeyRow, RefundRow
from models.refunds import HOLDING_REFUND_STATUSES, RefundRecord, RefundStatus
from models.returns import RefundLine
from models.tables import OrderRow
from models.webhooks import REFUND_EVENT_PREFIX, RefundWebhookEvent


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _record(row: RefundRow) -> RefundRecord:
    return RefundRecord(
        refund_id=row.refund_id,
        order_id=row.order_id,
        return_id=row.return_id,
        status=RefundStatus(row.status),
        amount=row.amount,
        currency=row.currency,
        lines=[RefundLine.model_validate(line) for line in row.lines],
        reason=row.reason,
        note=row.note,
        credit_note=row.credit_note,
        needs_attention=row.needs_attention,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


async def claim_idempotency_key(session: AsyncSession, owner: str, key: str, request_hash: str, refund_id: str) -> str:
    """The refund this key stands for: `refund_id` when the key is new, the first refund's id on a repeat.

    The same key with another body raises IdempotencyConflict.
    """
    return await claim_key(session, RefundIdempotencyKeyRow, "refund_id", owner, key, request_hash, refund_id)


async def held_amounts(session: AsyncSession, order_id: str, *, besides: str | None = None) -> list[Decimal]:
    """The amounts of the order's refunds that hold part of its invoice (requested or refunded), but `besides`."""
    query = select(RefundRow.amount).where(
        RefundRow.order_id == order_id, RefundRow.status.in_([status.value for status in HOLDING_REFUND_STATUSES])
    )
    if besides is not None:
        query = query.where(RefundRow.refund_id != besides)
    return [Decimal(amount) for amount in (await session.scalars(query)).all()]


async def locked_invoice(session: AsyncSession, order_id: str) -> Invoice | None:
    """The order's invoice as last recorded, with the order's row locked until the transaction ends."""
    state = await session.scalar(select(OrderRow.state).where(OrderRow.order_id == order_id).with_for_update())
    invoice = (state or {}).get("invoice")
    return Invoice.model_validate(invoice) if invoice else None


async def claim(
    session: AsyncSession, record: RefundRecord, *, invoiced: Decimal, workflow_id: str, requested_by: str
) -> RefundRecord:
    """The refund claimed against the invoice, or the one already claimed under its id.

    The caller holds the order's row lock: the cap is checked against the refunds holding part of
    the invoice, and RefundExceedsInvoice (with what remains) raised when this one would pass it.
    """
    existing = await get_refund(session, record.refund_id)
    if existing is not None:
        return existing
    check_cap(record.amount, invoiced, await held_amounts(session, record.order_id), record.currency)
    requested = record.model_copy(update={"status": RefundStatus.REQUESTED, "updated_at": record.created_at})
    await create_refund(session, requested, workflow_id=workflow_id, requested_by=requested_by)
    return requested


async def get_refund(session: AsyncSession, refund_id: str) -> RefundRecord | None:
    row = await session.get(RefundRow, refund_id)
    return _record(row) if row is not None else None


async def refunds_of_order(session: AsyncSession, order_id: str) -> list[RefundRecord]:
    """The order's refunds, oldest first."""
    rows = await session.scalars(
        select(RefundRow).where(RefundRow.order_id == order_id).order_by(RefundRow.created_at, RefundRow.refund_id)
    )
    return [_record(row) for row in rows]


async def create_refund(session: AsyncSession, record: RefundRecord, *, workflow_id: str, requested_by: str) -> bool:
    """Write the refund as claimed (`requested`) with its event; False when it was written before."""
    inserted = await session.execute(
        dialect_insert(session, RefundRow)
        .values(
            refund_id=record.refund_id,
            order_id=record.order_id,
            return_id=record.return_id,
            workflow_id=workflow_id,
            status=RefundStatus.REQUESTED.value,
            amount=record.amount,
            currency=record.currency,
            lines=[line.model_dump(mode="json") for line in record.lines],
            reason=record.reason,
            note=record.note,
            requested_by=requested_by,
            last_seq=1,
            created_at=record.created_at,
            updated_at=record.created_at,
        )
        .on_conflict_do_nothing(index_elements=["refund_id"])
        .returning(RefundRow.refund_id)
    )
    if inserted.first() is None:
        return False
    await _event(session, record, 1, f"refund of {record.amount:.2f} {record.currency} requested")
    return True


async def settle(
    session: AsyncSession,
    refund_id: str,
    status: RefundStatus,
    *,
    credit_note: str | None = None,
    finance_refund_id: str | None = None,
    problem: str | None = None,
) -> bool:
    """Move a requested refund to `refunded` (with the credit note) or `failed` (with why), once, with its event."""
    now = datetime.now(UTC)
    changed = await session.execute(
        update(RefundRow)
        .where(RefundRow.refund_id == refund_id, RefundRow.status == RefundStatus.REQUESTED.value)
        .values(
            status=status.value,
            credit_note=credit_note,
            finance_refund_id=finance_refund_id,
            needs_attention=problem[:500] if problem else None,
            last_seq=RefundRow.last_seq + 1,
            updated_at=now,
        )
        .returning(RefundRow.last_seq)
        .execution_options(synchronize_session=False)
    )
    seq = changed.scalar_one_or_none()
    if seq is None:
        return False
    record = await get_refund(session, refund_id)
    assert record is not None
    event = f"refunded, credit note {credit_note}" if status == RefundStatus.REFUNDED else f"failed: {problem}"
    await _event(session, record, int(seq), event)
    return True


async def flag(session: AsyncSession, refund_id: str, problem: str | None) -> None:
    """Ask an operator to look at a refund that keeps failing (None: the flag is lifted)."""
    await session.execute(
        update(RefundRow)
        .where(RefundRow.refund_id == refund_id)
        .values(needs_attention=problem[:500] if problem else None, updated_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )


async def _event(session: AsyncSession, record: RefundRecord, seq: int, event: str) -> None:
    await enqueue_refund_event(
        session,
        RefundWebhookEvent(
            type=f"{REFUND_EVENT_PREFIX}{record.status.value}",
            order_id=record.order_id,
            refund_id=record.refund_id,
            return_id=record.return_id,
            status=record.status,
            amount=record.amount,
            currency=record.currency,
            credit_note=record.credit_note,
            seq=seq,
            at=record.updated_at,
            event=event[:500],
        ),
    )
