"""The stand-ins that only take note: CRM customers and purchases, customer notifications, purchasing's inbox.

Purchasing's inbox checks the signature of every shortage notice and purchase request
(security.signing) and notes whether it was valid, and if not why, beside it.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints

from security.signing import SignatureError, verify
from standins.deps import ConfigDep, Idempotent, StoreDep
from standins.state import Outcome, RecordKind, Store

# The tolerance of the order service's own webhook, applied to what it sends.
SIGNATURE_TOLERANCE_SECONDS = 300

Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(max_length=254)]


class CustomerProfile(BaseModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    email: Text
    phone: Annotated[str, StringConstraints(max_length=32)]


class Purchase(BaseModel):
    order_id: Id
    total: Annotated[Decimal, Field(ge=0)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    skus: list[Id]


class Notification(BaseModel):
    order_id: Id
    customer_id: Id
    event: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    detail: Annotated[str, StringConstraints(max_length=2000)] | None = None


class ShortageNotice(BaseModel):
    sku: Id
    order_id: Id
    quantity: Annotated[int, Field(ge=1)]
    outstanding_quantity: Annotated[int, Field(ge=0)]
    # The order's allocation round that found the SKU short, when the order service knows it.
    round: Annotated[int, Field(ge=1)] | None = None


class PurchaseRequest(BaseModel):
    suggestion_id: Id
    sku: Id
    warehouse: Id
    quantity: Annotated[int, Field(ge=1)]


crm = APIRouter(prefix="/crm", tags=["crm"])
notifications = APIRouter(prefix="/notifications", tags=["notifications"])
purchasing = APIRouter(prefix="/purchasing", tags=["purchasing"])

CustomerIdPath = Annotated[str, Path(min_length=1, max_length=64)]


@crm.put("/customers/{customer_id}")
async def upsert_customer(
    customer_id: CustomerIdPath, body: CustomerProfile, call: Idempotent, store: StoreDep
) -> JSONResponse:
    return call.apply(body, lambda: _upsert_customer(store, customer_id, body, call.key))


@crm.post("/customers/{customer_id}/purchases", status_code=201)
async def record_purchase(
    customer_id: CustomerIdPath, body: Purchase, call: Idempotent, store: StoreDep
) -> JSONResponse:
    record = {"customer_id": customer_id, **body.model_dump(mode="json")}
    return call.apply(body, lambda: _note(store, "purchases", "purchase_id", record, call.key, 201))


@notifications.post("", status_code=202)
async def notify(body: Notification, call: Idempotent, store: StoreDep) -> JSONResponse:
    return call.apply(body, lambda: _note(store, "notifications", "notification_id", body.model_dump(), call.key, 202))


@purchasing.post("/shortages", status_code=202)
async def report_shortage(
    body: ShortageNotice, request: Request, call: Idempotent, store: StoreDep, config: ConfigDep
) -> JSONResponse:
    problem = None
    try:
        verify(
            config.purchasing_webhook_secret,
            request.headers,
            await request.body(),
            tolerance_seconds=SIGNATURE_TOLERANCE_SECONDS,
        )
    except SignatureError as error:
        problem = str(error)
    record = {**body.model_dump(), "signature_valid": problem is None, "signature_problem": problem}
    return call.apply(body, lambda: _note(store, "shortages", "notice_id", record, call.key, 202))


@purchasing.post("/purchase-requests", status_code=201)
async def request_purchase(
    body: PurchaseRequest, request: Request, call: Idempotent, store: StoreDep, config: ConfigDep
) -> JSONResponse:
    """A purchase order placed from an accepted reorder suggestion."""
    problem = await _signature_problem(request, config.purchasing_webhook_secret)
    record = {**body.model_dump(), "signature_valid": problem is None, "signature_problem": problem}
    return call.apply(body, lambda: _note(store, "purchase_requests", "request_id", record, call.key, 201))


async def _signature_problem(request: Request, secret: str) -> str | None:
    try:
        verify(secret, request.headers, await request.body(), tolerance_seconds=SIGNATURE_TOLERANCE_SECONDS)
    except SignatureError as error:
        return str(error)
    return None


def _upsert_customer(store: Store, customer_id: str, body: CustomerProfile, key: str) -> Outcome:
    # One record per customer; `idempotency_key` is the call that last changed it, `updates` counts all of them.
    previous = store.get("customers", customer_id)
    profile = {"customer_id": customer_id, **body.model_dump()}
    updates = (previous["updates"] if previous else 0) + 1
    store.put("customers", customer_id, {**profile, "idempotency_key": key, "updates": updates})
    return Outcome(200, profile)


def _note(store: Store, kind: RecordKind, id_field: str, record: dict[str, Any], key: str, status: int) -> Outcome:
    record_id = uuid.uuid4().hex
    store.put(kind, record_id, {id_field: record_id, **record, "idempotency_key": key})
    return Outcome(status, {id_field: record_id, **record})
