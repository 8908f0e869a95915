"""Synthetic daily demand with known properties, the same on every run: the forecast's proving ground.

Smooth SKUs have a level, a trend, a weekly pattern (busier towards the weekend, each SKU by its own
amount), promotions of a few days that lift demand by half to two and a half times, and
over-dispersed noise (gamma-Poisson). Intermittent SKUs sell on a fraction of days only, a few
units at a time, so the 95% need over a lead time is known exactly enough by simulation.

`python -m scripts.demand_generator` prints the backtest table of the README: each SKU's pattern,
the model the forecast chose, its MASE on the rolling backtest, and on the 28 days held out after
it, beside seasonal naive's on those same days; for intermittent SKUs the reorder point for a
seven-day lead time beside the true 95% need.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from forecast.engine import HORIZON, SEASON, forecast_sku, mase
from forecast.reorder import PurchaseTerms, reorder_point
from forecast.series import DailySeries

SEED = 20261201
END = date(2026, 11, 30)
# Busier towards the weekend (Monday first); each SKU scales this shape by its own amplitude.
WEEK_SHAPE = np.array([-0.25, -0.2, -0.1, 0.0, 0.15, 0.3, 0.1])


@dataclass(frozen=True)
class SyntheticSku:
    sku: str
    kind: str  # "smooth" or "intermittent"
    start: date
    quantities: tuple[int, ...]
    # Intermittent SKUs: the chance of demand on a day, and the mean of (size - 1), size being 1 + Poisson.
    probability: float = 0.0
    extra_size: float = 0.0

    def series(self, days: int | None = None) -> DailySeries:
        """The first `days` days (all when None) as the forecast reads them."""
        quantities = self.quantities if days is None else self.quantities[:days]
        return DailySeries(sku=self.sku, start=self.start, quantities=tuple(float(q) for q in quantities))


def generate(days: int = 365, smooth: int = 20, intermittent: int = 10, seed: int = SEED) -> list[SyntheticSku]:
    """`smooth` + `intermittent` SKUs with `days` days of demand ending on END."""
    rng = np.random.default_rng(seed)
    start = END - timedelta(days=days - 1)
    weekday = np.array([(start + timedelta(days=t)).weekday() for t in range(days)])
    skus = []
    for i in range(smooth):
        base = rng.uniform(10, 60)
        slope = base * rng.uniform(-0.0008, 0.002)
        season = 1 + rng.uniform(0.3, 1.2) * WEEK_SHAPE[weekday]
        promotion = np.ones(days)
        day = int(rng.integers(10, 40))
        while day < days:
            promotion[day : day + int(rng.integers(3, 6))] = rng.uniform(1.5, 2.5)
            day += int(rng.integers(35, 70))
        rate = np.maximum(0.5, (base + slope * np.arange(days)) * season * promotion)
        # Gamma-Poisson: variance above the mean, as real demand has.
        quantities = rng.poisson(rng.gamma(shape=25.0, scale=rate / 25.0))
        skus.append(SyntheticSku(f"SMOOTH-{i + 1:02d}", "smooth", start, tuple(int(q) for q in quantities)))
    for i in range(intermittent):
        probability = rng.uniform(0.08, 0.35)
        extra = rng.uniform(0.5, 4.0)
        occurs = rng.random(days) < probability
        quantities = np.where(occurs, 1 + rng.poisson(extra, days), 0)
        skus.append(
            SyntheticSku(
                f"SPARSE-{i + 1:02d}",
                "intermittent",
                start,
                tuple(int(q) for q in quantities),
                probability=probability,
                extra_size=extra,
            )
        )
    return skus


def true_lead_time_need(sku: SyntheticSku, days: int, level: float = 0.95, samples: int = 200_000) -> float:
    """The `level` quantile of an intermittent SKU's demand over `days` days, by simulation of its process."""
    rng = np.random.default_rng(SEED + 1)
    occurs = rng.random((samples, days)) < sku.probability
    sizes = 1 + rng.poisson(sku.extra_size, (samples, days))
    return float(np.quantile((occurs * sizes).sum(axis=1), level))


@dataclass(frozen=True)
class HoldoutResult:
    sku: str
    pattern: str
    model: str
    backtest_mase: float
    holdout_mase: float
    naive_holdout_mase: float
    reorder_point: int
    true_need: float | None


def holdout(sku: SyntheticSku, lead_time_days: int = 7) -> HoldoutResult:
    """Forecast from all but the last 28 days and score the forecast on those 28."""
    cut = len(sku.quantities) - HORIZON
    train = np.asarray(sku.quantities[:cut], dtype=float)
    actual = np.asarray(sku.quantities[cut:], dtype=float)
    result = forecast_sku(sku.series(cut))
    if result is None:
        raise ValueError(f"{sku.sku}: too little history")
    predicted = np.array([point.mean for point in result.points])
    naive = np.resize(train[-SEASON:], HORIZON)
    return HoldoutResult(
        sku=sku.sku,
        pattern=result.pattern.value,
        model=result.model,
        backtest_mase=result.mase,
        holdout_mase=mase(actual, predicted, train),
        naive_holdout_mase=mase(actual, naive, train),
        reorder_point=reorder_point(result, PurchaseTerms(lead_time_days=lead_time_days)),
        true_need=true_lead_time_need(sku, lead_time_days) if sku.kind == "intermittent" else None,
    )


def table(results: list[HoldoutResult]) -> str:
    lines = [
        "| SKU | pattern | chosen model | backtest MASE | hold-out MASE | seasonal naive hold-out MASE"
        " | reorder point (7 days) | true 95% need |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        need = f"{r.true_need:.0f}" if r.true_need is not None else ""
        point = str(r.reorder_point) if r.true_need is not None else ""
        lines.append(
            f"| {r.sku} | {r.pattern} | {r.model} | {r.backtest_mase:.2f} | {r.holdout_mase:.2f}"
            f" | {r.naive_holdout_mase:.2f} | {point} | {need} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    results = [holdout(sku) for sku in generate(args.days)]
    print(table(results))
    smooth = [r for r in results if not r.pattern.endswith(("intermittent", "lumpy"))]
    print(f"\nsmooth SKUs with hold-out MASE < 1: {sum(r.holdout_mase < 1 for r in smooth)} of {len(smooth)}")


if __name__ == "__main__":
    main()
