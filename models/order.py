"""The order as clients send it and as operators see it: request, statuses, state and timeline."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from models.fields import JSON_INTEGER, Line, Note, OptionalLine, Printable, Reason, Timestamp, UnitPrice

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
# Customer and order ids: what clients and this service generate (UUIDs, "C-1", "crm:42").
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"

Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=SKU_PATTERN)]
CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
OrderId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]

MAX_LINES = 100
MAX_QUANTITY = 10_000

Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY), JSON_INTEGER]


class OrderStatus(StrEnum):
    RECEIVED = "received"
    PENDING_REVIEW = "pending_review"
    REJECTED = "rejected"
    ALLOCATING = "allocating"
    BACKORDERED = "backordered"
    FULFILLING = "fulfilling"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({OrderStatus.REJECTED, OrderStatus.DELIVERED, OrderStatus.CANCELLED, OrderStatus.FAILED})


class BackorderPolicy(StrEnum):
    WAIT = "wait"
    CANCEL = "cancel"


class Strict(BaseModel):
    """What a caller sends: a field the model does not name (status, total, order_id...) is refused."""

    model_config = ConfigDict(extra="forbid")


class Customer(Strict):
    id: CustomerId
    name: Line
    # Email and phone are checked by the review rules, so that a malformed one is a
    # rejected order on record rather than a request nobody sees.
    email: Annotated[str, Field(max_length=254), Printable(blank=True)]
    phone: Annotated[str, Field(max_length=32), Printable(blank=True)]


class OrderLine(Strict):
    sku: Sku
    quantity: Quantity
    unit_price: UnitPrice


class Address(Strict):
    name: Line
    line1: Line
    line2: OptionalLine | None = None
    city: Line
    postal_code: Annotated[str, Field(min_length=1, max_length=16), Printable()]
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class OrderRequest(Strict):
    customer: Customer
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=MAX_LINES)]
    shipping_address: Address
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "EUR"
    backorder_policy: BackorderPolicy = BackorderPolicy.WAIT

    @property
    def total(self) -> Decimal:
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal("0.00"))

    @property
    def skus(self) -> list[str]:
        return sorted({line.sku for line in self.lines})


class OrderInput(BaseModel):
    """Input of the order workflow. Deadlines travel with the order, so a run keeps the ones it started with."""

    order_id: str
    request: OrderRequest
    # The API client that placed the order (None for staff); set by the API, never by a request body.
    client_id: str | None = None
    review_timeout: timedelta = timedelta(hours=48)
    backorder_timeout: timedelta = timedelta(days=7)
    delivery_timeout: timedelta = timedelta(days=14)
    # Waiting for the carrier, the order carries on in a new run once its history is this long.
    max_history_events: int = 2_000
    # Set only by the workflow itself, when it carries on waiting for the carrier in a new run.
    resumed: ResumedDelivery | None = None
    # Set by a return's exchange: the replacement order skips review (its price is 0).
    replacement_for: ReplacementOf | None = None


class ReplacementOf(BaseModel):
    """What a replacement order replaces: the original order, and the return that asked for the exchange."""

    order_id: str
    return_id: str


class Allocation(BaseModel):
    warehouse: str
    quantity: int


class LineState(BaseModel):
    line_no: int
    sku: str
    quantity: int
    unit_price: Decimal
    allocations: list[Allocation] = []


class ReviewDecision(StrEnum):
    APPROVED = "approved"
    MANUAL = "manual"
    REJECTED = "rejected"


class ReviewOutcome(BaseModel):
    decision: ReviewDecision
    reasons: list[str] = []
    reviewed_by: str = "rules"
    note: str | None = None


class Shipment(BaseModel):
    carrier: str
    booking_id: str
    rate: Decimal
    tracking_number: str | None = None
    status: str = "draft"


class Invoice(BaseModel):
    invoice_id: str
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    currency: str
    status: str = "issued"


class TimelineEvent(BaseModel):
    seq: int
    at: datetime
    status: OrderStatus
    actor: str
    event: str
    detail: str | None = None


class OrderState(BaseModel):
    """The whole order as operators and clients see it (the `status` query, GET /orders/{id})."""

    order_id: str
    workflow_id: str
    # The API client that placed the order (None for staff); a client sees only its own orders.
    client_id: str | None = None
    status: OrderStatus
    customer: Customer
    shipping_address: Address
    lines: list[LineState]
    total: Decimal
    currency: str
    backorder_policy: BackorderPolicy
    # 1 when placed, one more with each change accepted (PATCH /orders/{id}).
    revision: int = 1
    review: ReviewOutcome | None = None
    shipment: Shipment | None = None
    invoice: Invoice | None = None
    needs_attention: str | None = None
    cancellation_reason: str | None = None
    timeline: list[TimelineEvent] = []
    # The original order, when this one replaces its goods in an exchange.
    replacement_for: str | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def received(
        cls, order_id: str, workflow_id: str, request: OrderRequest, at: datetime, client_id: str | None = None
    ) -> OrderState:
        """The order as it stands the moment it is received: nothing reviewed, allocated or shipped yet."""
        return cls(
            order_id=order_id,
            workflow_id=workflow_id,
            client_id=client_id,
            status=OrderStatus.RECEIVED,
            customer=request.customer,
            shipping_address=request.shipping_address,
            lines=[
                LineState(line_no=no, sku=line.sku, quantity=line.quantity, unit_price=line.unit_price)
                for no, line in enumerate(request.lines, start=1)
            ],
            total=request.total,
            currency=request.currency,
            backorder_policy=request.backorder_policy,
            created_at=at,
            updated_at=at,
        )


class ResumedDelivery(BaseModel):
    """An order with the carrier, as a run that grew a long history hands it over to the next."""

    state: OrderState
    # The last timeline entry's number; the next run numbers on from it.
    seq: int
    tracking_seen: list[str] = []
    tracking_inbox: list[TrackingEvent] = []
    notices: dict[str, int] = {}


# Messages sent to a running order by operators, the API and the carrier.


class ReviewRequest(Strict):
    decision: Literal["approve", "reject"]
    note: Note | None = None


class ReviewCommand(BaseModel):
    """What an operator's approve/reject update carries."""

    note: str | None = None
    actor: str = "operator"


class CancelRequest(Strict):
    reason: Reason


class CancelCommand(BaseModel):
    reason: str
    actor: str = "api"


class TrackingStatus(StrEnum):
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    EXCEPTION = "exception"


class TrackingEvent(Strict):
    """A carrier's tracking event, as its webhook delivers it and as the workflow receives it."""

    event_id: Annotated[str, Field(min_length=1, max_length=128), Printable()]
    order_id: OrderId
    tracking_number: Annotated[str, Field(min_length=1, max_length=64), Printable()]
    status: TrackingStatus
    at: Timestamp


class OrderFilter(Strict):
    """Which orders a list, a search or a bulk action means; every field left out matches every order.

    `q` is the quick search: an order id, a customer id or a SKU, matched exactly. The dates bound
    `created_at`, from inclusive, to exclusive.
    """

    status: OrderStatus | None = None
    customer_id: CustomerId | None = None
    sku: Sku | None = None
    client_id: CustomerId | None = Field(default=None, description="Only orders placed by this API client.")
    q: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)] | None = None
    created_from: Timestamp | None = None
    created_to: Timestamp | None = None


class OrderSummary(BaseModel):
    """One row of GET /orders."""

    order_id: str
    workflow_id: str
    client_id: str | None = None
    status: OrderStatus
    customer_id: str
    total: Decimal
    currency: str
    skus: list[str] = Field(default_factory=list, description="The SKUs of the order's lines, in line order.")
    created_at: datetime
    updated_at: datetime


class OrderPage(BaseModel):
    items: list[OrderSummary]
    next_cursor: str | None = None


class OrderAccepted(BaseModel):
    """The answer to POST /orders."""

    order_id: str
    status: OrderStatus
    workflow_id: str


OrderInput.model_rebuild()
