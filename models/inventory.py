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


class ReplaceLinesInput(BaseModel):
    """A change's stock work, done whole or not at all: give back what `release` holds, hold `reserve`.

    Every reservation in `reserve` is keyed by the change's own round (domain.changes.change_round),
    which makes the step idempotent: asked again, it answers as it did the first time.
    """

    order_id: str
    round: int
    release: list[LineKey] = []
    reserve: list[ReserveLineInput] = []


class ReplaceLinesResult(BaseModel):
    # One per line reserved; when any line is short, none holds anything and nothing was released.
    lines: list[ReserveLineResult] = []

    @property
    def short(self) -> bool:
        return any(line.shortage for line in self.lines)
