"""The steps of a return: its record, the carrier's return label, the goods received, the refund.

Outside calls go through activities/http.py with keys derived from the return and the step
(`<return_id>:carrier:label`, `<return_id>:refund:<n>`), so a retry never applies an effect twice.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.http import call_provider, idempotency_key
from db import returns as return_records
from db.stock import UnknownSku
from models.purchasing import StockReceived
from models.returns import (
    Label,
    LabelInput,
    ReceiveGoodsInput,
    RecordReturnInput,
    Refund,
    RefundInput,
    VoidLabelInput,
)
from settings import Settings
from temporal_client import signal_replenishment

LABEL_REFUSED = "ReturnLabelRefused"
REFUND_REFUSED = "RefundRefused"
RECEIPT_REFUSED = "ReceiptRefused"


class ReturnActivities:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        client: Client,
        settings: Settings,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._http = http
        self._client = client
        self._settings = settings

    @activity.defn
    async def record_return(self, request: RecordReturnInput) -> None:
        """Write the return as it now stands; a report older than the one written is ignored."""
        async with self._sessionmaker.begin() as session:
            await return_records.record_state(session, request.state, request.seq)

    @activity.defn
    async def issue_return_label(self, request: LabelInput) -> Label:
        """Ask the carrier for a return label, and note its tracking number so its events find this return."""
        answer = await call_provider(
            self._http,
            "POST",
            f"{self._settings.carrier_url}/returns/labels",
            idempotency_key=idempotency_key(request.return_id, "carrier", "label"),
            json={
                "reference": request.order_id,
                "return_id": request.return_id,
                "items": [{"sku": sku, "quantity": quantity} for sku, quantity in request.items],
            },
            refusal=LABEL_REFUSED,
        )
        label = Label(
            label_id=answer["label_id"],
            carrier=answer.get("carrier", "standin-express"),
            tracking_number=answer["tracking_number"],
            status=answer.get("status", "issued"),
        )
        # Before the step completes: the carrier's first event may come at once.
        async with self._sessionmaker.begin() as session:
            await return_records.remember_tracking_number(session, request.return_id, label.tracking_number)
        return label

    @activity.defn
    async def void_return_label(self, request: VoidLabelInput) -> None:
        """Void the label; one the carrier does not know counts as void."""
        await call_provider(
            self._http,
            "POST",
            f"{self._settings.carrier_url}/returns/labels/{request.label_id}/void",
            idempotency_key=idempotency_key(request.return_id, "carrier", "void"),
            refusal=LABEL_REFUSED,
            accept=(404,),
        )

    @activity.defn
    async def receive_return_goods(self, request: ReceiveGoodsInput) -> None:
        """Restock the resellable units and write off the damaged ones, once; then wake orders waiting for them."""
        try:
            async with self._sessionmaker.begin() as session:
                restocked = await return_records.book_receipt(
                    session, request.return_id, request.receipt_no, request.warehouse, request.lines
                )
        except UnknownSku as error:
            raise ApplicationError(str(error), type=RECEIPT_REFUSED, non_retryable=True) from error
        # After the commit, and again on a retry: the replenishment run keeps one of each receipt id.
        for sku, quantity in sorted(restocked.items()):
            await signal_replenishment(
                self._client,
                sku,
                StockReceived(
                    receipt_id=return_records.restock_id(request.return_id, request.receipt_no, sku),
                    warehouse=request.warehouse,
                    quantity=quantity,
                ),
                task_queue=activity.info().task_queue,
            )

    @activity.defn
    async def refund_return(self, request: RefundInput) -> Refund:
        """Refund the received units with a credit note; finance refuses more than was invoiced (non-retryable)."""
        answer = await call_provider(
            self._http,
            "POST",
            f"{self._settings.finance_url}/refunds",
            idempotency_key=idempotency_key(request.return_id, "refund", str(request.attempt)),
            json={
                "order_id": request.order_id,
                "invoice_id": request.invoice_id,
                "return_id": request.return_id,
                "lines": [line.model_dump(mode="json") for line in request.lines],
                "amount": str(request.amount),
                "currency": request.currency,
            },
            refusal=REFUND_REFUSED,
        )
        return Refund(
            refund_id=answer["refund_id"],
            amount=Decimal(answer["amount"]),
            currency=answer["currency"],
            credit_note=answer["credit_note"],
            status=answer.get("status", "issued"),
        )
