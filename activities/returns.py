"""The steps of a return: its record, the carrier's return label, the goods received, the refund.

Outside calls go through activities/http.py with keys derived from the return and the step
(`<return_id>:carrier:label`, `<return_id>:refund:<n>`), so a retry never applies an effect twice;
an exchange's replacement order is placed through the API's order path under the key
`<return_id>:exchange`, so it is placed once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.http import call_provider, idempotency_key
from activities.refunds import REFUND_REFUSED, finance_body, refund_through_finance
from api.order_client import OrderClient
from db import refunds as refund_records
from db import returns as return_records
from db.orders import get_order
from db.stock import UnknownSku
from domain.refunds import RefundExceedsInvoice
from models import names
from models.order import OrderLine, OrderRequest, ReplacementOf
from models.purchasing import StockReceived
from models.refunds import RefundRecord, RefundStatus
from models.returns import (
    Label,
    LabelInput,
    ReceiveGoodsInput,
    RecordReturnInput,
    Refund,
    RefundInput,
    ReplacementInput,
    VoidLabelInput,
)
from security.keyring import Keyring
from settings import Settings
from temporal_client import signal_replenishment

LABEL_REFUSED = "ReturnLabelRefused"
RECEIPT_REFUSED = "ReceiptRefused"
REPLACEMENT_REFUSED = "ReplacementRefused"


class ReturnActivities:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        client: Client,
        settings: Settings,
        keyring: Keyring,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._http = http
        self._client = client
        self._settings = settings
        # Reads the original order's customer and address for an exchange's replacement.
        self._keyring = keyring

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
        """Claim the refund against the order's invoice, then refund the received units with a credit note.

        The claim is refused (non-retryable) when the order's refunds would pass what was invoiced;
        finance refuses the same (non-retryable). Either way the return is flagged for an operator.
        """
        refund_id = idempotency_key(request.return_id, "refund", str(request.attempt))
        try:
            async with self._sessionmaker.begin() as session:
                invoice = await refund_records.locked_invoice(session, request.order_id)
                claimed = await refund_records.claim(
                    session,
                    RefundRecord(
                        refund_id=refund_id,
                        order_id=request.order_id,
                        return_id=request.return_id,
                        status=RefundStatus.REQUESTED,
                        amount=request.amount,
                        currency=request.currency,
                        lines=request.lines,
                        reason="returned goods",
                        created_at=datetime.now(UTC),
                        updated_at=datetime.now(UTC),
                    ),
                    # An order not on record (or not invoiced) leaves the cap to finance.
                    invoiced=invoice.total if invoice is not None else request.amount,
                    workflow_id=names.return_workflow_id(request.return_id),
                    requested_by="return",
                )
        except RefundExceedsInvoice as refusal:
            raise ApplicationError(str(refusal), type=REFUND_REFUSED, non_retryable=True) from refusal
        if claimed.status == RefundStatus.FAILED:
            raise ApplicationError(claimed.needs_attention or "refund failed", type=REFUND_REFUSED, non_retryable=True)
        return await refund_through_finance(
            self._sessionmaker,
            self._http,
            self._settings,
            refund_id=refund_id,
            key=refund_id,
            body=finance_body(
                request.order_id, request.invoice_id, request.amount, request.currency, request.lines, request.return_id
            ),
        )

    @activity.defn
    async def place_replacement(self, request: ReplacementInput) -> str:
        """Place an exchange's replacement order through the order path, once per return; its order id.

        The customer, address, currency and backorder policy are the original order's; every unit is
        at no charge, and the order skips review.
        """
        async with self._sessionmaker.begin() as session:
            original = await get_order(session, request.order_id, self._keyring)
        if original is None:
            raise ApplicationError(f"order {request.order_id} is not on record", type=REPLACEMENT_REFUSED)
        order = OrderRequest(
            customer=original.customer,
            shipping_address=original.shipping_address,
            lines=[OrderLine(sku=sku, quantity=units, unit_price=Decimal("0.00")) for sku, units in request.items],
            currency=original.currency,
            backorder_policy=original.backorder_policy,
        )
        placer = OrderClient(self._client, self._sessionmaker, self._settings, self._keyring)
        accepted = await placer.place(
            order,
            idempotency_key(request.return_id, "exchange"),
            client_id=original.client_id,
            replacement_for=ReplacementOf(order_id=request.order_id, return_id=request.return_id),
        )
        return accepted.order_id
