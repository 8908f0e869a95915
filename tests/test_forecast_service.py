"""The demand forecast as a service: the schedule the worker registers, a triggered run on the real dev
server writing forecasts and suggestions to PostgreSQL, the API over them, accepting a suggestion, and
`make run` showing a forecast of its demo history on the first start.

Demand is seeded as order records (the synthetic demand of scripts/demand_generator.py, one order
per SKU and day), the way the order workflows leave them.
"""

from __future__ import annotations

import asyncio
import subprocess
from contextlib import suppress
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from pathlib import Path
from time import monotonic, sleep
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

import worker
from db.forecast import on_order
from forecast_schedule import ensure_forecast_schedule
from models.forecast import (
    FORECAST_SCHEDULE_ID,
    FORECAST_WORKFLOW,
    ForecastRequest,
    ForecastRunSummary,
    purchase_request_workflow_id,
)
from models.forecast_tables import DemandForecastRow, ReorderSuggestionRow
from models.tables import OrderLineRow, OrderRow, SkuRow, StockRow, WarehouseRow
from scripts.demand_generator import SyntheticSku, generate
from settings import Settings
from tests import test_local_stack
from tests.conftest import TEST_KEYRING
from tests.stack import NotYet, Stack, eventually
from tests.test_local_stack import admin_headers, stack_environment, start_stack, stop, wait_until_ready

Sessions = async_sessionmaker[AsyncSession]
# The fixture that stops a stack a failed test left running, with everything it started.
stack_guard = test_local_stack.stack_guard
HISTORY_DAYS = 120


async def seed_demand(sessionmaker: Sessions, skus: list[SyntheticSku], last_day: date) -> None:
    """Each SKU's synthetic demand as delivered orders, the last on `last_day`; the SKUs stocked at AMS."""
    lines = []
    async with sessionmaker.begin() as session:
        # Parents first, each flushed: the unit of work knows of no links between these tables.
        session.add(WarehouseRow(code="AMS", name="Amsterdam"))
        session.add_all(SkuRow(sku=sku.sku, name=sku.sku) for sku in skus)
        await session.flush()
        for sku in skus:
            session.add(StockRow(sku=sku.sku, warehouse="AMS", on_hand=3, reserved=1))
            first_day = last_day - timedelta(days=len(sku.quantities) - 1)
            for offset, quantity in enumerate(sku.quantities):
                if quantity == 0:
                    continue
                day = first_day + timedelta(days=offset)
                at = datetime.combine(day, clock(12), tzinfo=UTC)
                order_id = f"demo-{sku.sku}-{day.isoformat()}"
                session.add(
                    OrderRow(
                        order_id=order_id,
                        workflow_id=f"order-{order_id}",
                        customer_id="demo-customer",
                        status="delivered",
                        total=Decimal(quantity),
                        currency="EUR",
                        last_seq=1,
                        created_at=at,
                        updated_at=at,
                    )
                )
                lines.append(
                    OrderLineRow(
                        order_id=order_id,
                        line_no=1,
                        sku=sku.sku,
                        quantity=quantity,
                        unit_price=Decimal("1.00"),
                        placed_at=at,
                    )
                )
        await session.flush()
        session.add_all(lines)


def demo_skus() -> list[SyntheticSku]:
    return generate(days=HISTORY_DAYS, smooth=1, intermittent=1)


async def forecast_once(stack: Stack, as_of: date) -> ForecastRunSummary:
    return await stack.temporal.execute_workflow(
        FORECAST_WORKFLOW,
        ForecastRequest(history_days=HISTORY_DAYS + 10, chunk_size=1, as_of=as_of),
        id=f"demand-forecast-test-{as_of}",
        task_queue=stack.settings.task_queue,
        result_type=ForecastRunSummary,
    )


async def delete_schedule(client: Client) -> None:
    with suppress(RPCError):
        await client.get_schedule_handle(FORECAST_SCHEDULE_ID).delete()


# The schedule


async def test_the_schedule_is_registered_once_however_often_the_worker_starts(
    dev_server_env: WorkflowEnvironment, database_url: str, sessionmaker: Sessions, task_queue: str
) -> None:
    client = dev_server_env.client
    await delete_schedule(client)
    settings = Settings().model_copy(
        update={
            "database_url": database_url,
            "temporal_address": client.service_client.config.target_host,
            "task_queue": task_queue,
            "worker_metrics_address": "",
        }
    )
    try:
        for _ in range(3):
            stopped = asyncio.Event()
            stopped.set()
            # The real worker's start, as `python worker.py` runs it, stopped as soon as it has started.
            await worker.run(settings, TEST_KEYRING, stop=stopped)

        schedules = [s async for s in await client.list_schedules()]
        described = await client.get_schedule_handle(FORECAST_SCHEDULE_ID).describe()
    finally:
        await delete_schedule(client)

    assert [s.id for s in schedules if s.id == FORECAST_SCHEDULE_ID] == [FORECAST_SCHEDULE_ID]
    assert [interval.every for interval in described.schedule.spec.intervals] == [timedelta(days=1)]
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.task_queue) == (FORECAST_WORKFLOW, task_queue)


def test_the_forecast_interval_is_daily_by_default_none_when_empty_and_never_under_an_hour() -> None:
    assert Settings(forecast_interval="").forecast_interval is None  # type: ignore[arg-type]
    assert Settings(forecast_interval="0").forecast_interval is None  # type: ignore[arg-type]
    assert Settings().forecast_interval == timedelta(days=1)
    assert Settings(forecast_interval="PT6H").forecast_interval == timedelta(hours=6)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="an hour or more"):
        Settings(forecast_interval="60")  # type: ignore[arg-type]


# A triggered run, the API over what it wrote


async def test_a_triggered_run_writes_forecasts_and_suggestions_the_api_then_serves(stack: Stack) -> None:
    skus = demo_skus()
    today = datetime.now(UTC).date()
    await seed_demand(stack.sessionmaker, skus, today - timedelta(days=1))
    terms = {"lead_time_days": 10, "min_order_quantity": 40, "pack_size": 12}
    put = await stack.purchasing.put(f"/purchasing/terms/{skus[0].sku}", json=terms)
    assert put.status_code == 200, put.text

    before = await stack.operator.get(f"/forecast/{skus[0].sku}")
    assert before.status_code == 404, before.text

    settings = stack.settings.model_copy(update={"forecast_history_days": HISTORY_DAYS + 10, "forecast_chunk_size": 1})
    await delete_schedule(stack.temporal)
    try:
        assert await ensure_forecast_schedule(stack.temporal, settings) == "created"
        await stack.temporal.get_schedule_handle(FORECAST_SCHEDULE_ID).trigger()

        async def forecast_written() -> dict[str, Any]:
            response = await stack.operator.get(f"/forecast/{skus[1].sku}")
            if response.status_code != 200:
                raise NotYet(f"GET /forecast answered {response.status_code}")
            return dict(response.json())

        await eventually(forecast_written, timeout=120, interval=0.5)
    finally:
        await delete_schedule(stack.temporal)

    smooth = (await stack.purchasing.get(f"/forecast/{skus[0].sku}")).json()
    assert smooth["sku"] == skus[0].sku
    assert smooth["model"] in {"AutoETS", "SeasonalNaive"}
    assert len(smooth["points"]) == 28
    assert smooth["points"][0]["date"] == today.isoformat()
    assert smooth["history"][-1] == {
        "date": (today - timedelta(days=1)).isoformat(),
        "quantity": skus[0].quantities[-1],
    }
    assert len(smooth["history"]) == 90
    for p in smooth["points"]:
        assert 0 <= p["lo95"] <= p["lo80"] <= p["mean"] <= p["hi80"] <= p["hi95"]

    listed = await stack.purchasing.get("/purchasing/suggestions")
    assert listed.status_code == 200, listed.text
    items = {item["sku"]: item for item in listed.json()["items"]}
    assert set(items) == {skus[0].sku, skus[1].sku}
    first = items[skus[0].sku]
    assert (first["warehouse"], first["on_hand"], first["available"], first["on_order"]) == ("AMS", 3, 2, 0)
    assert first["lead_time_days"] == 10
    assert first["status"] == "open"
    # The shortfall below the reorder point, at least 40, in packs of 12.
    assert first["quantity"] % 12 == 0
    assert first["quantity"] - 12 < max(40, first["reorder_point"] - 2) <= first["quantity"]
    # Ten days of this SKU's demand is well above its stock: the reorder point covers at least the forecast.
    assert first["reorder_point"] >= sum(p["mean"] for p in smooth["points"][:10])
    assert items[skus[1].sku]["lead_time_days"] == 7


async def test_a_second_run_supersedes_the_open_suggestions_of_the_first(stack: Stack) -> None:
    skus = demo_skus()
    today = datetime.now(UTC).date()
    await seed_demand(stack.sessionmaker, skus, today - timedelta(days=2))

    first = await forecast_once(stack, today - timedelta(days=1))
    again = await forecast_once(stack, today - timedelta(days=1))  # the same run, retried: nothing doubles
    second = await forecast_once(stack, today)

    assert (first.skus, first.chunks, first.forecasts, first.suggestions, first.too_short) == (2, 2, 2, 2, 0)
    assert again == first
    assert second.suggestions == 2
    async with stack.sessionmaker() as session:
        statuses = list(
            await session.scalars(select(ReorderSuggestionRow.status).order_by(ReorderSuggestionRow.status))
        )
        forecasts = list(await session.scalars(select(DemandForecastRow.run_id)))
    assert statuses == ["open", "open", "superseded", "superseded"]
    assert forecasts == [f"demand-forecast-test-{today}"] * 2


async def test_a_sku_with_too_little_history_gets_no_forecast_and_stays_404(stack: Stack) -> None:
    young = SyntheticSku("YOUNG-1", "smooth", date(2026, 1, 1), (4,) * 20)
    today = datetime.now(UTC).date()
    await seed_demand(stack.sessionmaker, [young], today - timedelta(days=1))

    summary = await forecast_once(stack, today)

    assert (summary.skus, summary.forecasts, summary.too_short) == (1, 0, 1)
    assert (await stack.operator.get("/forecast/YOUNG-1")).status_code == 404


async def test_purchase_terms_default_to_a_week_and_are_set_per_known_sku(stack: Stack) -> None:
    await stack.count_stock("MUG-1", 5)

    default = await stack.purchasing.get("/purchasing/terms/MUG-1")
    changed = await stack.purchasing.put("/purchasing/terms/MUG-1", json={"lead_time_days": 3, "pack_size": 6})
    read_back = await stack.purchasing.get("/purchasing/terms/MUG-1")
    unknown = await stack.purchasing.put("/purchasing/terms/NO-SUCH-SKU", json={"lead_time_days": 3})
    no_packs = await stack.purchasing.put("/purchasing/terms/MUG-1", json={"lead_time_days": 3, "pack_size": 0})

    assert default.json() == {"sku": "MUG-1", "lead_time_days": 7, "min_order_quantity": 1, "pack_size": 1}
    assert changed.status_code == 200
    assert read_back.json() == {"sku": "MUG-1", "lead_time_days": 3, "min_order_quantity": 1, "pack_size": 6}
    assert unknown.status_code == 404
    assert no_packs.status_code == 422
    assert no_packs.json()["detail"][0]["loc"] == ["body", "pack_size"]


# Accepting and dismissing


async def test_accepting_a_suggestion_sends_one_signed_request_even_when_retried(stack: Stack) -> None:
    skus = demo_skus()
    today = datetime.now(UTC).date()
    await seed_demand(stack.sessionmaker, skus, today - timedelta(days=1))
    await forecast_once(stack, today)
    items = (await stack.purchasing.get("/purchasing/suggestions")).json()["items"]
    chosen = next(item for item in items if item["sku"] == skus[0].sku)

    # Purchasing takes every request but its answer never arrives: the worker retries, and so does the buyer.
    await stack.set_fault("purchasing", drop_rate=1.0, drop_after_effect=True)
    accepted = await stack.purchasing.post(f"/purchasing/suggestions/{chosen['suggestion_id']}/accept")

    async def retried() -> None:
        if _drops(await _strikes(stack)) < 3:
            raise NotYet("purchasing's answer was not lost three times yet")

    await eventually(retried, timeout=30, interval=0.2)
    again = await stack.purchasing.post(f"/purchasing/suggestions/{chosen['suggestion_id']}/accept")
    await stack.clear_faults()
    handle = stack.temporal.get_workflow_handle(purchase_request_workflow_id(chosen["suggestion_id"]))
    await asyncio.wait_for(handle.result(), timeout=60)

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert again.status_code == 200 and again.json() == accepted.json()
    requests = await stack.records("purchase_requests")
    assert len(requests) == 1
    (request,) = requests
    assert request["signature_valid"] is True, request["signature_problem"]
    assert (request["sku"], request["warehouse"], request["quantity"]) == (skus[0].sku, "AMS", chosen["quantity"])
    async with stack.sessionmaker() as session:
        assert await on_order(session, skus[0].sku, "AMS") == chosen["quantity"]
    listed = (await stack.purchasing.get("/purchasing/suggestions", params={"status": "accepted"})).json()["items"]
    assert [item["suggestion_id"] for item in listed] == [chosen["suggestion_id"]]

    # Once delivered, the units are stock and no longer on order.
    await stack.receive_stock(skus[0].sku, chosen["quantity"])
    async with stack.sessionmaker() as session:
        assert await on_order(session, skus[0].sku, "AMS") == 0


async def test_a_dismissed_suggestion_cannot_be_accepted_and_an_unknown_one_is_404(stack: Stack) -> None:
    skus = demo_skus()
    today = datetime.now(UTC).date()
    await seed_demand(stack.sessionmaker, skus, today - timedelta(days=1))
    await forecast_once(stack, today)
    items = (await stack.purchasing.get("/purchasing/suggestions")).json()["items"]
    suggestion_id = items[0]["suggestion_id"]

    dismissed = await stack.purchasing.post(f"/purchasing/suggestions/{suggestion_id}/dismiss")
    dismissed_again = await stack.purchasing.post(f"/purchasing/suggestions/{suggestion_id}/dismiss")
    accepted = await stack.purchasing.post(f"/purchasing/suggestions/{suggestion_id}/accept")
    unknown = await stack.purchasing.post("/purchasing/suggestions/no-such-suggestion/accept")

    assert (dismissed.status_code, dismissed.json()["status"]) == (200, "dismissed")
    assert dismissed_again.status_code == 200
    assert accepted.status_code == 409
    assert "dismissed" in accepted.json()["detail"]
    assert unknown.status_code == 404
    assert [
        item["suggestion_id"] for item in (await stack.purchasing.get("/purchasing/suggestions")).json()["items"]
    ] == [items[1]["suggestion_id"]]
    assert await stack.records("purchase_requests") == []


async def _strikes(stack: Stack) -> dict[str, Any]:
    response = await stack.standins.get("/_control/faults")
    return dict(response.json())


def _drops(faults: dict[str, Any]) -> int:
    return int(faults.get("struck", {}).get("purchasing", {}).get("drop", 0))


# make run


def test_make_run_shows_a_forecast_and_suggestions_of_the_demo_history_on_its_first_start(
    tmp_path: Path, stack_guard: list[subprocess.Popen[bytes]]
) -> None:
    env = stack_environment(tmp_path / "data")
    output = tmp_path / "stack.log"
    running = start_stack(env, output)
    stack_guard.append(running)
    wait_until_ready(running, env, output)
    api = f"http://127.0.0.1:{env['OMS_API_PORT']}"
    headers = admin_headers(env)

    deadline = monotonic() + 120
    while (forecast := httpx.get(f"{api}/forecast/MUG-001", headers=headers, timeout=10)).status_code != 200:
        assert forecast.status_code == 404, forecast.text
        assert monotonic() < deadline, output.read_text()
        sleep(1)
    suggestions = httpx.get(f"{api}/purchasing/suggestions", headers=headers, timeout=10)
    demo_orders = httpx.get(f"{api}/orders", params={"customer_id": "demo-history", "limit": 100}, headers=headers)
    stop(running, output)

    assert len(forecast.json()["points"]) == 28
    assert len(forecast.json()["history"]) == 90
    assert suggestions.status_code == 200
    assert len(demo_orders.json()["items"]) == 90
    assert all(order["order_id"].startswith("demo-history-") for order in demo_orders.json()["items"])
    assert "Traceback" not in output.read_text()
