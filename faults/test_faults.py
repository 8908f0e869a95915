"""Fault drills: a batch of orders goes through the real stack while one part of it fails.

Each drill starts the whole service as `make run` does (Temporal dev server, stand-ins, worker
and API as separate processes) on its own PostgreSQL database, places a batch of orders through
the API with clients that retry every lost or failed call with the same Idempotency-Key, breaks
one thing mid-batch, waits until every order has finished and audits the books. A drill passes
when every order ended where its client may see it end, nothing was done twice, no undo was
left undone, and the stock ledger balances.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from hypothesis import settings

from db.migrate import upgrade
from faults.batch import plan_batch
from faults.conftest import Scale
from faults.drill import Drill, DrillResult, run_drill
from faults.harness import API, TEMPORAL, WORKER, FaultStack
from faults.postgres import PostgresServer
from faults.report import Figures
from faults.returns import run_return_drill
from tests.test_stock_properties import LEDGER_SETTINGS, check_stock_ledger

Report = Callable[[Figures], None]

TEMPORAL_OUTAGE_SECONDS = 5.0
POSTGRES_OUTAGE_SECONDS = 10.0
FLAKY = {"failure_rate": 0.2, "drop_rate": 0.1, "drop_after_effect": True, "spike_rate": 0.2, "spike_ms": 1000}


async def slow_outside_systems(stack: FaultStack) -> None:
    """Outside calls that take a while keep orders allocating and settling long enough to be caught at it."""
    await stack.set_fault("carrier", latency_ms=300)
    await stack.set_fault("finance", latency_ms=800)


def assert_books_balance(result: DrillResult) -> None:
    figures = result.figures
    assert result.books.problems() == []
    assert (figures.completed, figures.lost, figures.duplicated) == (figures.submitted, 0, 0)


async def test_orders_survive_the_worker_killed_during_allocation_and_settlement(
    stack: FaultStack, scale: Scale, report: Report
) -> None:
    batch = plan_batch("worker", scale.orders, rate=scale.rate)
    await slow_outside_systems(stack)

    async def kill_the_worker(drill: Drill) -> None:
        for moment in ("allocating", "fulfilling", "fulfilling"):
            caught = await drill.until_in_flight(moment, timeout=scale.patience / 2)
            await drill.stack.kill(WORKER)
            drill.note(f"worker killed with {caught[moment]} orders {moment}")
            await drill.stack.start(WORKER)
            drill.note("worker started again")

    result = await run_drill(stack, batch, kill_the_worker, scenario="worker SIGKILL x3", patience=scale.patience)
    report(result.figures)

    assert len(result.drill.steps) == 6
    assert_books_balance(result)


async def test_orders_survive_the_temporal_server_stopped_and_restarted(
    stack: FaultStack, scale: Scale, report: Report
) -> None:
    batch = plan_batch("temporal", scale.orders, rate=scale.rate)
    await slow_outside_systems(stack)

    async def restart_temporal(drill: Drill) -> None:
        caught = await drill.until_in_flight("allocating", "fulfilling", at_least=2, timeout=scale.patience / 2)
        await drill.stack.stop(TEMPORAL)
        drill.note(f"Temporal server stopped with orders in flight: {dict(caught)}")
        await asyncio.sleep(TEMPORAL_OUTAGE_SECONDS)
        await drill.stack.start(TEMPORAL)
        drill.note("Temporal server started again on its SQLite file")

    result = await run_drill(
        stack, batch, restart_temporal, scenario="Temporal server restart", patience=scale.patience
    )
    report(result.figures)

    assert len(result.drill.steps) == 2
    assert_books_balance(result)


async def test_orders_survive_postgresql_stopped_for_ten_seconds(
    stack: FaultStack, scale: Scale, report: Report
) -> None:
    batch = plan_batch("postgres", scale.orders, rate=scale.rate)
    await slow_outside_systems(stack)

    async def stop_postgres(drill: Drill) -> None:
        caught = await drill.until_in_flight("allocating", "fulfilling", at_least=2, timeout=scale.patience / 2)
        await drill.stack.stop_postgres()
        drill.note(f"PostgreSQL stopped with orders in flight: {dict(caught)}")
        await asyncio.sleep(POSTGRES_OUTAGE_SECONDS)
        await drill.stack.start_postgres()
        drill.note("PostgreSQL started again")

    result = await run_drill(stack, batch, stop_postgres, scenario="PostgreSQL down 10 s", patience=scale.patience)
    report(result.figures)

    assert len(result.drill.steps) == 2
    assert_books_balance(result)


async def test_orders_survive_a_flaky_carrier_and_finance(stack: FaultStack, scale: Scale, report: Report) -> None:
    batch = plan_batch("flaky", scale.orders, rate=scale.rate)
    for service in ("carrier", "finance"):
        await stack.set_fault(service, **FLAKY)

    async def nothing_more(_drill: Drill) -> None:
        return None

    result = await run_drill(
        stack, batch, nothing_more, scenario="carrier+finance 20% 5xx, spikes, drops", patience=scale.patience
    )
    report(result.figures)

    assert_books_balance(result)
    # Every kind of fault struck, and both providers were hit (a small batch makes few calls to finance).
    struck = await stack.strikes()
    assert sorted(struck) == ["carrier", "finance"]
    assert {kind for kinds in struck.values() for kind in kinds} == {"drop", "failure", "spike"}


async def test_orders_survive_the_api_restarted_while_clients_retry(
    stack: FaultStack, scale: Scale, report: Report
) -> None:
    batch = plan_batch("api", scale.orders, rate=scale.rate)

    async def restart_the_api(drill: Drill) -> None:
        await drill.until_placed(1 / 3, timeout=scale.patience)
        await drill.stack.stop(API)
        drill.note(f"API stopped (SIGTERM) after {len(drill.placed)} orders placed")
        await drill.stack.start(API)
        drill.note("API started again")
        await drill.until_placed(2 / 3, timeout=scale.patience)
        await drill.stack.kill(API)
        drill.note(f"API killed (SIGKILL) after {len(drill.placed)} orders placed")
        await drill.stack.start(API)
        drill.note("API started again")

    result = await run_drill(stack, batch, restart_the_api, scenario="API restart x2", patience=scale.patience)
    report(result.figures)

    assert len(result.drill.steps) == 4
    assert result.drill.shop.counts.lost_answers > 0
    assert_books_balance(result)


async def test_returns_survive_the_worker_killed_mid_refund(stack: FaultStack, scale: Scale, report: Report) -> None:
    batch = plan_batch("returns", scale.orders // 2, rate=scale.rate)

    async def nothing_more(_drill: Drill) -> None:
        return None

    delivered = await run_drill(
        stack, batch, nothing_more, scenario="returns drill: its batch of orders", patience=scale.patience
    )
    report(delivered.figures)
    assert_books_balance(delivered)
    figures, books = await run_return_drill(stack, delivered, patience=scale.patience)
    report(figures)

    assert len(books.returns) == delivered.books.statuses["delivered"] > 0
    assert books.problems == [] and books.duplicated == []
    assert books.closed == len(books.returns)


def test_the_stock_ledger_keeps_its_rules_under_any_sequence_of_steps(
    postgres: PostgresServer, scale: Scale, report: Report
) -> None:
    database_url = postgres.create_database("stock_ledger")
    upgrade(database_url)
    started = time.monotonic()
    figures = Figures("stock ledger state machine", 0, 0, 0, 0, 0, False, 0.0)
    try:
        tally = check_stock_ledger(database_url, settings(LEDGER_SETTINGS, max_examples=scale.ledger_sequences))
        figures = Figures(
            scenario="stock ledger state machine",
            submitted=tally.steps + tally.repeats,
            completed=tally.steps + tally.repeats,
            lost=0,
            unexpected=0,
            duplicated=0,
            balanced=True,
            seconds=time.monotonic() - started,
            details={
                "sequences": tally.sequences,
                "steps": f"{tally.steps} reserve/release/commit/receive, {tally.repeats} of them repeated at once",
                "ledger checks": tally.checks,
            },
        )
    finally:
        figures.seconds = time.monotonic() - started
        report(figures)

    assert tally.repeats > 0
