"""A batch of orders for one drill: the stock it starts from, what each client sends, what must become of it.

Most orders ship from plentiful stock. Some wait for a SKU that is out of stock until purchasing's
delivery arrives mid-batch (backorder, compensation, allocation again); some will not wait for a
SKU that is gone and are cancelled, their other line released and their draft booking cancelled;
and some are cancelled by the client soon after being placed, which undoes whatever was done by then
unless the order shipped first. The mix is fixed by the order's number, the quantities and the
moment of a client's cancellation by a seeded random generator, so a drill is the same each run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

EAST, WEST = "WH-EAST", "WH-WEST"
PLENTY = ("DRILL-MUG", "DRILL-TEE")
# None until purchasing's delivery arrives mid-batch.
SCARCE = "DRILL-CHAIR"
# None, and none coming.
GONE = "DRILL-LAMP"
# East holds only a few of the plentiful SKUs, so that lines are split across warehouses.
EAST_UNITS = 12
MAX_QUANTITY = 3


class Kind(StrEnum):
    SHIP = "ship"
    BACKORDER = "backorder"
    SHORTAGE = "shortage"
    CANCEL = "cancel"


# What a client may see at the end, by kind. A client's cancellation races the order: it is refused
# once the goods have left, and then the order is delivered.
EXPECTED: dict[Kind, frozenset[str]] = {
    Kind.SHIP: frozenset({"delivered"}),
    Kind.BACKORDER: frozenset({"delivered"}),
    Kind.SHORTAGE: frozenset({"cancelled"}),
    Kind.CANCEL: frozenset({"cancelled", "delivered"}),
}
# Of every ten orders: six ship, two wait for stock, one is cancelled for a shortage, one by its client.
MIX = (Kind.SHIP,) * 6 + (Kind.BACKORDER,) * 2 + (Kind.SHORTAGE, Kind.CANCEL)


@dataclass(frozen=True)
class PlannedOrder:
    number: int
    # The client's Idempotency-Key: the same on every attempt to place this order.
    key: str
    kind: Kind
    body: dict[str, Any]
    # Seconds after the order was accepted at which its client cancels it.
    cancel_after: float | None = None

    @property
    def customer_id(self) -> str:
        return str(self.body["customer"]["id"])

    @property
    def expected(self) -> frozenset[str]:
        return EXPECTED[self.kind]

    def units(self, sku: str) -> int:
        return sum(line["quantity"] for line in self.body["lines"] if line["sku"] == sku)


@dataclass(frozen=True)
class Batch:
    name: str
    orders: list[PlannedOrder]
    # Units on hand at the start, by (sku, warehouse).
    stock: dict[tuple[str, str], int]
    # Orders placed per second.
    rate: float

    def demand(self, sku: str) -> int:
        return sum(order.units(sku) for order in self.orders if order.kind == Kind.BACKORDER)

    @property
    def receipt(self) -> tuple[str, str, int]:
        """Purchasing's delivery of the scarce SKU: (sku, warehouse, units), enough for every order waiting."""
        return SCARCE, WEST, self.demand(SCARCE)

    @property
    def seconds_to_place(self) -> float:
        return len(self.orders) / self.rate


def plan_batch(name: str, size: int, *, rate: float, seed: int = 7) -> Batch:
    draw = random.Random(f"{name}-{seed}")
    orders = [_order(name, number, MIX[number % len(MIX)], draw) for number in range(size)]
    plenty = size * 2 * MAX_QUANTITY
    stock = {(sku, EAST): EAST_UNITS for sku in PLENTY} | {(sku, WEST): plenty for sku in PLENTY}
    stock |= {(SCARCE, WEST): 0, (GONE, WEST): 0}
    return Batch(name=name, orders=orders, stock=stock, rate=rate)


def _order(name: str, number: int, kind: Kind, draw: random.Random) -> PlannedOrder:
    lines = [_line(sku, draw) for sku in draw.sample(PLENTY, draw.randint(1, 2))]
    if kind == Kind.BACKORDER:
        lines.append(_line(SCARCE, draw))
    if kind == Kind.SHORTAGE:
        lines.append(_line(GONE, draw))
    customer = f"{name}-{number:03d}"
    body = {
        "customer": {
            "id": customer,
            "name": "Drill Customer",
            "email": f"{customer}@example.com",
            "phone": "+31201234567",
        },
        "lines": lines,
        "shipping_address": {
            "name": "Drill Customer",
            "line1": "Damrak 1",
            "city": "Amsterdam",
            "postal_code": "1012LG",
            "country": "NL",
        },
        "backorder_policy": "cancel" if kind == Kind.SHORTAGE else "wait",
    }
    cancel_after = round(draw.uniform(0.0, 3.0), 2) if kind == Kind.CANCEL else None
    return PlannedOrder(number, f"{name}-order-{number:03d}", kind, body, cancel_after)


def _line(sku: str, draw: random.Random) -> dict[str, Any]:
    return {
        "sku": sku,
        "quantity": draw.randint(1, MAX_QUANTITY),
        "unit_price": f"{draw.randint(5, 40)}.{draw.randint(0, 99):02d}",
    }
