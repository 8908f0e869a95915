"""The forecast's proof of accuracy on synthetic demand whose truth is known (scripts/demand_generator.py).

Each SKU is forecast from all but its last 28 days, which are held out and never seen by the model
choice; the rules are pure functions, so no service is needed.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from forecast.classify import Pattern, classify
from forecast.engine import HORIZON, forecast_sku
from forecast.reorder import PurchaseTerms, WarehousePosition, order_quantity, suggest, warehouse_shares
from forecast.series import DailySeries, DemandLine, daily_series
from scripts.demand_generator import HoldoutResult, generate, holdout

# Suggestions on intermittent SKUs may exceed the true 95% need over the lead time by at most this
# fraction of it, or by this many units where that is more (a need of a few units rounds coarsely).
EXCESS_FRACTION = 0.25
EXCESS_UNITS = 2


@pytest.fixture(scope="module")
def results() -> list[HoldoutResult]:
    return [holdout(sku) for sku in generate()]


def test_the_chosen_model_beats_seasonal_naive_on_at_least_80_percent_of_smooth_series(
    results: list[HoldoutResult],
) -> None:
    smooth = [r for r in results if r.sku.startswith("SMOOTH")]
    assert len(smooth) == 20
    assert all(not Pattern(r.pattern).intermittent for r in smooth)
    beaten = [r.sku for r in smooth if r.holdout_mase < 1]
    assert len(beaten) >= 0.8 * len(smooth), f"MASE < 1 on only {beaten}"


def test_intermittent_suggestions_do_not_exceed_the_95_percent_need_by_more_than_the_bound(
    results: list[HoldoutResult],
) -> None:
    sparse = [r for r in results if r.sku.startswith("SPARSE")]
    assert len(sparse) == 10
    assert all(Pattern(r.pattern).intermittent for r in sparse)
    for r in sparse:
        assert r.true_need is not None
        allowed = r.true_need + max(EXCESS_FRACTION * r.true_need, EXCESS_UNITS)
        # With nothing in stock and nothing on order, the suggestion is the reorder point itself.
        terms = PurchaseTerms(lead_time_days=7)
        assert r.reorder_point <= allowed, f"{r.sku}: reorder point {r.reorder_point} above {allowed:.1f}"
        assert order_quantity(r.reorder_point, terms) <= allowed


def test_a_sku_with_too_little_history_gets_no_forecast() -> None:
    assert forecast_sku(DailySeries("NEW", date(2026, 11, 1), (3.0,) * 30)) is None


def test_the_forecast_has_28_days_of_ordered_intervals_after_the_history() -> None:
    sku = generate(days=120, smooth=1, intermittent=0)[0]
    result = forecast_sku(sku.series())
    assert result is not None
    assert len(result.points) == HORIZON
    assert result.points[0].day == date(2026, 12, 1)
    for p in result.points:
        assert 0 <= p.lo95 <= p.lo80 <= p.mean <= p.hi80 <= p.hi95


def test_daily_series_counts_every_line_on_its_order_day_and_fills_gaps_with_zeros() -> None:
    lines = [
        DemandLine("A", date(2026, 11, 2), 2),
        DemandLine("A", date(2026, 11, 2), 3),
        DemandLine("A", date(2026, 11, 5), 1),
        DemandLine("B", date(2026, 10, 1), 9),  # before the window
    ]
    series = daily_series(lines, date(2026, 11, 1), date(2026, 11, 6))
    assert list(series) == ["A"]
    assert series["A"].start == date(2026, 11, 2)
    assert series["A"].quantities == (5.0, 0.0, 0.0, 1.0, 0.0)


def test_classification_by_adi_and_cv2() -> None:
    assert classify([5, 6, 5, 4, 6, 5, 5]).pattern == Pattern.SMOOTH
    assert classify([1, 20, 2, 30, 1, 25, 3]).pattern == Pattern.ERRATIC
    assert classify([0, 0, 3, 0, 0, 3, 0, 0, 3]).pattern == Pattern.INTERMITTENT
    assert classify([0, 0, 1, 0, 0, 30, 0, 0, 2]).pattern == Pattern.LUMPY
    assert classify([0, 0, 3, 0, 0, 3]).adi == 3.0


def test_a_suggestion_brings_stock_up_to_the_reorder_point_in_whole_packs_of_at_least_the_minimum() -> None:
    sku = generate(days=200, smooth=1, intermittent=0)[0]
    result = forecast_sku(sku.series())
    assert result is not None
    terms = PurchaseTerms(lead_time_days=7, min_order_quantity=50, pack_size=12)
    shares = warehouse_shares({"WH-A": 30.0, "WH-B": 10.0}, ["WH-A", "WH-B", "WH-C"])
    assert shares == {"WH-A": 0.75, "WH-B": 0.25, "WH-C": 0.0}
    positions = [
        WarehousePosition("WH-A", on_hand=12, available=10, on_order=5, share=shares["WH-A"]),
        WarehousePosition("WH-B", on_hand=10_000, available=10_000, on_order=0, share=shares["WH-B"]),
        WarehousePosition("WH-C", on_hand=0, available=0, on_order=0, share=shares["WH-C"]),
    ]
    suggestions = suggest(result, terms, positions)
    # WH-B has plenty, WH-C serves none of the demand.
    assert [s.warehouse for s in suggestions] == ["WH-A"]
    (a,) = suggestions
    lead_time_mean = 0.75 * sum(p.mean for p in result.points[:7])
    assert a.reorder_point >= lead_time_mean
    # The shortfall (reorder point less 10 available and 5 on order), at least 50, in the fewest packs of 12.
    need = max(50, a.reorder_point - 10 - 5)
    assert a.quantity % 12 == 0
    assert a.quantity - 12 < need <= a.quantity


def test_order_quantity_rounds_up_to_the_minimum_and_to_packs() -> None:
    terms = PurchaseTerms(min_order_quantity=10, pack_size=6)
    assert order_quantity(0, terms) == 0
    assert order_quantity(-4, terms) == 0
    assert order_quantity(1, terms) == 12
    assert order_quantity(13, terms) == 18
    assert order_quantity(np.float64(12.0), terms) == 12
