"""One SKU's forecast: candidate models fitted with statsforecast, the one with the lowest MASE on a
rolling backtest kept, and the next 28 days forecast with 80% and 95% intervals.

The backtest cuts the history at up to three origins, 28 days apart, fits every candidate on what
came before each cut and forecasts the 28 days after it. A model's MASE is its mean absolute error
there divided by the in-sample error of the seasonal naive forecast (last week's same day) up to the
cut, averaged over the cuts; seasonal naive itself is always a candidate, so a model is kept only
when it did better than repeating last week. The intervals are the chosen model's backtest errors
(actual minus forecast, pooled over the cuts) added to its forecast: empirical quantiles, which
suit the skewed errors of intermittent demand where a normal band would not. Those same errors
give the reorder rule its safety stock (forecast.reorder).
"""

from __future__ import annotations

import warnings
from datetime import timedelta

import numpy as np
import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import ADIDA, TSB, AutoETS, CrostonSBA, SeasonalNaive

from forecast.classify import Pattern, classify
from forecast.result import ForecastPoint, SkuForecast
from forecast.series import DailySeries

HORIZON = 28
SEASON = 7
MAX_BACKTEST_WINDOWS = 3
# The least history a backtest cut leaves to fit on: two weeks, so that weekly seasonality can be seen.
MIN_TRAIN_DAYS = 2 * SEASON
MIN_HISTORY_DAYS = MIN_TRAIN_DAYS + HORIZON
BASELINE = "SeasonalNaive"


def candidate_models(pattern: Pattern) -> list[object]:
    """The models tried for a demand pattern; seasonal naive, the baseline, last so that a tie keeps the other."""
    if pattern.intermittent:
        models: list[object] = [CrostonSBA(), TSB(alpha_d=0.1, alpha_p=0.1), ADIDA()]
    else:
        models = [AutoETS(season_length=SEASON)]
    return [*models, SeasonalNaive(season_length=SEASON)]


def backtest_windows(length: int) -> int:
    """How many 28-day cuts a history of `length` days allows (0: too short to forecast)."""
    return max(0, min(MAX_BACKTEST_WINDOWS, (length - MIN_TRAIN_DAYS) // HORIZON))


def seasonal_naive_scale(history: np.ndarray) -> float:
    """Mean absolute error of the in-sample seasonal naive forecast: the MASE denominator."""
    if len(history) > SEASON:
        scale = float(np.mean(np.abs(history[SEASON:] - history[:-SEASON])))
        if scale > 0:
            return scale
    # A history without variation (or too short to have a season): scale by its level, or by one unit.
    level = float(np.mean(np.abs(history))) if len(history) else 0.0
    return level if level > 0 else 1.0


def mase(actual: np.ndarray, predicted: np.ndarray, history: np.ndarray) -> float:
    return float(np.mean(np.abs(actual - predicted))) / seasonal_naive_scale(history)


def forecast_sku(series: DailySeries) -> SkuForecast | None:
    """The SKU's forecast for the HORIZON days after its series ends; None when its history is too short."""
    y = np.asarray(series.quantities, dtype=float)
    windows = backtest_windows(len(y))
    if windows == 0 or not y.any():
        return None
    profile = classify(y)
    frame = pd.DataFrame(
        {"unique_id": series.sku, "ds": pd.date_range(pd.Timestamp(series.start), periods=len(y), freq="D"), "y": y}
    )
    engine = StatsForecast(models=candidate_models(profile.pattern), freq="D", n_jobs=1)
    with warnings.catch_warnings():
        # Some candidates warn on short or constant histories; their backtest error decides, not the warning.
        warnings.simplefilter("ignore")
        backtest = engine.cross_validation(h=HORIZON, df=frame, n_windows=windows, step_size=HORIZON)
        future = engine.forecast(h=HORIZON, df=frame)
    names = [column for column in future.columns if column not in ("unique_id", "ds")]

    scores: dict[str, list[float]] = {name: [] for name in names}
    errors: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for cutoff, window in backtest.groupby("cutoff", sort=True):
        history = y[: (pd.Timestamp(cutoff) - pd.Timestamp(series.start)).days + 1]
        actual = window["y"].to_numpy(dtype=float)
        for name in names:
            predicted = np.nan_to_num(window[name].to_numpy(dtype=float))
            scores[name].append(mase(actual, predicted, history))
            errors[name].append(actual - predicted)
    candidates = {name: float(np.mean(values)) for name, values in scores.items()}
    chosen = min(names, key=lambda name: candidates[name])

    mean = np.clip(np.nan_to_num(future[chosen].to_numpy(dtype=float)), 0, None)
    pooled = np.concatenate(errors[chosen])
    q025, q10, q90, q975 = np.quantile(pooled, [0.025, 0.10, 0.90, 0.975])
    last_day = series.start + timedelta(days=len(y) - 1)
    points = tuple(
        ForecastPoint(
            day=last_day + timedelta(days=step + 1),
            mean=float(m),
            lo80=float(min(m, max(0.0, m + q10))),
            hi80=float(max(m, m + q90)),
            lo95=float(min(m, max(0.0, m + q025))),
            hi95=float(max(m, m + q975)),
        )
        for step, m in enumerate(mean)
    )
    return SkuForecast(
        sku=series.sku,
        pattern=profile.pattern,
        adi=profile.adi,
        cv2=profile.cv2,
        model=chosen,
        mase=candidates[chosen],
        candidates=candidates,
        backtest_windows=windows,
        points=points,
        backtest_errors=tuple(tuple(float(e) for e in row) for row in errors[chosen]),
    )
