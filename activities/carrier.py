"""The carrier: address check, rate quote, draft booking, confirmation with tracking number, cancellation."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.http import all_of, call_provider, idempotency_key
from models.integrations import BookingRef, ConfirmedBooking, DraftBookingInput, PrepareShipmentInput, RateQuote
from models.order import Shipment
from settings import Settings

ADDRESS_UNDELIVERABLE = "AddressUndeliverable"
BOOKING_REFUSED = "BookingRefused"
DEFAULT_CARRIER = "standin-express"


class CarrierActivities:
    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self._http = http
        self._settings = settings

    @activity.defn
    async def check_address(self, request: PrepareShipmentInput) -> None:
        """Ask the carrier whether it delivers there; undeliverable → non-retryable AddressUndeliverable."""
        check = await self._call("POST", "/addresses/validate", json={"address": _address(request)})
        if not check.get("deliverable"):
            raise ApplicationError(
                f"address undeliverable: {check.get('reason') or 'no reason given'}",
                type=ADDRESS_UNDELIVERABLE,
                non_retryable=True,
            )

    @activity.defn
    async def check_address_and_quote(self, request: PrepareShipmentInput) -> RateQuote:
        """The address check and the rate quote at once; an undeliverable address is the answer before any quote."""
        _, quote = await all_of(self.check_address(request), self.quote_rate(request))
        assert isinstance(quote, RateQuote)
        return quote

    @activity.defn
    async def quote_rate(self, request: PrepareShipmentInput) -> RateQuote:
        quote = await self._call(
            "POST",
            "/rates",
            json={"address": _address(request), "items": _items(request), "currency": request.currency},
        )
        return RateQuote(
            service=quote["service"],
            rate=Decimal(str(quote["rate"])),
            currency=quote.get("currency", request.currency),
        )

    @activity.defn
    async def draft_booking(self, request: DraftBookingInput) -> Shipment:
        """Book at the quoted rate, not yet confirmed; cancelled again if the order does not go ahead."""
        shipment, quote = request.shipment, request.quote
        booking = await self._call(
            "POST",
            "/bookings",
            key=_draft_key(shipment),
            json={
                "reference": shipment.order_id,
                "address": _address(shipment),
                "items": _items(shipment),
                "service": quote.service,
                "rate": str(quote.rate),
                "currency": quote.currency,
            },
        )
        return Shipment(
            carrier=booking.get("carrier") or DEFAULT_CARRIER,
            booking_id=booking["booking_id"],
            rate=Decimal(str(booking.get("rate", quote.rate))),
            status=booking.get("status", "draft"),
        )

    @activity.defn
    async def confirm_booking(self, ref: BookingRef) -> ConfirmedBooking:
        answer = await self._call(
            "POST",
            f"/bookings/{ref.booking_id}/confirm",
            key=idempotency_key(ref.order_id, "carrier", "confirm", ref.booking_id),
        )
        return ConfirmedBooking(booking_id=answer["booking_id"], tracking_number=answer["tracking_number"])

    @activity.defn
    async def cancel_booking(self, ref: BookingRef) -> None:
        """Cancel the booking; one the carrier does not know counts as cancelled."""
        await self._call(
            "POST",
            f"/bookings/{ref.booking_id}/cancel",
            key=idempotency_key(ref.order_id, "carrier", "cancel", ref.booking_id),
            accept=(404,),
        )

    async def _call(
        self, method: str, path: str, *, key: str | None = None, json: Any = None, accept: tuple[int, ...] = ()
    ) -> dict[str, Any]:
        return await call_provider(
            self._http,
            method,
            self._settings.carrier_url + path,
            idempotency_key=key,
            json=json,
            refusal=BOOKING_REFUSED,
            refusals={"address_undeliverable": ADDRESS_UNDELIVERABLE},
            accept=accept,
        )


def _draft_key(request: PrepareShipmentInput) -> str:
    # Each allocation round books afresh: the draft of an earlier round may have been cancelled.
    # A change of the order books afresh too, once per revision.
    if request.revision is not None:
        return idempotency_key(request.order_id, "carrier", "draft", f"r{request.revision}")
    if request.attempt == 1:
        return idempotency_key(request.order_id, "carrier", "draft")
    return idempotency_key(request.order_id, "carrier", "draft", str(request.attempt))


def _address(request: PrepareShipmentInput) -> dict[str, Any]:
    return request.address.model_dump(mode="json")


def _items(request: PrepareShipmentInput) -> list[dict[str, Any]]:
    return [{"sku": line.sku, "quantity": line.quantity} for line in request.lines]
