"""What a forecast of one SKU holds: plain data, readable without the fitting library loaded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from forecast.classify import Pattern


@dataclass(frozen=True)
class ForecastPoint:
    day: date
    mean: float
    lo80: float
    hi80: float
    lo95: float
    hi95: float


@dataclass(frozen=True)
class SkuForecast:
    sku: str
    pattern: Pattern
    adi: float
    cv2: float
    model: str
    # Backtest MASE of the chosen model, and of every candidate (the baseline included).
    mase: float
    candidates: dict[str, float]
    backtest_windows: int
    points: tuple[ForecastPoint, ...]
    # Actual minus forecast of the chosen model, one row of HORIZON days per backtest cut.
    backtest_errors: tuple[tuple[float, ...], ...]
