"""The forecast's storage on SQLite, the database of `make run`: a chunk forecast and its suggestions
written, accepted, dismissed and received, with the same answers as on PostgreSQL (test_forecast_service);
and the demo order history `make run` seeds."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.forecast import ForecastActivities
from db import forecast as store
from db.engine import create_engine, create_sessionmaker
from db.migrate import upgrade
from db.orders import get_order
from db.stock import receive_stock
from models.forecast import ForecastChunkInput
from scripts.demo_catalogue import seed
from scripts.demo_history import DEMAND, DEMO_DAYS, DEMO_PREFIX, seed_history
from settings import Settings
from tests.conftest import TEST_KEYRING
from tests.test_forecast_service import HISTORY_DAYS, demo_skus, seed_demand

Sessions = async_sessionmaker[AsyncSession]
AS_OF = date(2026, 12, 1)


@pytest.fixture
async def sqlite_sessionmaker(tmp_path: Path) -> AsyncIterator[Sessions]:
    url = f"sqlite:///{tmp_path}/forecast.sqlite3"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def test_a_chunk_on_sqlite_writes_forecasts_and_suggestions_that_can_be_accepted_and_received(
    sqlite_sessionmaker: Sessions,
) -> None:
    skus = demo_skus()
    await seed_demand(sqlite_sessionmaker, skus, AS_OF - timedelta(days=1))
    async with httpx.AsyncClient() as http:
        activities = ForecastActivities(sqlite_sessionmaker, http, Settings())
        request = ForecastChunkInput(
            run_id="run-1", as_of=AS_OF, history_days=HISTORY_DAYS + 10, skus=[s.sku for s in skus] + ["NONE"]
        )
        result = await ActivityEnvironment().run(activities.forecast_chunk, request)

    assert (result.forecasts, result.suggestions, result.too_short) == (2, 2, ["NONE"])
    async with sqlite_sessionmaker() as session:
        forecast = await store.get_forecast(session, skus[0].sku)
        listed = await store.list_suggestions(session)
    assert forecast is not None
    assert len(forecast.points) == 28 and forecast.points[0].date == AS_OF
    assert forecast.generated_at.tzinfo is not None
    assert {s.sku for s in listed.items} == {s.sku for s in skus}

    first, second = listed.items
    async with sqlite_sessionmaker.begin() as session:
        accepted = await store.accept_suggestion(session, first.suggestion_id)
    async with sqlite_sessionmaker.begin() as session:
        again = await store.accept_suggestion(session, first.suggestion_id)
    async with sqlite_sessionmaker.begin() as session:
        await store.dismiss_suggestion(session, second.suggestion_id)
    async with sqlite_sessionmaker() as session:
        assert await store.on_order(session, first.sku, "AMS") == first.quantity
    async with sqlite_sessionmaker.begin() as session:
        await receive_stock(session, first.sku, "AMS", first.quantity + 5, "receipt-1")
    async with sqlite_sessionmaker() as session:
        after = await store.on_order(session, first.sku, "AMS")
        statuses = {s.suggestion_id: s.status for s in (await store.list_suggestions(session, None)).items}

    assert accepted.status == again.status == "accepted"
    assert after == 0
    assert statuses == {first.suggestion_id: "accepted", second.suggestion_id: "dismissed"}
    assert accepted.created_at < datetime.now(UTC)


async def test_the_demo_history_is_written_once_reads_like_closed_orders_and_can_be_forecast(
    sqlite_sessionmaker: Sessions,
) -> None:
    await seed(sqlite_sessionmaker)
    written = await seed_history(sqlite_sessionmaker, TEST_KEYRING, AS_OF)
    again = await seed_history(sqlite_sessionmaker, TEST_KEYRING, AS_OF + timedelta(days=1))
    async with sqlite_sessionmaker() as session:
        order = await get_order(session, f"{DEMO_PREFIX}{AS_OF - timedelta(days=1)}", TEST_KEYRING)
        skus = await store.demand_skus(session, AS_OF - timedelta(days=DEMO_DAYS), AS_OF - timedelta(days=1))
    async with httpx.AsyncClient() as http:
        activities = ForecastActivities(sqlite_sessionmaker, http, Settings())
        request = ForecastChunkInput(run_id="demo", as_of=AS_OF, history_days=DEMO_DAYS, skus=skus)
        result = await ActivityEnvironment().run(activities.forecast_chunk, request)

    # One order a day with any demand: the steady sellers sell every day.
    assert written == DEMO_DAYS
    assert again == 0
    assert order is not None
    assert (order.status, order.customer.id) == ("delivered", "demo-history")
    # Shipped on the way, so the dashboard's lead times have demo figures too.
    assert [event.status for event in order.timeline] == ["received", "shipped", "delivered"]
    assert skus == sorted(DEMAND)
    assert result.forecasts >= 4
    assert {"MUG-001", "TEE-002", "BAG-005"} <= {s for s in skus if s not in result.too_short}


async def test_a_retried_chunk_goes_on_after_the_last_sku_it_reported_done(sqlite_sessionmaker: Sessions) -> None:
    skus = demo_skus()
    await seed_demand(sqlite_sessionmaker, skus, AS_OF - timedelta(days=1))
    heartbeats: list[tuple[object, ...]] = []
    env = ActivityEnvironment()
    # The attempt before this one heartbeat after the first SKU, then its worker was lost.
    env.info = dataclasses.replace(env.info, heartbeat_details=[1, {"forecasts": 1, "suggestions": 1}])
    env.on_heartbeat = lambda *details: heartbeats.append(details)
    async with httpx.AsyncClient() as http:
        activities = ForecastActivities(sqlite_sessionmaker, http, Settings())
        request = ForecastChunkInput(
            run_id="run-1", as_of=AS_OF, history_days=HISTORY_DAYS + 10, skus=[s.sku for s in skus]
        )
        result = await env.run(activities.forecast_chunk, request)
    async with sqlite_sessionmaker() as session:
        first = await store.get_forecast(session, skus[0].sku)
        second = await store.get_forecast(session, skus[1].sku)

    assert (result.forecasts, result.suggestions) == (2, 2)
    assert first is None and second is not None
    assert heartbeats == [(2, {"forecasts": 2, "suggestions": 2, "too_short": []})]


async def test_a_sku_stocked_nowhere_is_suggested_for_the_first_warehouse_allocation_draws_from(
    sqlite_sessionmaker: Sessions,
) -> None:
    await seed(sqlite_sessionmaker)
    async with sqlite_sessionmaker() as session:
        by_code = await store.stock_positions(session, "NEW-SKU", AS_OF)
        by_priority = await store.stock_positions(session, "NEW-SKU", AS_OF, ["WH-WEST"])
        stocked = await store.stock_positions(session, "MUG-001", AS_OF, ["WH-WEST"])

    assert [p.warehouse for p in by_code] == ["WH-EAST"]
    assert [p.warehouse for p in by_priority] == ["WH-WEST"]
    assert [(p.warehouse, p.on_hand, p.on_order) for p in stocked] == [("WH-WEST", 80, 0), ("WH-EAST", 120, 0)]
