"""The demand forecast run and the purchase request of an accepted suggestion.

`DemandForecastWorkflow` is what the `demand-forecast` schedule starts: it finds the SKUs with demand
in the history window, then forecasts them in chunks, each chunk an activity that heartbeats, so the
Temporal UI shows how far a run got and a lost worker costs one chunk at most.

`PurchaseRequestWorkflow` sends one accepted suggestion to purchasing; its id is the suggestion's, so
accepting twice starts it once, and the call's idempotency key makes its retries one request.
"""

from __future__ import annotations

from datetime import date, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.forecast import ForecastActivities
    from models.forecast import (
        FORECAST_WORKFLOW,
        PURCHASE_REQUEST_WORKFLOW,
        DemandSkusInput,
        ForecastChunkInput,
        ForecastChunkResult,
        ForecastRequest,
        ForecastRunSummary,
        PurchaseRequestInput,
    )

STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5), maximum_attempts=5
)


@workflow.defn(name=FORECAST_WORKFLOW)
class DemandForecastWorkflow:
    @workflow.run
    async def run(self, request: ForecastRequest) -> ForecastRunSummary:
        as_of = request.as_of or workflow.now().date()
        skus = await self._skus_with_demand(request, as_of)
        chunks = [skus[i : i + request.chunk_size] for i in range(0, len(skus), request.chunk_size)]
        results = [await self._forecast_chunk(request, as_of, n, len(chunks), chunk) for n, chunk in enumerate(chunks)]
        return ForecastRunSummary(
            as_of=as_of,
            skus=len(skus),
            chunks=len(chunks),
            forecasts=sum(r.forecasts for r in results),
            suggestions=sum(r.suggestions for r in results),
            too_short=sum(len(r.too_short) for r in results),
        )

    async def _skus_with_demand(self, request: ForecastRequest, as_of: date) -> list[str]:
        found = await workflow.execute_activity_method(
            ForecastActivities.demand_skus,
            DemandSkusInput(as_of=as_of, history_days=request.history_days),
            summary=f"Find the SKUs ordered in the {request.history_days} days before {as_of}",
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=STEP_RETRY,
        )
        return found.skus

    async def _forecast_chunk(
        self, request: ForecastRequest, as_of: date, n: int, of: int, skus: list[str]
    ) -> ForecastChunkResult:
        return await workflow.execute_activity_method(
            ForecastActivities.forecast_chunk,
            ForecastChunkInput(
                run_id=workflow.info().workflow_id, as_of=as_of, history_days=request.history_days, skus=skus
            ),
            summary=f"Forecast chunk {n + 1} of {of}: {skus[0]} … {skus[-1]} ({len(skus)} SKUs)",
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=STEP_RETRY,
        )


@workflow.defn(name=PURCHASE_REQUEST_WORKFLOW)
class PurchaseRequestWorkflow:
    @workflow.run
    async def run(self, request: PurchaseRequestInput) -> None:
        await workflow.execute_activity_method(
            ForecastActivities.send_purchase_request,
            request,
            summary=f"Ask purchasing for {request.quantity} units of {request.sku} at {request.warehouse}",
            start_to_close_timeout=timedelta(minutes=1),
            # Until purchasing answers or refuses: a refusal (4xx) is not retried.
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5)),
        )
