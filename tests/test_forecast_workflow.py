"""The forecast workflows on the time-skipping server with their activities faked: the run in chunks, its
summary, the purchase request; and kept histories of both replaying against today's code.

`python -m tests.test_forecast_workflow` records the kept histories again (unencrypted, like the
order workflow's in tests/histories); a change that alters them goes behind workflow.patched().
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from models.forecast import (
    DemandSkus,
    DemandSkusInput,
    ForecastChunkInput,
    ForecastChunkResult,
    ForecastRequest,
    ForecastRunSummary,
    PurchaseRequestInput,
)
from security.codec import data_converter
from tests.conftest import BIN, TEST_KEYRING
from workflows.forecast import DemandForecastWorkflow, PurchaseRequestWorkflow

HISTORIES = Path(__file__).parent / "forecast_histories"
SKUS = ["A-1", "B-2", "C-3", "D-4", "E-5"]


class FakeForecast:
    """The forecast activities, answering from memory and noting every call."""

    def __init__(self) -> None:
        self.chunks: list[ForecastChunkInput] = []
        self.requests: list[PurchaseRequestInput] = []

    def activities(self) -> list[object]:
        @activity.defn(name="demand_skus")
        async def demand_skus(request: DemandSkusInput) -> DemandSkus:
            return DemandSkus(skus=SKUS)

        @activity.defn(name="forecast_chunk")
        async def forecast_chunk(request: ForecastChunkInput) -> ForecastChunkResult:
            self.chunks.append(request)
            # The last SKU of every chunk has too little history; the others get one suggestion each.
            return ForecastChunkResult(
                forecasts=len(request.skus) - 1, suggestions=len(request.skus) - 1, too_short=request.skus[-1:]
            )

        @activity.defn(name="send_purchase_request")
        async def send_purchase_request(request: PurchaseRequestInput) -> None:
            self.requests.append(request)

        return [demand_skus, forecast_chunk, send_purchase_request]


async def run_forecast(client: Client, fakes: FakeForecast, workflow_id: str) -> ForecastRunSummary:
    task_queue = f"forecast-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[DemandForecastWorkflow, PurchaseRequestWorkflow],
        activities=fakes.activities(),
    ):
        return await client.execute_workflow(
            DemandForecastWorkflow.run,
            ForecastRequest(chunk_size=2, history_days=90, as_of=date(2026, 12, 1)),
            id=workflow_id,
            task_queue=task_queue,
        )


async def request_purchase(client: Client, fakes: FakeForecast, workflow_id: str) -> None:
    task_queue = f"forecast-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[DemandForecastWorkflow, PurchaseRequestWorkflow],
        activities=fakes.activities(),
    ):
        await client.execute_workflow(
            PurchaseRequestWorkflow.run,
            PurchaseRequestInput(suggestion_id="s-1", sku="A-1", warehouse="AMS", quantity=24),
            id=workflow_id,
            task_queue=task_queue,
        )


async def test_a_run_forecasts_the_skus_in_chunks_and_sums_them_up(time_skipping_env: WorkflowEnvironment) -> None:
    fakes = FakeForecast()
    workflow_id = f"demand-forecast-{uuid.uuid4()}"

    summary = await run_forecast(time_skipping_env.client, fakes, workflow_id)

    assert [chunk.skus for chunk in fakes.chunks] == [["A-1", "B-2"], ["C-3", "D-4"], ["E-5"]]
    assert {chunk.run_id for chunk in fakes.chunks} == {workflow_id}
    assert {(chunk.as_of, chunk.history_days) for chunk in fakes.chunks} == {(date(2026, 12, 1), 90)}
    assert summary == ForecastRunSummary(
        as_of=date(2026, 12, 1), skus=5, chunks=3, forecasts=2, suggestions=2, too_short=3
    )


async def test_a_purchase_request_sends_the_accepted_suggestion(time_skipping_env: WorkflowEnvironment) -> None:
    fakes = FakeForecast()

    await request_purchase(time_skipping_env.client, fakes, f"purchase-request-{uuid.uuid4()}")

    assert fakes.requests == [PurchaseRequestInput(suggestion_id="s-1", sku="A-1", warehouse="AMS", quantity=24)]


KEPT = {f"{path.parent.name}/{path.stem}": path.read_text() for path in sorted(HISTORIES.glob("*/*.json"))}


def test_there_are_kept_histories_of_both_workflows() -> None:
    assert {name.split("/")[1] for name in KEPT} >= {"demand_forecast_in_chunks", "purchase_request_sent"}


@pytest.mark.parametrize("name", KEPT)
async def test_kept_history_replays_without_non_determinism(name: str) -> None:
    history = WorkflowHistory.from_json(name, KEPT[name])
    replayer = Replayer(
        workflows=[DemandForecastWorkflow, PurchaseRequestWorkflow], data_converter=data_converter(TEST_KEYRING)
    )

    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)

    assert result.replay_failure is None


async def record(generation: str) -> None:
    from tests.histories.record import without_machine_paths

    folder = HISTORIES / generation
    folder.mkdir(parents=True, exist_ok=True)
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(None), test_server_existing_path=str(BIN / "temporal-test-server")
    )
    try:
        fakes = FakeForecast()
        await run_forecast(env.client, fakes, "demand-forecast-recorded")
        await request_purchase(env.client, fakes, "purchase-request-s-1")
        for name, workflow_id in (
            ("demand_forecast_in_chunks", "demand-forecast-recorded"),
            ("purchase_request_sent", "purchase-request-s-1"),
        ):
            history = await env.client.get_workflow_handle(workflow_id).fetch_history()
            await asyncio.to_thread((folder / f"{name}.json").write_text, without_machine_paths(history.to_json()))
            print(f"recorded {name}: {len(history.events)} events")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record("first"))
