"""The carrier stand-in: address check, rate quote, draft booking, confirmation, cancellation; return labels."""

from __future__ import annotations

import secrets
import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints

from standins.deps import Idempotent, StoreDep, TrackingDep
from standins.state import Outcome, ProviderError, Store
from standins.tracking import TrackingDispatcher

CARRIER_NAME = "standin-express"
SERVICE = "standard"

# EU member states plus the closest neighbours and North America.
SUPPORTED_COUNTRIES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "GB",
        "CH",
        "NO",
        "US",
        "CA",
    ]
)
DOMESTIC_ZONE = SUPPORTED_COUNTRIES - {"GB", "CH", "NO", "US", "CA"}
ZONE_BASE = {True: Decimal("4.90"), False: Decimal("14.90")}
PER_UNIT = Decimal("0.45")
CENT = Decimal("0.01")

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Address(BaseModel):
    name: Text
    line1: Text
    line2: Annotated[str, StringConstraints(max_length=200)] | None = None
    city: Text
    postal_code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=16)]
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class Item(BaseModel):
    sku: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1)]


class ValidateRequest(BaseModel):
    address: Address


class RateRequest(BaseModel):
    address: Address
    items: Annotated[list[Item], Field(min_length=1)]
    currency: Currency = "EUR"


class BookingRequest(BaseModel):
    reference: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    address: Address
    items: Annotated[list[Item], Field(min_length=1)]
    service: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    rate: Annotated[Decimal, Field(ge=0)]
    currency: Currency


class ReturnLabelRequest(BaseModel):
    # The order the goods came with: the label's tracking events name it, as a booking's do.
    reference: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    return_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    items: Annotated[list[Item], Field(min_length=1)]


router = APIRouter(prefix="/carrier", tags=["carrier"])


def undeliverable_reason(address: Address) -> str | None:
    if address.country not in SUPPORTED_COUNTRIES:
        return f"country {address.country} is not served"
    if address.postal_code == "00000":
        return "postal code 00000 does not exist"
    return None


def quote(address: Address, items: list[Item]) -> Decimal:
    units = sum(item.quantity for item in items)
    return (ZONE_BASE[address.country in DOMESTIC_ZONE] + PER_UNIT * units).quantize(CENT)


@router.post("/addresses/validate")
async def validate_address(body: ValidateRequest) -> dict[str, Any]:
    reason = undeliverable_reason(body.address)
    return {"deliverable": reason is None, "reason": reason}


@router.post("/rates")
async def rates(body: RateRequest) -> dict[str, Any]:
    reason = undeliverable_reason(body.address)
    if reason is not None:
        raise ProviderError(422, "address_undeliverable", reason)
    return {"service": SERVICE, "rate": str(quote(body.address, body.items)), "currency": body.currency}


@router.post("/bookings", status_code=201)
async def create_booking(body: BookingRequest, call: Idempotent, store: StoreDep) -> JSONResponse:
    return call.apply(body, lambda: _book(store, body, call.key))


@router.post("/bookings/{booking_id}/confirm")
async def confirm_booking(booking_id: str, call: Idempotent, store: StoreDep, tracking: TrackingDep) -> JSONResponse:
    return call.apply(None, lambda: _confirm(store, tracking, booking_id, call.key))


@router.post("/bookings/{booking_id}/cancel")
async def cancel_booking(booking_id: str, call: Idempotent, store: StoreDep) -> JSONResponse:
    return call.apply(None, lambda: _cancel(store, booking_id, call.key))


@router.get("/bookings/{booking_id}")
async def get_booking(booking_id: str, store: StoreDep) -> dict[str, Any]:
    booking = store.get("bookings", booking_id)
    if booking is None:
        raise ProviderError(404, "not_found", f"no such booking: {booking_id}")
    return _public(booking)


@router.post("/returns/labels", status_code=201)
async def issue_return_label(
    body: ReturnLabelRequest, call: Idempotent, store: StoreDep, tracking: TrackingDep
) -> JSONResponse:
    """A prepaid label for the customer's parcel back; its tracking events follow as the parcel travels."""
    return call.apply(body, lambda: _issue_label(store, tracking, body, call.key))


@router.post("/returns/labels/{label_id}/void")
async def void_return_label(label_id: str, call: Idempotent, store: StoreDep) -> JSONResponse:
    return call.apply(None, lambda: _void_label(store, label_id, call.key))


@router.get("/returns/labels/{label_id}")
async def get_return_label(label_id: str, store: StoreDep) -> dict[str, Any]:
    label = store.get("return_labels", label_id)
    if label is None:
        raise ProviderError(404, "not_found", f"no such return label: {label_id}")
    return _public(label)


def _issue_label(store: Store, tracking: TrackingDispatcher, body: ReturnLabelRequest, key: str) -> Outcome:
    label_id = f"RL-{uuid.uuid4().hex[:12].upper()}"
    label = {
        "label_id": label_id,
        "carrier": CARRIER_NAME,
        "status": "issued",
        "tracking_number": f"SR{secrets.randbelow(10**10):010d}",
        **body.model_dump(mode="json"),
        "idempotency_key": key,
        "history": [],
    }
    store.put("return_labels", label_id, label)
    tracking.start(label_id, "return_labels")
    return Outcome(201, _public(label))


def _void_label(store: Store, label_id: str, key: str) -> Outcome:
    def change(label: dict[str, Any]) -> Outcome:
        if label["status"] == "delivered":
            return Outcome.refusal(409, "label_used", "the parcel of a delivered label cannot be stopped")
        if label["status"] != "void":
            label["status"] = "void"
            label["history"].append({"action": "void", "idempotency_key": key})
        return Outcome(200, _public(label))

    return store.update("return_labels", label_id, change)


def _book(store: Store, body: BookingRequest, key: str) -> Outcome:
    reason = undeliverable_reason(body.address)
    if reason is not None:
        return Outcome.refusal(422, "address_undeliverable", reason)
    booking_id = f"BK-{uuid.uuid4().hex[:12].upper()}"
    booking = {
        "booking_id": booking_id,
        "carrier": CARRIER_NAME,
        "status": "draft",
        "tracking_number": None,
        **body.model_dump(mode="json"),
        "idempotency_key": key,
        "history": [],
    }
    store.put("bookings", booking_id, booking)
    return Outcome(201, _public(booking))


def _confirm(store: Store, tracking: TrackingDispatcher, booking_id: str, key: str) -> Outcome:
    def change(booking: dict[str, Any]) -> Outcome:
        if booking["status"] == "cancelled":
            return Outcome.refusal(409, "booking_cancelled", "a cancelled booking cannot be confirmed")
        if booking["status"] == "draft":
            booking["status"] = "confirmed"
            booking["tracking_number"] = f"SX{secrets.randbelow(10**10):010d}"
            booking["history"].append({"action": "confirm", "idempotency_key": key})
            tracking.start(booking_id)
        return Outcome(200, _public(booking))

    return store.update("bookings", booking_id, change)


def _cancel(store: Store, booking_id: str, key: str) -> Outcome:
    def change(booking: dict[str, Any]) -> Outcome:
        if booking["status"] == "delivered":
            return Outcome.refusal(409, "booking_delivered", "a delivered booking cannot be cancelled")
        if booking["status"] != "cancelled":
            booking["status"] = "cancelled"
            booking["history"].append({"action": "cancel", "idempotency_key": key})
        return Outcome(200, _public(booking))

    return store.update("bookings", booking_id, change)


def _public(booking: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in booking.items() if name not in {"idempotency_key", "history"}}
