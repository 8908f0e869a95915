"""Finance: the invoice with tax, and its voiding when an order is undone."""

from __future__ import annotations

from decimal import Decimal

import httpx
from temporalio import activity

from activities.http import call_provider, idempotency_key
from models.integrations import InvoiceInput, InvoiceRef
from models.order import Invoice
from settings import Settings

INVOICE_REFUSED = "InvoiceRefused"


class FinanceActivities:
    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self._http = http
        self._settings = settings

    @activity.defn
    async def create_invoice(self, request: InvoiceInput) -> Invoice:
        answer = await call_provider(
            self._http,
            "POST",
            f"{self._settings.finance_url}/invoices",
            idempotency_key=idempotency_key(request.order_id, "finance", "invoice"),
            json={
                "order_id": request.order_id,
                "customer_id": request.customer_id,
                "lines": [line.model_dump(mode="json") for line in request.lines],
                "currency": request.currency,
                "shipping": str(request.shipping),
            },
            refusal=INVOICE_REFUSED,
        )
        return Invoice(
            invoice_id=answer["invoice_id"],
            subtotal=Decimal(answer["subtotal"]),
            tax=Decimal(answer["tax"]),
            total=Decimal(answer["total"]),
            currency=answer["currency"],
            status=answer.get("status", "issued"),
        )

    @activity.defn
    async def void_invoice(self, ref: InvoiceRef) -> None:
        """Void the invoice; one finance does not know counts as void."""
        await call_provider(
            self._http,
            "POST",
            f"{self._settings.finance_url}/invoices/{ref.invoice_id}/void",
            idempotency_key=idempotency_key(ref.order_id, "finance", "void"),
            refusal=INVOICE_REFUSED,
            accept=(404,),
        )
