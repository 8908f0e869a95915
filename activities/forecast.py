"""The forecast run's steps: which SKUs had demand, and per chunk of SKUs, forecasts and reorder suggestions
written; and the purchase request sent for an accepted suggestion.

The activities only read, call the pure rules of the `forecast` package and write. A chunk fits its
SKUs one at a time in a worker thread (the fitting is CPU work that would stall the event loop) and
heartbeats after each with how far it got, so a chunk retried after a worker was lost goes on from
there instead of starting over.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.http import call_provider, idempotency_key
from db import forecast as store
from forecast.reorder import WarehousePosition, suggest, warehouse_shares
from forecast.result import SkuForecast
from forecast.series import DailySeries, daily_series
from models.forecast import (
    DemandSkus,
    DemandSkusInput,
    ForecastChunkInput,
    ForecastChunkResult,
    PurchaseRequestInput,
)
from settings import Settings

PURCHASE_REQUEST_REFUSED = "PurchaseRequestRefused"


def fit(history: DailySeries) -> SkuForecast | None:
    """The SKU's forecast (forecast.engine), run in a worker thread."""
    # Imported on first use: the fitting library takes over a second to load, which would delay every
    # start of the worker (and its metrics endpoint) for a run that comes once a day.
    from forecast.engine import forecast_sku

    return forecast_sku(history)


def history_window(as_of: date, history_days: int) -> tuple[date, date]:
    """The first and last day of demand a run on `as_of` reads: the `history_days` days before it."""
    return as_of - timedelta(days=history_days), as_of - timedelta(days=1)


class ForecastActivities:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, settings: Settings
    ) -> None:
        self._sessionmaker = sessionmaker
        self._http = http
        self._settings = settings

    @activity.defn
    async def demand_skus(self, request: DemandSkusInput) -> DemandSkus:
        first_day, last_day = history_window(request.as_of, request.history_days)
        async with self._sessionmaker() as session:
            return DemandSkus(skus=await store.demand_skus(session, first_day, last_day))

    @activity.defn
    async def forecast_chunk(self, request: ForecastChunkInput) -> ForecastChunkResult:
        """Forecast each SKU of the chunk and write its forecast and suggestions, one transaction per SKU."""
        done, result = 0, ForecastChunkResult()
        details = activity.info().heartbeat_details
        if len(details) == 2:
            done, result = int(details[0]), ForecastChunkResult.model_validate(details[1])
        first_day, last_day = history_window(request.as_of, request.history_days)
        async with self._sessionmaker() as session:
            lines = await store.demand_lines(session, request.skus, first_day, last_day)
            terms = await store.purchase_terms(session, request.skus)
        series = daily_series(lines, first_day, last_day)
        for index in range(done, len(request.skus)):
            sku = request.skus[index]
            history = series.get(sku)
            forecast = await asyncio.to_thread(fit, history) if history is not None else None
            if forecast is None or history is None:
                result.too_short.append(sku)
            else:
                now = datetime.now(UTC)
                async with self._sessionmaker.begin() as session:
                    positions = await store.stock_positions(session, sku, first_day, self._settings.warehouse_priority)
                    shares = warehouse_shares(
                        {p.warehouse: float(p.served) for p in positions}, [p.warehouse for p in positions]
                    )
                    suggestions = suggest(
                        forecast,
                        terms[sku],
                        [
                            WarehousePosition(p.warehouse, p.on_hand, p.available, p.on_order, shares[p.warehouse])
                            for p in positions
                        ],
                    )
                    await store.save_forecast(session, request.run_id, now, forecast, history)
                    await store.save_suggestions(session, request.run_id, now, sku, suggestions)
                result.forecasts += 1
                result.suggestions += len(suggestions)
            activity.heartbeat(index + 1, result.model_dump(mode="json"))
        return result

    @activity.defn
    async def send_purchase_request(self, request: PurchaseRequestInput) -> None:
        """Post the purchase request to purchasing, signed; the key makes every retry the same request."""
        await call_provider(
            self._http,
            "POST",
            f"{self._settings.purchasing_url}/purchase-requests",
            idempotency_key=idempotency_key(request.suggestion_id, "purchasing", "request"),
            json=request.model_dump(mode="json"),
            refusal=PURCHASE_REQUEST_REFUSED,
            signing_secret=self._settings.purchasing_webhook_secret,
        )
