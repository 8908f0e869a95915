"""Reorder suggestions: how much of a SKU to buy for a warehouse, from its forecast and its stock.

The reorder point covers the demand forecast over the supplier's lead time plus a safety stock for a
95% cycle service level: the 95th percentile of the lead-time forecast error, taken (as a normal
quantile, mean + 1.645 standard deviations) from the backtest errors summed over every run of
lead-time days. What is available and already on order counts against it; a shortfall is rounded up
to the minimum order quantity and then to whole packs.

A SKU's demand is shared among warehouses by where its orders were served from; a warehouse takes
its share of the lead-time demand and √share of the safety stock (independent demand split in
parts has a spread that grows with the square root of the part).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from forecast.result import SkuForecast

SERVICE_LEVEL = 0.95
Z_95 = 1.6448536269514722
DEFAULT_LEAD_TIME_DAYS = 7


@dataclass(frozen=True)
class PurchaseTerms:
    lead_time_days: int = DEFAULT_LEAD_TIME_DAYS
    min_order_quantity: int = 1
    pack_size: int = 1


@dataclass(frozen=True)
class WarehousePosition:
    warehouse: str
    on_hand: int
    available: int
    on_order: int
    # This warehouse's part of the SKU's demand, 0..1 (warehouse_shares).
    share: float


@dataclass(frozen=True)
class Suggestion:
    sku: str
    warehouse: str
    quantity: int
    reorder_point: int
    on_hand: int
    available: int
    on_order: int
    lead_time_days: int
    model: str


def lead_time_demand(forecast: SkuForecast, days: int) -> float:
    """Forecast units over the next `days` days; past the horizon, at the horizon's average rate."""
    means = [point.mean for point in forecast.points]
    if days <= len(means):
        return float(sum(means[:days]))
    return float(sum(means)) * days / len(means)


def lead_time_errors(backtest_errors: Sequence[Sequence[float]], days: int) -> np.ndarray:
    """Backtest errors summed over every run of `days` consecutive days in each cut."""
    sums: list[float] = []
    for row in backtest_errors:
        errors = np.asarray(row, dtype=float)
        if days <= len(errors):
            window = np.convolve(errors, np.ones(days), mode="valid")
            sums.extend(float(value) for value in window)
        else:
            sums.append(float(errors.sum()) * days / len(errors))
    return np.asarray(sums, dtype=float)


def safety_stock(forecast: SkuForecast, days: int) -> float:
    """Units held beyond the forecast so that lead-time demand is covered in 95% of cycles."""
    errors = lead_time_errors(forecast.backtest_errors, days)
    if len(errors) < 2:
        return 0.0
    return max(0.0, float(errors.mean()) + Z_95 * float(errors.std(ddof=1)))


def reorder_point(forecast: SkuForecast, terms: PurchaseTerms, share: float = 1.0) -> int:
    days = terms.lead_time_days
    level = share * lead_time_demand(forecast, days) + math.sqrt(share) * safety_stock(forecast, days)
    return math.ceil(level - 1e-9)


def order_quantity(shortfall: float, terms: PurchaseTerms) -> int:
    """The shortfall rounded up to whole units, at least the minimum order, in whole packs; 0 when none."""
    if shortfall <= 0:
        return 0
    quantity = max(math.ceil(shortfall - 1e-9), terms.min_order_quantity)
    return math.ceil(quantity / terms.pack_size) * terms.pack_size


def warehouse_shares(served: Mapping[str, float], warehouses: Sequence[str]) -> dict[str, float]:
    """Each warehouse's part of demand, by units served from it; with no record, all to the first one."""
    total = sum(max(0.0, served.get(code, 0.0)) for code in warehouses)
    if total <= 0:
        return {code: (1.0 if i == 0 else 0.0) for i, code in enumerate(warehouses)}
    return {code: max(0.0, served.get(code, 0.0)) / total for code in warehouses}


def suggest(forecast: SkuForecast, terms: PurchaseTerms, positions: Sequence[WarehousePosition]) -> list[Suggestion]:
    """One suggestion per warehouse whose available and on-order stock falls short of its reorder point."""
    suggestions = []
    for position in positions:
        if position.share <= 0:
            continue
        point = reorder_point(forecast, terms, position.share)
        quantity = order_quantity(point - position.available - position.on_order, terms)
        if quantity > 0:
            suggestions.append(
                Suggestion(
                    sku=forecast.sku,
                    warehouse=position.warehouse,
                    quantity=quantity,
                    reorder_point=point,
                    on_hand=position.on_hand,
                    available=position.available,
                    on_order=position.on_order,
                    lead_time_days=terms.lead_time_days,
                    model=forecast.model,
                )
            )
    return suggestions
