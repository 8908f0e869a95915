"""The refund cap in PostgreSQL: refunds claimed at once against one invoice never pass it together,
a failed refund frees its share; and each status change of a refund or a return writes its webhook
event in the same transaction."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import refunds as records
from db.returns import create_return, record_state
from db.webhooks import create_subscription
from domain.refunds import RefundExceedsInvoice
from models.refunds import RefundRecord, RefundStatus
from models.returns import ReturnEvent, ReturnLine, ReturnReason, ReturnState, ReturnStatus
from models.tables import OrderRow, WebhookOutboxRow
from tests.conftest import TEST_KEYRING

Sessions = async_sessionmaker[AsyncSession]


async def invoiced_order(sessions: Sessions, total: str = "100.00") -> str:
    order_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    invoice = {"invoice_id": "INV-1", "subtotal": total, "tax": "0.00", "total": total, "currency": "EUR"}
    async with sessions.begin() as session:
        session.add(
            OrderRow(
                order_id=order_id,
                workflow_id=f"order-{order_id}",
                customer_id="C-1",
                status="delivered",
                total=Decimal(total),
                currency="EUR",
                last_seq=1,
                state={"invoice": invoice},
                created_at=now,
                updated_at=now,
            )
        )
    return order_id


def refund(order_id: str, amount: str) -> RefundRecord:
    now = datetime.now(UTC)
    return RefundRecord(
        refund_id=str(uuid.uuid4()),
        order_id=order_id,
        status=RefundStatus.REQUESTED,
        amount=Decimal(amount),
        currency="EUR",
        reason="goodwill",
        created_at=now,
        updated_at=now,
    )


async def claim(sessions: Sessions, record: RefundRecord) -> RefundRecord:
    async with sessions.begin() as session:
        invoice = await records.locked_invoice(session, record.order_id)
        assert invoice is not None
        # Held a moment with the order's row locked, so the other claim comes while this one is open.
        await asyncio.sleep(0.05)
        return await records.claim(
            session, record, invoiced=invoice.total, workflow_id=f"refund-{record.refund_id}", requested_by="operator"
        )


async def test_two_refunds_claimed_at_once_cannot_both_pass_the_cap(sessionmaker: Sessions) -> None:
    order_id = await invoiced_order(sessionmaker)

    outcomes = await asyncio.gather(
        claim(sessionmaker, refund(order_id, "60.00")),
        claim(sessionmaker, refund(order_id, "60.00")),
        return_exceptions=True,
    )

    claimed = [outcome for outcome in outcomes if isinstance(outcome, RefundRecord)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, RefundExceedsInvoice)]
    assert len(claimed) == 1 and len(refused) == 1
    assert refused[0].remaining == Decimal("40.00")
    async with sessionmaker() as session:
        assert [r.amount for r in await records.refunds_of_order(session, order_id)] == [Decimal("60.00")]


async def test_a_failed_refund_frees_its_share_and_a_claim_repeated_under_its_id_is_the_first(
    sessionmaker: Sessions,
) -> None:
    order_id = await invoiced_order(sessionmaker)
    first = await claim(sessionmaker, refund(order_id, "70.00"))
    with pytest.raises(RefundExceedsInvoice):
        await claim(sessionmaker, refund(order_id, "40.00"))

    async with sessionmaker.begin() as session:
        assert await records.settle(session, first.refund_id, RefundStatus.FAILED, problem="refused by finance")
        # Settled once: a second outcome for the same refund changes nothing.
        assert not await records.settle(session, first.refund_id, RefundStatus.REFUNDED, credit_note="CN-X")

    again = await claim(sessionmaker, first.model_copy(update={"amount": Decimal("1.00")}))
    assert again.status == RefundStatus.FAILED and again.amount == Decimal("70.00")
    second = await claim(sessionmaker, refund(order_id, "100.00"))
    assert second.status == RefundStatus.REQUESTED


async def test_each_status_change_of_a_refund_writes_its_event_in_the_same_transaction(sessionmaker: Sessions) -> None:
    async with sessionmaker.begin() as session:
        await create_subscription(session, TEST_KEYRING, "https://hooks.example.com/refunds", ["refund.refunded"])
        await create_subscription(session, TEST_KEYRING, "https://hooks.example.com/all", [])
    order_id = await invoiced_order(sessionmaker)
    record = await claim(sessionmaker, refund(order_id, "25.00"))
    async with sessionmaker.begin() as session:
        await records.settle(
            session, record.refund_id, RefundStatus.REFUNDED, credit_note="CN-7", finance_refund_id="RF"
        )

    async with sessionmaker() as session:
        rows = list(
            await session.scalars(
                select(WebhookOutboxRow).where(WebhookOutboxRow.order_id == order_id).order_by(WebhookOutboxRow.id)
            )
        )
    assert [(row.kind, row.subject_id, row.payload["type"], row.seq) for row in rows] == [
        ("refund", record.refund_id, "refund.requested", 1),
        ("refund", record.refund_id, "refund.refunded", 2),
        ("refund", record.refund_id, "refund.refunded", 2),
    ]
    assert rows[-1].payload["credit_note"] == "CN-7" and rows[-1].payload["amount"] == "25.00"


async def test_a_return_writes_an_event_per_status_change_and_none_for_a_report_without_one(
    sessionmaker: Sessions,
) -> None:
    async with sessionmaker.begin() as session:
        await create_subscription(session, TEST_KEYRING, "https://hooks.example.com/returns", ["return.received"])
        await create_subscription(session, TEST_KEYRING, "https://hooks.example.com/all", [])
    order_id = await invoiced_order(sessionmaker)
    now = datetime.now(UTC)
    state = ReturnState(
        return_id=str(uuid.uuid4()),
        workflow_id="return-x",
        order_id=order_id,
        customer_id="C-1",
        status=ReturnStatus.REQUESTED,
        resolution="refund",
        lines=[ReturnLine(line_no=1, sku="MUG-1", quantity=1, reason=ReturnReason.DAMAGED, unit_price=Decimal("5"))],
        value=Decimal("5.00"),
        currency="EUR",
        created_at=now,
        updated_at=now,
    )
    async with sessionmaker.begin() as session:
        await create_return(session, state)
    reports = [
        (ReturnStatus.REQUESTED, "return requested"),
        (ReturnStatus.APPROVED, "approved by the rules"),
        (ReturnStatus.APPROVED, "carrier: delivered"),
        (ReturnStatus.RECEIVED, "receipt 1 at AMS"),
    ]
    for seq, (status, event) in enumerate(reports, start=1):
        state.status = status
        state.timeline.append(ReturnEvent(seq=seq, at=now, status=status, actor="system", event=event))
        async with sessionmaker.begin() as session:
            await record_state(session, state.model_copy(deep=True), seq)
            # A report written again (a retried write) adds nothing.
            await record_state(session, state.model_copy(deep=True), seq)

    async with sessionmaker() as session:
        rows = list(await session.scalars(select(WebhookOutboxRow).order_by(WebhookOutboxRow.id)))
    sent = [(row.subscription_id, row.kind, row.payload["type"], row.seq) for row in rows]
    assert [(kind, name, seq) for _, kind, name, seq in sent] == [
        ("return", "return.requested", 1),
        ("return", "return.approved", 2),
        ("return", "return.received", 4),
        ("return", "return.received", 4),
    ]
    assert {row.subject_id for row in rows} == {state.return_id}
    assert rows[-1].payload["order_id"] == order_id and rows[-1].payload["event"] == "receipt 1 at AMS"
