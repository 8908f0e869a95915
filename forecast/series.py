"""Daily demand per SKU, built from order lines.

A line counts on the day its order was placed, whatever became of it afterwards: demand that had
to wait for stock (a backorder) was still asked for on that day.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class DemandLine:
    sku: str
    day: date
    quantity: int


@dataclass(frozen=True)
class DailySeries:
    """Units asked for per day, from `start` through the day before the forecast is made, gaps as zeros."""

    sku: str
    start: date
    quantities: tuple[float, ...]

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(len(self.quantities))]


def daily_series(lines: Iterable[DemandLine], first_day: date, last_day: date) -> dict[str, DailySeries]:
    """Each SKU's series from its first demanded day (not before `first_day`) through `last_day` inclusive.

    Lines outside the window are ignored; a SKU with no demand in it has no series.
    """
    by_sku: dict[str, dict[date, float]] = {}
    for line in lines:
        if first_day <= line.day <= last_day and line.quantity > 0:
            days = by_sku.setdefault(line.sku, {})
            days[line.day] = days.get(line.day, 0.0) + line.quantity
    result = {}
    for sku, days in sorted(by_sku.items()):
        start = min(days)
        length = (last_day - start).days + 1
        quantities = tuple(days.get(start + timedelta(days=i), 0.0) for i in range(length))
        result[sku] = DailySeries(sku=sku, start=start, quantities=quantities)
    return result
