"""Contracts of the order record steps: the order row, its status changes and its review."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel

from models.order import Allocation, Invoice, OrderRequest, OrderState, ReviewOutcome, Shipment, TimelineEvent


class OrderHeader(BaseModel):
    """What names the order row, so that a status change landing before the order record can create it."""

    order_id: str
    workflow_id: str
    client_id: str | None = None
    customer_id: str
    total: Decimal
    currency: str
    created_at: datetime


class LineAllocations(BaseModel):
    line_no: int
    allocations: list[Allocation]


class OrderFacts(BaseModel):
    """What may change on an order after it is received; everything else the order record already holds.

    A whole set is sent with every status change, never a difference from the previous one, so the
    newest change alone says how the order stands, whatever order the changes land in.
    """

    review: ReviewOutcome | None = None
    shipment: Shipment | None = None
    invoice: Invoice | None = None
    # Lines holding stock; a line not named holds none.
    allocations: list[LineAllocations] = []
    needs_attention: str | None = None
    cancellation_reason: str | None = None
    updated_at: datetime


class StatusChangeInput(BaseModel):
    """One entry of the timeline, with the facts of the order as they stand after it.

    Never the timeline before it, nor the customer, address or lines: the size of a status change
    does not grow with the order's history.
    `version` is the workflow's history length when the entry was made: it orders writes across
    workflow tasks, so that a task replacing a lost one overwrites what the lost one wrote.
    """

    order: OrderHeader
    event: TimelineEvent
    facts: OrderFacts
    version: int = 0

    @classmethod
    def of(cls, state: OrderState, event: TimelineEvent, version: int = 0) -> StatusChangeInput:
        """The change that `event` makes, with the facts of `state`, the order as it stands after it.

        A copy: the workflow goes on changing its state while the write waits to run.
        """
        change = cls(
            order=OrderHeader(
                order_id=state.order_id,
                workflow_id=state.workflow_id,
                client_id=state.client_id,
                customer_id=state.customer.id,
                total=state.total,
                currency=state.currency,
                created_at=state.created_at,
            ),
            event=event,
            facts=OrderFacts(
                review=state.review,
                shipment=state.shipment,
                invoice=state.invoice,
                allocations=[
                    LineAllocations(line_no=line.line_no, allocations=line.allocations)
                    for line in state.lines
                    if line.allocations
                ],
                needs_attention=state.needs_attention,
                cancellation_reason=state.cancellation_reason,
                updated_at=state.updated_at,
            ),
            version=version,
        )
        return change.model_copy(deep=True)


class RecordOrderInput(BaseModel):
    order_id: str
    workflow_id: str
    request: OrderRequest
    received_at: datetime
    client_id: str | None = None
    # The original order, when this one replaces goods returned for an exchange.
    replacement_for: str | None = None
    # The order's first timeline entry, written with it (workflows.order.RECORD_WITH_FIRST_ENTRY).
    first_entry: StatusChangeInput | None = None


class ReviewInput(BaseModel):
    order_id: str
    request: OrderRequest


class RecordChangeInput(BaseModel):
    """An accepted change of the order: the order as it now stands, written over the record's lines,
    address, total and revision. Written once per revision; an older revision never overwrites a newer."""

    state: OrderState
