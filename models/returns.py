"""Returns (RMA): what clients and operators send, the return workflow's input and state, and its messages.

The rules a return follows (whether it needs review, what may be returned, what is refunded) are
pure functions in domain/returns.py; the API's answers are views of `ReturnState`, and the
rows are db/returns.py's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.fields import Note, Printable
from models.order import Quantity, Sku, Strict


class ReturnStatus(StrEnum):
    REQUESTED = "requested"
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    DECLINED = "declined"
    LABEL_ISSUED = "label_issued"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    REFUNDED = "refunded"
    # A replacement order was placed for the received units (resolution "exchange").
    EXCHANGED = "exchanged"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_RETURN_STATUSES


TERMINAL_RETURN_STATUSES = frozenset(
    {ReturnStatus.CLOSED, ReturnStatus.DECLINED, ReturnStatus.CANCELLED, ReturnStatus.EXPIRED}
)
# A return in one of these no longer covers any units of its order: they may be returned again.
VOID_RETURN_STATUSES = frozenset({ReturnStatus.DECLINED, ReturnStatus.CANCELLED, ReturnStatus.EXPIRED})


class ReturnReason(StrEnum):
    DAMAGED = "damaged"
    WRONG_ITEM = "wrong_item"
    NOT_AS_DESCRIBED = "not_as_described"
    NO_LONGER_NEEDED = "no_longer_needed"
    OTHER = "other"


class Condition(StrEnum):
    RESELLABLE = "resellable"
    DAMAGED = "damaged"


Warehouse = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]


# ---- What callers send. ----


class ReturnLineRequest(Strict):
    sku: Sku
    quantity: Quantity
    reason: ReturnReason


class ReturnRequest(Strict):
    """POST /orders/{order_id}/returns."""

    lines: Annotated[list[ReturnLineRequest], Field(min_length=1, max_length=100)]
    # refund: the received units' paid share back; exchange: a replacement order for them, at no charge.
    resolution: Literal["refund", "exchange"] = "refund"
    note: Note | None = None
    # Operators only: accept a return after the return window, with a note saying why (audited).
    override_window: bool = False


class ReturnReviewRequest(Strict):
    decision: Literal["approve", "decline"]
    note: Note | None = None


class ReceiptLine(Strict):
    sku: Sku
    quantity: Quantity
    condition: Condition


class ReturnReceiptRequest(Strict):
    """POST /returns/{return_id}/receipt: what the warehouse found in the parcel."""

    warehouse: Warehouse
    lines: Annotated[list[ReceiptLine], Field(min_length=1, max_length=100)]


class RefundRetryRequest(Strict):
    note: Note | None = None


class ReturnCancelRequest(Strict):
    reason: Annotated[str, Field(min_length=1, max_length=500), Printable(multiline=True)]


# ---- The workflow's input and state. ----


class ReturnLine(BaseModel):
    line_no: int
    sku: str
    quantity: int
    reason: ReturnReason
    # As invoiced for one unit before tax; the refund adds the line's share of the invoice's tax.
    unit_price: Decimal
    received: int = 0
    resellable: int = 0
    damaged: int = 0


class InvoiceShare(BaseModel):
    """The order's invoice as the refund needs it: what was charged, and the tax on it."""

    invoice_id: str
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    currency: str


class ReturnInput(BaseModel):
    """Input of the return workflow: everything it needs, fixed when the return is requested."""

    return_id: str
    order_id: str
    customer_id: str
    client_id: str | None = None
    lines: list[ReturnLine]
    resolution: str = "refund"
    note: str | None = None
    invoice: InvoiceShare
    review_threshold: Decimal = Decimal("1000.00")
    shipping_window: timedelta = timedelta(days=30)
    requested_by: str = "client"
    requested_at: datetime
    # Set when an operator accepted the return after the return window: why, for the timeline.
    window_override: str | None = None


class Label(BaseModel):
    label_id: str
    carrier: str
    tracking_number: str
    status: str = "issued"


class Refund(BaseModel):
    refund_id: str
    amount: Decimal
    currency: str
    credit_note: str
    status: str = "issued"


class ReturnEvent(BaseModel):
    seq: int
    at: datetime
    status: ReturnStatus
    actor: str
    event: str
    detail: str | None = None


class ReceiptRecord(BaseModel):
    receipt_no: int
    warehouse: str
    lines: list[ReceiptLine]
    received_by: str
    at: datetime


class ReturnState(BaseModel):
    """The whole return, as the workflow keeps it and writes it to the database."""

    return_id: str
    workflow_id: str
    order_id: str
    customer_id: str
    client_id: str | None = None
    status: ReturnStatus
    resolution: str
    note: str | None = None
    lines: list[ReturnLine]
    value: Decimal
    currency: str
    review_note: str | None = None
    reviewed_by: str | None = None
    label: Label | None = None
    receipts: list[ReceiptRecord] = []
    refund: Refund | None = None
    # The replacement order of an exchange, once placed.
    replacement_order_id: str | None = None
    needs_attention: str | None = None
    timeline: list[ReturnEvent] = []
    created_at: datetime
    updated_at: datetime


# ---- Messages to a running return. ----


class ReviewReturnCommand(BaseModel):
    approve: bool
    note: str | None = None
    actor: str = "operator"


class ReceiveCommand(BaseModel):
    warehouse: str
    lines: list[ReceiptLine]
    actor: str = "operator"


class CancelReturnCommand(BaseModel):
    reason: str
    actor: str = "client"


class ReturnTrackingEvent(BaseModel):
    event_id: str
    tracking_number: str
    status: str
    at: datetime


# ---- Activity contracts. ----


class RecordReturnInput(BaseModel):
    state: ReturnState
    seq: int


class LabelInput(BaseModel):
    return_id: str
    order_id: str
    items: list[tuple[str, int]]


class VoidLabelInput(BaseModel):
    return_id: str
    label_id: str


class ReceiveGoodsInput(BaseModel):
    return_id: str
    receipt_no: int
    warehouse: str
    lines: list[ReceiptLine]


class RefundLine(BaseModel):
    sku: str
    quantity: int
    amount: Decimal


class ReplacementInput(BaseModel):
    """An exchange's replacement order: the original order's customer and address, these units, at no charge."""

    return_id: str
    order_id: str
    items: list[tuple[str, int]]


class RefundInput(BaseModel):
    return_id: str
    order_id: str
    invoice_id: str
    attempt: int
    lines: list[RefundLine]
    amount: Decimal
    currency: str


# ---- The API's answers. ----


class ReturnAccepted(BaseModel):
    return_id: str
    status: ReturnStatus
    workflow_id: str


class ReturnSummary(BaseModel):
    return_id: str
    order_id: str
    status: ReturnStatus
    value: Decimal
    currency: str
    needs_attention: str | None = None
    created_at: datetime
    updated_at: datetime


class ReturnPage(BaseModel):
    items: list[ReturnSummary]
    next_cursor: str | None = None


class ReturnView(BaseModel):
    """GET /returns/{return_id}: the whole return, made from the workflow's state at the boundary."""

    model_config = ConfigDict(from_attributes=True)

    return_id: str = Field(description="The return's id.")
    workflow_id: str = Field(description="The id of the return's workflow in Temporal: return-<return_id>.")
    order_id: str = Field(description="The order the goods came with.")
    customer_id: str = Field(description="The customer who returns them.")
    status: ReturnStatus = Field(description="Where the return stands.")
    resolution: str = Field(
        description="What the customer gets back: refund (money), or exchange (a replacement order, no charge)."
    )
    note: str | None = Field(default=None, description="The note sent with the request, if any.")
    lines: list[ReturnLine] = Field(description="What is returned; received, resellable and damaged as inspected.")
    value: Decimal = Field(description="The goods' value before tax, as the review threshold compares it.")
    currency: str = Field(description="ISO 4217 currency code, the order's.")
    review_note: str | None = Field(default=None, description="The operator's note on the review, if any.")
    reviewed_by: str | None = Field(default=None, description="Who reviewed the return; null when the rules approved.")
    label: Label | None = Field(default=None, description="The carrier's return label and its tracking number.")
    receipts: list[ReceiptRecord] = Field(default=[], description="What the warehouse received, parcel by parcel.")
    refund: Refund | None = Field(default=None, description="The refund with its credit note; null until refunded.")
    replacement_order_id: str | None = Field(
        default=None, description="An exchange's replacement order (GET /orders/{id}); null until placed."
    )
    needs_attention: str | None = Field(
        default=None, description="Why an operator must look, e.g. a refund that keeps failing; null otherwise."
    )
    timeline: list[ReturnEvent] = Field(default=[], description="Everything that happened to the return, in order.")
    created_at: datetime = Field(description="When the return was requested.")
    updated_at: datetime = Field(description="When it last changed.")

    @classmethod
    def of(cls, state: ReturnState) -> ReturnView:
        return cls.model_validate(state)
