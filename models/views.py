"""What the API answers with about an order: models of its own, built at the boundary.

The order workflow's state (models.order.OrderState) is its `status` query result, its update
results, a history payload and the database record. The API answers with `OrderView`, made by
`OrderView.of(state)` from whichever of those it read. A field added to the workflow's state stays
out of the API until a view names it, and reshaping the API changes no workflow payload.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from models.order import BackorderPolicy, OrderState, OrderStatus, ReviewDecision


class View(BaseModel):
    # Read field by field from the workflow's models; whatever else they carry is left behind.
    model_config = ConfigDict(from_attributes=True)


class CustomerView(View):
    id: str = Field(description="The customer's id in the shop's own system.")
    name: str = Field(description="The customer's name.")
    email: str = Field(description="The customer's email address, as sent.")
    phone: str = Field(description="The customer's phone number, as sent.")


class AddressView(View):
    name: str = Field(description="Who receives the parcel.")
    line1: str = Field(description="First line of the street address.")
    line2: str | None = Field(default=None, description="Second line of the street address, if any.")
    city: str = Field(description="City.")
    postal_code: str = Field(description="Postal code.")
    country: str = Field(description="ISO 3166-1 alpha-2 country code.")


class AllocationView(View):
    warehouse: str = Field(description="The warehouse the units are reserved at.")
    quantity: int = Field(description="Units reserved there.")


class OrderLineView(View):
    line_no: int = Field(description="The line's number in the order, from 1.")
    sku: str = Field(description="The SKU ordered.")
    quantity: int = Field(description="Units ordered.")
    unit_price: Decimal = Field(description="Price of one unit, in the order's currency.")
    allocations: list[AllocationView] = Field(
        default=[], description="Where the units are reserved; empty until stock is allocated."
    )
    delivered_quantity: int = Field(default=0, description="Units delivered: all of the line once delivered.")
    returned_quantity: int = Field(default=0, description="Units the warehouse has received back in returns.")
    refunded_quantity: int = Field(
        default=0, description="Units paid back by refunds (a return's, or one without a return naming lines)."
    )


class ReviewView(View):
    decision: ReviewDecision = Field(description="approved, manual (waiting for an operator) or rejected.")
    reasons: list[str] = Field(default=[], description="Why the rules decided so.")
    reviewed_by: str = Field(default="rules", description='"rules", or the role of the operator who decided.')
    note: str | None = Field(default=None, description="The operator's note, if any.")


class ShipmentView(View):
    carrier: str = Field(description="The carrier the parcel is booked with.")
    booking_id: str = Field(description="The carrier's booking id.")
    rate: Decimal = Field(description="What the carrier charges.")
    tracking_number: str | None = Field(default=None, description="Set once the booking is confirmed.")
    status: str = Field(default="draft", description="The booking's status: draft, then confirmed or cancelled.")


class InvoiceView(View):
    invoice_id: str = Field(description="Finance's invoice id.")
    subtotal: Decimal = Field(description="Lines and shipping, before tax.")
    tax: Decimal = Field(description="Tax on the subtotal.")
    total: Decimal = Field(description="What the customer pays.")
    currency: str = Field(description="ISO 4217 currency code.")
    status: str = Field(default="issued", description="issued, or void once the order is undone.")


class TimelineEntryView(View):
    seq: int = Field(description="The entry's number in the order's timeline, from 1.")
    at: datetime = Field(description="When it happened.")
    status: OrderStatus = Field(description="The order's status from this entry on.")
    actor: str = Field(description="Who did it: the workflow, an operator, the carrier...")
    event: str = Field(description="What happened.")
    detail: str | None = Field(default=None, description="More about it, e.g. a tracking number or a reason.")


class ReturnRefView(View):
    return_id: str = Field(description="The return's id: GET /returns/{return_id} tells all of it.")
    status: str = Field(description="Where the return stands.")


class RefundLineView(View):
    sku: str = Field(description="The SKU refunded.")
    quantity: int = Field(description="Units refunded.")
    amount: Decimal = Field(description="What they were paid: unit price and their share of the tax.")


class RefundView(View):
    refund_id: str = Field(description="The refund's id.")
    return_id: str | None = Field(default=None, description="The return it refunds; null for a refund without one.")
    amount: Decimal = Field(description="The amount refunded, tax included.")
    currency: str = Field(description="ISO 4217 currency code, the invoice's.")
    lines: list[RefundLineView] = Field(default=[], description="The units refunded; empty for an amount alone.")
    reason: str = Field(description="Why: the operator's reason, or 'returned goods' for a return's refund.")
    status: str = Field(description="requested (finance not done yet), refunded, or failed (refused; no money moved).")
    credit_note: str | None = Field(default=None, description="Finance's credit note; null until refunded.")
    needs_attention: str | None = Field(default=None, description="Why an operator should look, e.g. finance down.")


class OrderView(View):
    """An order as the API shows it: where it stands, what was ordered, and everything that happened to it."""

    order_id: str = Field(description="The order's id.")
    workflow_id: str = Field(description="The id of the order's workflow in Temporal.")
    client_id: str | None = Field(
        default=None, description="The API client that placed the order; null when staff placed it."
    )
    status: OrderStatus = Field(description="Where the order stands.")
    customer: CustomerView = Field(description="Who ordered.")
    shipping_address: AddressView = Field(description="Where the order goes.")
    lines: list[OrderLineView] = Field(
        description="The lines as they now stand (after any change), with where each is reserved."
    )
    total: Decimal = Field(description="The lines' total, in the order's currency, before shipping and tax.")
    revision: int = Field(
        default=1, description='1 when placed, one more per accepted change; send it back as If-Match: "<revision>".'
    )
    currency: str = Field(description="ISO 4217 currency code.")
    backorder_policy: BackorderPolicy = Field(description="What happens when stock is short: wait, or cancel.")
    review: ReviewView | None = Field(default=None, description="The review's outcome; null until reviewed.")
    shipment: ShipmentView | None = Field(default=None, description="The carrier booking; null until drafted.")
    invoice: InvoiceView | None = Field(default=None, description="The invoice; null until issued.")
    needs_attention: str | None = Field(
        default=None, description="Why an operator should look at the order, e.g. no delivery confirmation in time."
    )
    cancellation_reason: str | None = Field(default=None, description="Why the order was cancelled, if it was.")
    timeline: list[TimelineEntryView] = Field(default=[], description="Every status change and event, oldest first.")
    returns: list[ReturnRefView] = Field(default=[], description="The order's returns, oldest first.")
    refunds: list[RefundView] = Field(
        default=[], description="The order's refunds, its returns' and those without a return, oldest first."
    )
    refunded_total: Decimal = Field(
        default=Decimal("0.00"), description="What the refunds paid back (refunded), never more than was invoiced."
    )
    replacement_for: str | None = Field(
        default=None, description="The original order, when this order replaces goods returned for an exchange."
    )
    created_at: datetime = Field(description="When the order was received.")
    updated_at: datetime = Field(description="When the order last changed.")

    @classmethod
    def of(cls, state: OrderState) -> OrderView:
        """The view of the workflow's state (from its `status` query, an update, or the database record)."""
        return cls.model_validate(state)
