"""Contracts of the replenishment workflow: shortages reported by orders, stock received from suppliers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from models.integrations import PurchasingNotice


class ShortageReport(BaseModel):
    """An order that is waiting for stock of one SKU (signal to the replenishment workflow)."""

    order_id: str
    quantity: int
    # The order's allocation round that found the SKU short. An order that sends it also tells the
    # run when it has allocated (Allocated), so the run keeps its place until then; None from orders
    # started before that, which the run forgets as it wakes them.
    round: int | None = None


class StockReceived(BaseModel):
    receipt_id: str
    warehouse: str
    quantity: int


class Withdrawal(BaseModel):
    """An order no longer waits (cancelled, or its deadline passed)."""

    order_id: str


class Allocated(BaseModel):
    """An order woken for stock has allocated it (or no longer needs this SKU): it no longer waits."""

    order_id: str


class WaitingOrder(BaseModel):
    order_id: str
    quantity: int
    # When the order first reported; kept through re-reports until it has allocated.
    since: datetime
    # The round of its last report (see ShortageReport.round).
    round: int | None = None
    # Set when the run woke the order: its units are set aside for it until it allocates, reports
    # again (it lost the stock: back to waiting, in its place) or withdraws.
    woken_at: datetime | None = None


class ReplenishmentInput(BaseModel):
    sku: str
    # State carried over continue-as-new.
    waiting: list[WaitingOrder] = []
    notices: list[PurchasingNotice] = []
    # The run continues as new once its history is this long (or the server suggests it).
    max_history_events: int = 2_000


class ReportShortageInput(BaseModel):
    sku: str
    order_id: str
    quantity: int
    round: int | None = None


class ShortageRecordInput(BaseModel):
    sku: str
    order_id: str
    quantity: int
    since: datetime
    # The Idempotency-Key of the notice to purchasing about this report; None leaves the notice fields alone.
    notice_key: str | None = None


class ShortageResolvedInput(BaseModel):
    sku: str
    order_ids: list[str]


class NoticeStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    # Purchasing did not answer, or answered 5xx: tried again later.
    FAILING = "failing"
    # Purchasing answered 4xx: not tried again.
    REFUSED = "refused"


class ShortageNotice(BaseModel):
    """Whether purchasing has been told of one order's shortage."""

    order_id: str
    status: NoticeStatus
    attempts: int
    last_error: str | None = None


class Shortage(BaseModel):
    sku: str
    outstanding_quantity: int
    order_ids: list[str]
    since: datetime
    # One per waiting order whose notice is tracked, in the order of order_ids.
    notices: list[ShortageNotice] = []


class ShortageList(BaseModel):
    items: list[Shortage]
