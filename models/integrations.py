"""Contracts of the calls to outside systems: carrier, finance, CRM, notifications and purchasing."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel

from models.order import Address, Customer, OrderLine


class PrepareShipmentInput(BaseModel):
    order_id: str
    address: Address
    lines: list[OrderLine]
    currency: str
    # Allocation round: a draft booking cancelled after a shortage is not the one made after restock.
    attempt: int = 1
    # Set for the draft that replaces the booking when the order is changed: the revision it books for.
    revision: int | None = None


class RateQuote(BaseModel):
    service: str
    rate: Decimal
    currency: str


class DraftBookingInput(BaseModel):
    shipment: PrepareShipmentInput
    quote: RateQuote


class BookingRef(BaseModel):
    order_id: str
    booking_id: str


class ConfirmedBooking(BaseModel):
    booking_id: str
    tracking_number: str


class InvoiceInput(BaseModel):
    order_id: str
    customer_id: str
    lines: list[OrderLine]
    currency: str
    shipping: Decimal = Decimal("0.00")


class InvoiceRef(BaseModel):
    order_id: str
    invoice_id: str


class CustomerUpsertInput(BaseModel):
    order_id: str
    customer: Customer


class PurchaseInput(BaseModel):
    order_id: str
    customer_id: str
    total: Decimal
    currency: str
    skus: list[str]


class NotificationInput(BaseModel):
    order_id: str
    customer_id: str
    # confirmed, backordered, shipped, delivered, cancelled
    event: str
    detail: str | None = None
    # Which notice of this kind it is for the order: backordered again after a restock that fell short is 2.
    round: int = 1


class ShippedNotice(BaseModel):
    """The best-effort steps of a shipped order, in one: the purchase in the CRM and the customer's notice."""

    purchase: PurchaseInput
    notification: NotificationInput


class PurchasingNotice(BaseModel):
    sku: str
    order_id: str
    quantity: int
    outstanding_quantity: int
    # The order's allocation round that found the SKU short (None from orders that do not send it).
    round: int | None = None
