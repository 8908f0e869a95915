"""Contracts of the stock steps: reservations keyed by order, line and allocation round."""

from __future__ import annotations

from pydantic import BaseModel

from models.order import Allocation


class LineKey(BaseModel):
    """Identifies one line's reservation in one allocation round; the idempotency key of every stock step."""

    order_id: str
    line_no: int
    attempt: int


class ReserveLineInput(BaseModel):
    key: LineKey
    sku: str
    quantity: int


class ReserveLineResult(BaseModel):
    line_no: int
    sku: str
    allocations: list[Allocation] = []
    # Units that could not be reserved. A line is reserved whole or not at all,
    # so a shortage means nothing of this line is held.
    shortage: int = 0


class CommitOrderInput(BaseModel):
    order_id: str


class ReleaseOrderInput(BaseModel):
    order_id: str


class WarehouseStock(BaseModel):
    warehouse: str
    on_hand: int
    reserved: int
    available: int


class StockLevel(BaseModel):
    sku: str
    on_hand: int
    reserved: int
    available: int
    warehouses: list[WarehouseStock]
