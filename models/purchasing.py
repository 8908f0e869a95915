"""Contracts of the replenishment workflow: shortages reported by orders, stock received from suppliers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class ShortageReport(BaseModel):
    """An order that is waiting for stock of one SKU (signal to the replenishment workflow)."""

    order_id: str
    quantity: int


class StockReceived(BaseModel):
    receipt_id: str
    warehouse: str
    quantity: int


class Withdrawal(BaseModel):
    """An order no longer waits (cancelled, or its deadline passed)."""

    order_id: str


class WaitingOrder(BaseModel):
    order_id: str
    quantity: int
    since: datetime


class ReplenishmentInput(BaseModel):
    sku: str
    # State carried over continue-as-new.
    waiting: list[WaitingOrder] = []
    # The run continues as new once its history is this long (or the server suggests it).
    max_history_events: int = 2_000


class ReportShortageInput(BaseModel):
    sku: str
    order_id: str
    quantity: int


class ShortageRecordInput(BaseModel):
    sku: str
    order_id: str
    quantity: int
    since: datetime


class ShortageResolvedInput(BaseModel):
    sku: str
    order_ids: list[str]


class Shortage(BaseModel):
    sku: str
    outstanding_quantity: int
    order_ids: list[str]
    since: datetime


class ShortageList(BaseModel):
    items: list[Shortage]
