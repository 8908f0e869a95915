"""Refunds through finance: a refund of an order without a return, and the step a return's refund shares.

The finance call is keyed by the refund (`<refund_id>:refund`, or a return's `<return_id>:refund:<n>`),
so a retry never pays twice; its outcome is written on the refund's row with its event, once.
A refusal (4xx) marks the refund failed, which frees its amount under the cap, and is raised again
as non-retryable for the workflow to see.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.http import call_provider, idempotency_key
from db import refunds as refund_records
from models.refunds import OrderRefundInput, RefundFlag, RefundStatus
from models.returns import Refund, RefundLine
from settings import Settings

REFUND_REFUSED = "RefundRefused"


async def refund_through_finance(
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    settings: Settings,
    *,
    refund_id: str,
    key: str,
    body: dict[str, object],
) -> Refund:
    """Ask finance for the refund with a credit note, and write the outcome on the refund's row."""
    try:
        answer = await call_provider(
            http, "POST", f"{settings.finance_url}/refunds", idempotency_key=key, json=body, refusal=REFUND_REFUSED
        )
    except ApplicationError as error:
        if error.non_retryable:
            async with sessionmaker.begin() as session:
                await refund_records.settle(session, refund_id, RefundStatus.FAILED, problem=str(error))
        raise
    refund = Refund(
        refund_id=answer["refund_id"],
        amount=Decimal(answer["amount"]),
        currency=answer["currency"],
        credit_note=answer["credit_note"],
        status=answer.get("status", "issued"),
    )
    async with sessionmaker.begin() as session:
        await refund_records.settle(
            session,
            refund_id,
            RefundStatus.REFUNDED,
            credit_note=refund.credit_note,
            finance_refund_id=refund.refund_id,
        )
    return refund


def finance_body(
    order_id: str, invoice_id: str, amount: Decimal, currency: str, lines: list[RefundLine], return_id: str | None
) -> dict[str, object]:
    body: dict[str, object] = {
        "order_id": order_id,
        "invoice_id": invoice_id,
        "lines": [line.model_dump(mode="json") for line in lines],
        "amount": str(amount),
        "currency": currency,
    }
    if return_id is not None:
        body["return_id"] = return_id
    return body


class RefundActivities:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, settings: Settings
    ) -> None:
        self._sessionmaker = sessionmaker
        self._http = http
        self._settings = settings

    @activity.defn
    async def refund_order(self, request: OrderRefundInput) -> Refund:
        """Refund an order without a return, as claimed; finance refuses more than was invoiced (non-retryable)."""
        return await refund_through_finance(
            self._sessionmaker,
            self._http,
            self._settings,
            refund_id=request.refund_id,
            key=idempotency_key(request.refund_id, "refund"),
            body=finance_body(
                request.order_id, request.invoice_id, request.amount, request.currency, request.lines, None
            ),
        )

    @activity.defn
    async def flag_refund(self, request: RefundFlag) -> None:
        """Ask an operator to look at a refund that keeps failing, or lift the flag."""
        async with self._sessionmaker.begin() as session:
            await refund_records.flag(session, request.refund_id, request.problem)
