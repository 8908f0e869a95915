"""The finance stand-in: invoices with tax, their voiding, and refunds with credit notes.

A refund names the invoice it gives back from; finance refuses one that would take the invoice's
refunded total above what was invoiced (409 refund_exceeds_invoice, with what is left).
"""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints

from standins.deps import ConfigDep, Idempotent, StoreDep
from standins.state import Outcome, Store

CENT = Decimal("0.01")
SUPPORTED_CURRENCIES = frozenset(
    ["EUR", "USD", "GBP", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "RON", "BGN", "CAD", "AUD", "JPY"]
)

Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


class InvoiceLine(BaseModel):
    sku: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1)]
    unit_price: Money


class InvoiceRequest(BaseModel):
    order_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    customer_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    lines: Annotated[list[InvoiceLine], Field(min_length=1)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    shipping: Money = Decimal("0.00")


class RefundLine(BaseModel):
    sku: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1)]
    amount: Money


class RefundRequest(BaseModel):
    order_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    invoice_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    return_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    lines: list[RefundLine] = []
    amount: Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


router = APIRouter(prefix="/finance", tags=["finance"])


def tax_due(taxable: Decimal, rate: Decimal) -> Decimal:
    return (taxable * rate).quantize(CENT, rounding=ROUND_HALF_UP)


@router.post("/invoices", status_code=201)
async def create_invoice(body: InvoiceRequest, call: Idempotent, store: StoreDep, config: ConfigDep) -> JSONResponse:
    return call.apply(body, lambda: _issue(store, body, config.tax_rate, call.key))


@router.post("/invoices/{invoice_id}/void")
async def void_invoice(invoice_id: str, call: Idempotent, store: StoreDep) -> JSONResponse:
    return call.apply(None, lambda: _void(store, invoice_id, call.key))


@router.post("/refunds", status_code=201)
async def create_refund(body: RefundRequest, call: Idempotent, store: StoreDep) -> JSONResponse:
    return call.apply(body, lambda: _refund(store, body, call.key))


def refunded_total(store: Store, invoice_id: str) -> Decimal:
    return sum(
        (Decimal(refund["amount"]) for refund in store.items("refunds") if refund["invoice_id"] == invoice_id),
        Decimal("0.00"),
    )


def _refund(store: Store, body: RefundRequest, key: str) -> Outcome:
    invoice = store.get("invoices", body.invoice_id)
    if invoice is None or invoice["order_id"] != body.order_id:
        return Outcome.refusal(404, "not_found", f"no invoice {body.invoice_id} for order {body.order_id}")
    if invoice["currency"] != body.currency:
        return Outcome.refusal(422, "currency_mismatch", f"the invoice is in {invoice['currency']}")
    left = Decimal(invoice["total"]) - refunded_total(store, body.invoice_id)
    if body.amount > left:
        return Outcome.refusal(
            409, "refund_exceeds_invoice", f"{body.amount} asked, {left} of {invoice['total']} left to refund"
        )
    refund_id = f"RF-{uuid.uuid4().hex[:12].upper()}"
    refund = {
        "refund_id": refund_id,
        "credit_note": f"CN-{uuid.uuid4().hex[:12].upper()}",
        **body.model_dump(mode="json"),
        "amount": str(body.amount.quantize(CENT)),
        "status": "issued",
        "idempotency_key": key,
        "history": [],
    }
    store.put("refunds", refund_id, refund)
    return Outcome(201, _public(refund))


def _issue(store: Store, body: InvoiceRequest, tax_rate: Decimal, key: str) -> Outcome:
    if body.currency not in SUPPORTED_CURRENCIES:
        return Outcome.refusal(422, "currency_unsupported", f"cannot invoice in {body.currency}")
    subtotal = sum((line.unit_price * line.quantity for line in body.lines), Decimal("0")).quantize(CENT)
    shipping = body.shipping.quantize(CENT)
    tax = tax_due(subtotal + shipping, tax_rate)
    invoice_id = f"INV-{uuid.uuid4().hex[:12].upper()}"
    invoice = {
        "invoice_id": invoice_id,
        "order_id": body.order_id,
        "customer_id": body.customer_id,
        "lines": [line.model_dump(mode="json") for line in body.lines],
        "subtotal": str(subtotal),
        "shipping": str(shipping),
        "tax": str(tax),
        "total": str(subtotal + shipping + tax),
        "currency": body.currency,
        "status": "issued",
        "idempotency_key": key,
        "history": [],
    }
    store.put("invoices", invoice_id, invoice)
    return Outcome(201, _public(invoice))


def _void(store: Store, invoice_id: str, key: str) -> Outcome:
    def change(invoice: dict[str, Any]) -> Outcome:
        if invoice["status"] != "void":
            invoice["status"] = "void"
            invoice["history"].append({"action": "void", "idempotency_key": key})
        return Outcome(200, {"invoice_id": invoice_id, "status": "void"})

    return store.update("invoices", invoice_id, change)


def _public(invoice: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in invoice.items() if name not in {"idempotency_key", "history", "lines"}}
