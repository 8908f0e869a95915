"""Bulk jobs: many orders approved, rejected, cancelled or imported by one durable workflow.

Three roles, three kinds of model: what callers send (`BulkActionRequest`, `BulkImportRequest`), what
the workflow carries and answers (`BulkJobInput`, `JobItem`, `BulkProgress`), and what the API answers
(`BulkJobAccepted`, `BulkJobView`). The API converts the workflow's answer at its boundary, so a change
to the view never changes a workflow payload.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from models.fields import PRINTABLE_ASCII, Reason
from models.order import OrderFilter, OrderId, OrderRequest, Strict

# The most items one job takes: orders to act on, or orders to import.
MAX_JOB_ITEMS = 1_000

# An imported order's reference in the caller's system; it is the order's idempotency key.
ExternalRef = Annotated[str, Field(min_length=1, max_length=255, pattern=PRINTABLE_ASCII)]


class BulkAction(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    CANCEL = "cancel"


class BulkJobKind(StrEnum):
    ACTIONS = "actions"
    IMPORT = "import"


class ErrorPolicy(StrEnum):
    # Validate everything first; start nothing if any order is bad.
    REJECT_ALL = "reject_all"
    # Start the good orders; the bad ones are recorded as refused with the reason.
    SKIP_INVALID = "skip_invalid"


class ItemOutcome(StrEnum):
    PENDING = "pending"
    DONE = "done"
    # The order (or the import's validation) said no; the reason says why. Never retried.
    REFUSED = "refused"
    # Still not done after the retries of transient errors; `POST /bulk/{job_id}/retry` tries again.
    FAILED = "failed"
    # Never tried: the job was cancelled first.
    CANCELLED = "cancelled"


class JobStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


# ---- What callers send. ----


# Exactly one of order_ids and filter, as the JSON schema says it.
_ONE_SELECTION: JsonDict = {
    "oneOf": [
        {"required": ["order_ids"], "properties": {"order_ids": {"type": "array"}, "filter": {"type": "null"}}},
        {"required": ["filter"], "properties": {"filter": {"type": "object"}, "order_ids": {"type": "null"}}},
    ]
}


class BulkActionRequest(Strict):
    """Approve, reject or cancel orders named by id, or every order a filter of GET /orders matches."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_SELECTION)

    action: BulkAction
    order_ids: Annotated[list[OrderId], Field(min_length=1, max_length=MAX_JOB_ITEMS)] | None = None
    filter: OrderFilter | None = None
    reason: Reason

    @model_validator(mode="after")
    def _one_selection(self) -> BulkActionRequest:
        if (self.order_ids is None) == (self.filter is None):
            raise ValueError("name the orders either by order_ids or by a filter, not both")
        return self


class ImportedOrder(OrderRequest):
    """An order body as for POST /orders, with the caller's reference for it."""

    external_ref: ExternalRef


class BulkImportRequest(Strict):
    """The JSON form of an import; each order is validated on its own, so one bad order is named by its row."""

    orders: Annotated[
        list[dict[str, Any]],
        Field(
            min_length=1,
            max_length=MAX_JOB_ITEMS,
            description="Each an order body as for POST /orders plus its `external_ref`, validated one by one: "
            "under reject_all an invalid order refuses the whole import (422, naming its row and field), under "
            "skip_invalid it is an item refused with the reason.",
        ),
    ]
    error_policy: ErrorPolicy = ErrorPolicy.REJECT_ALL


class RowProblem(BaseModel):
    """One problem of an import: the row (CSV: the file's line, the header being 1; JSON: the order's
    position in `orders`, from 1), the field (a CSV column, or the path of a JSON field) and why."""

    row: int
    field: str
    message: str


class RowsInvalid(BaseModel):
    """An import refused as a whole: one entry per problem."""

    detail: list[RowProblem]


# ---- What the API answers. ----


class BulkJobAccepted(BaseModel):
    job_id: str
    status: JobStatus


class BulkItemView(BaseModel):
    """One item of a job and its outcome."""

    ref: str = Field(description="The order id for an action; the external_ref for an import.")
    order_id: str | None = Field(default=None, description="The order acted on or placed; none before it is placed.")
    outcome: ItemOutcome = Field(
        description="pending, done, refused (the order said no; never retried), failed (retried on request), "
        "or cancelled (never tried: the job was cancelled first)."
    )
    reason: str | None = Field(default=None, description="Why the item was refused or failed.")


class BulkJobView(BaseModel):
    """A bulk job as it stands, with a page of its items."""

    job_id: str = Field(description="The job; its workflow is bulk-<job_id>.")
    action: str = Field(description="approve, reject, cancel, or import.")
    status: JobStatus = Field(
        description="running until every item has an outcome, then completed (failed counts the items that "
        "failed), or cancelled."
    )
    total: int = Field(description="How many items the job has.")
    done: int = Field(description="Items done.")
    refused: int = Field(description="Items the order (or the import's validation) refused, with the reason.")
    failed: int = Field(description="Items that still failed after their retries; POST /bulk/{job_id}/retry.")
    items: list[BulkItemView] = Field(description="A page of the items, in the job's order.")
    next_cursor: str | None = Field(default=None, description="Pass back as `cursor` for the next page.")


class RetryAccepted(BaseModel):
    job_id: str
    status: JobStatus
    retried: int = Field(description="How many failed items are tried again.")


# ---- What the workflow carries and answers. ----


class JobItem(BaseModel):
    """One item of a job as the workflow keeps it."""

    ref: str
    order_id: str | None = None
    # The order to place, for an import; dropped once it is placed or refused.
    order: OrderRequest | None = None
    outcome: ItemOutcome = ItemOutcome.PENDING
    reason: str | None = None


class BulkJobInput(BaseModel):
    """Input of the bulk job workflow; a run that continues as new hands the outcomes so far to the next."""

    job_id: str
    kind: BulkJobKind
    action: BulkAction | None = None
    reason: str | None = None
    # Who started the job ("operator", "admin", a client's key name); the orders' timelines name it.
    actor: str
    # The API client an import's orders belong to (None for staff).
    client_id: str | None = None
    items: list[JobItem]
    concurrency: int = 20
    # Past this many events in its history, the run hands over to a new one.
    max_history_events: int = 4_000
    created_at: datetime
    # Set by the workflow when it continues as new.
    cancelled: bool = False


class ItemInput(BaseModel):
    """One item handed to an activity."""

    job_id: str
    ref: str
    action: BulkAction | None = None
    order_id: str | None = None
    order: OrderRequest | None = None
    reason: str | None = None
    actor: str
    client_id: str | None = None


class ItemResult(BaseModel):
    order_id: str


class ProgressPage(BaseModel):
    """The slice of items a progress query asks for."""

    offset: int = 0
    limit: int = 100


class BulkProgress(BaseModel):
    """The answer of the bulk job's progress query, and the workflow's result."""

    job_id: str
    kind: BulkJobKind
    action: BulkAction | None = None
    client_id: str | None = None
    status: JobStatus
    total: int
    done: int
    refused: int
    failed: int
    offset: int = 0
    items: list[JobItem]


class RetryCommand(BaseModel):
    actor: str = "operator"


class CancelJobCommand(BaseModel):
    actor: str = "operator"
