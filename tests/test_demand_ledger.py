"""A SKU's demand ledger: who waits for stock, in which order, and whether purchasing has been told.

The rules are pure functions (workflows/demand.py), tested first without any server. Then the real
replenishment workflow on a time-skipping server of this module's own (skipping time must not wake
other tests' runs), with its steps faked: with real order workflows, whose shortage reports go to it
as the real activity sends them, and with stand-in orders that only note being woken.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models import names
from models.order import BackorderPolicy, OrderStatus
from models.purchasing import (
    Allocated,
    ReplenishmentInput,
    ShortageReport,
    StockReceived,
    WaitingOrder,
    Withdrawal,
)
from temporal_client import client_interceptors
from tests.conftest import BIN, TEST_CONVERTER, register_search_attributes
from tests.fakes import FakeSystems, refusal
from tests.test_order_workflow import Harness, order_request
from tests.test_replenishment_workflow import finish
from workflows import demand
from workflows.order import OrderWorkflow
from workflows.replenishment import ReplenishmentWorkflow

Replenishment = WorkflowHandle[ReplenishmentWorkflow, None]
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


# ---- The rules. ----


def report(order_id: str, quantity: int, round: int | None = 1) -> ShortageReport:
    return ShortageReport(order_id=order_id, quantity=quantity, round=round)


def test_a_new_order_joins_at_the_back_and_a_repeated_report_is_no_news() -> None:
    waiting, first = demand.take_report([], report("o-1", 2), T0)
    waiting, second = demand.take_report(waiting, report("o-2", 1), T0 + timedelta(hours=1))
    again, repeat = demand.take_report(waiting, report("o-1", 2), T0 + timedelta(hours=2))

    assert [(entry.order_id, entry.since) for entry in waiting] == [("o-1", T0), ("o-2", T0 + timedelta(hours=1))]
    assert first is not None and second is not None
    assert repeat is None
    assert again == waiting


def test_units_set_aside_for_woken_orders_are_not_handed_out_again() -> None:
    waiting, _ = demand.take_report([], report("o-1", 2), T0)
    waiting, _ = demand.take_report(waiting, report("o-2", 2), T0)
    waiting, _ = demand.take_report(waiting, report("o-3", 1), T0)

    assert demand.orders_to_wake(waiting, 3) == ["o-1"]
    woken = demand.mark_woken(waiting, ["o-1"], T0)
    # The same 3 units, not yet reserved by o-1: 1 is free, too few for o-2, and o-3 waits behind it.
    assert demand.orders_to_wake(woken, 3) == []
    assert demand.orders_to_wake(woken, 5) == ["o-2", "o-3"]


def test_a_woken_order_that_reports_again_waits_again_in_its_place_with_its_since() -> None:
    waiting, _ = demand.take_report([], report("o-1", 2), T0)
    waiting, _ = demand.take_report(waiting, report("o-2", 2), T0 + timedelta(hours=1))
    waiting = demand.mark_woken(waiting, ["o-1"], T0 + timedelta(hours=2))

    waiting, entry = demand.take_report(waiting, report("o-1", 2, round=2), T0 + timedelta(hours=3))

    assert entry is not None
    assert [(w.order_id, w.since, w.woken_at, w.round) for w in waiting] == [
        ("o-1", T0, None, 2),
        ("o-2", T0 + timedelta(hours=1), None, 1),
    ]
    assert demand.orders_to_wake(waiting, 2) == ["o-1"]


def test_orders_that_never_tell_they_allocated_are_forgotten_as_they_are_woken() -> None:
    waiting, _ = demand.take_report([], report("o-old", 1, round=None), T0)
    waiting, _ = demand.take_report(waiting, report("o-new", 1), T0)

    assert [demand.keeps_place_when_woken(entry) for entry in waiting] == [False, True]


# ---- The workflow. ----


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=TEST_CONVERTER,
        interceptors=client_interceptors(TEST_CONVERTER),
        test_server_existing_path=str(BIN / "temporal-test-server"),
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


def new_sku() -> str:
    return f"SKU-{uuid.uuid4().hex[:8]}"


def replenishment_of(client: Client, sku: str) -> Replenishment:
    return client.get_workflow_handle_for(ReplenishmentWorkflow.run, names.replenishment_workflow_id(sku))


async def eventually_true(probe: Callable[[], Any], what: str, attempts: int = 500) -> None:
    for _ in range(attempts):
        if await probe():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never: {what}")


async def demand_becomes(
    handle: Replenishment, check: Callable[[list[WaitingOrder]], bool], attempts: int = 500
) -> list[WaitingOrder]:
    waiting: list[WaitingOrder] = []
    for _ in range(attempts):
        try:
            waiting = await handle.query(ReplenishmentWorkflow.demand)
        except Exception:  # not started yet
            waiting = []
        if check(waiting):
            return waiting
        await asyncio.sleep(0.02)
    raise AssertionError(f"demand is {waiting}")


def ids(waiting: list[WaitingOrder]) -> list[str]:
    return [entry.order_id for entry in waiting]


def order_of(handle: WorkflowHandle[Any, Any]) -> str:
    order_id = names.order_id_of(handle.id)
    assert order_id is not None
    return order_id


# With real order workflows.


@pytest.fixture
async def orders(env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    task_queue = f"ledger-{uuid.uuid4()}"
    fakes = FakeSystems()
    fakes.forward_shortages = True
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[OrderWorkflow, ReplenishmentWorkflow],
        activities=fakes.activities(),
    ):
        harness = Harness(env, task_queue, fakes)
        yield harness
        await harness.stop_leftovers()
        for sku in {request.sku for request in fakes.reported}:
            await finish(replenishment_of(env.client, sku))


async def receive(harness: Harness, sku: str, units: int) -> None:
    harness.fakes.stock[sku] = harness.fakes.stock.get(sku, 0) + units
    await replenishment_of(harness.env.client, sku).signal(
        ReplenishmentWorkflow.stock_received,
        StockReceived(receipt_id=str(uuid.uuid4()), warehouse="WH-1", quantity=units),
    )


async def test_a_woken_order_that_loses_the_stock_to_another_keeps_its_place_first_in_line(orders: Harness) -> None:
    sku = new_sku()
    replenishment = replenishment_of(orders.env.client, sku)
    first = await orders.start(order_request(**{sku: 1}))
    await orders.until(first, OrderStatus.BACKORDERED)
    [waiting_first] = await demand_becomes(replenishment, lambda waiting: len(waiting) == 1)
    second = await orders.start(order_request(**{sku: 1}))
    await orders.until(second, OrderStatus.BACKORDERED)
    await demand_becomes(replenishment, lambda waiting: ids(waiting) == [order_of(first), order_of(second)])

    # One unit arrives and wakes the first order; before it reserves, an order that never waited takes the unit.
    orders.fakes.gates[f"reserve_line:{order_of(first)}"] = gate = asyncio.Event()
    await receive(orders, sku, 1)
    await orders.until(first, OrderStatus.ALLOCATING)
    third = await orders.start(order_request(BackorderPolicy.CANCEL, **{sku: 1}))
    await orders.until(third, OrderStatus.SHIPPED)
    gate.set()

    # The first order reports again, and waits where it waited.
    waiting = await demand_becomes(
        replenishment, lambda waiting: [(w.order_id, w.woken_at) for w in waiting][:1] == [(order_of(first), None)]
    )
    assert [(entry.order_id, entry.since) for entry in waiting] == [
        (order_of(first), waiting_first.since),
        (order_of(second), waiting[1].since),
    ]
    assert waiting_first.since < waiting[1].since

    await receive(orders, sku, 1)

    await orders.until(first, OrderStatus.SHIPPED)
    await demand_becomes(replenishment, lambda waiting: ids(waiting) == [order_of(second)])
    assert (await second.query(OrderWorkflow.status)).status == OrderStatus.BACKORDERED
    assert list(orders.fakes.open_shortages) == [(sku, order_of(second))]


async def test_an_order_restocked_by_an_operator_that_allocates_leaves_no_shortage_behind(orders: Harness) -> None:
    sku = new_sku()
    replenishment = replenishment_of(orders.env.client, sku)
    handle = await orders.start(order_request(**{sku: 2}))
    await orders.until(handle, OrderStatus.BACKORDERED)
    await demand_becomes(replenishment, lambda waiting: len(waiting) == 1)

    # Stock counted in, no receipt: only the operator's restock signal wakes the order.
    orders.fakes.stock[sku] = 2
    await handle.signal(OrderWorkflow.restock)

    await orders.until(handle, OrderStatus.SHIPPED)
    await demand_becomes(replenishment, lambda waiting: waiting == [])
    assert orders.fakes.open_shortages == {}


async def test_an_order_restocked_by_an_operator_while_still_short_is_listed_once_in_its_place(
    orders: Harness,
) -> None:
    sku = new_sku()
    replenishment = replenishment_of(orders.env.client, sku)
    handle = await orders.start(order_request(**{sku: 2}))
    await orders.until(handle, OrderStatus.BACKORDERED)
    [before] = await demand_becomes(replenishment, lambda waiting: len(waiting) == 1)

    await handle.signal(OrderWorkflow.restock)

    await eventually_true(lambda: _reported_twice(orders), "the order reported its shortage again")
    [after] = await demand_becomes(replenishment, lambda waiting: len(waiting) == 1 and waiting[0].round == 2)
    assert (after.order_id, after.since, after.quantity, after.woken_at) == (before.order_id, before.since, 2, None)
    assert (await handle.query(OrderWorkflow.status)).status == OrderStatus.BACKORDERED
    [recorded] = orders.fakes.open_shortages.values()
    assert (recorded.order_id, recorded.since) == (before.order_id, before.since)


async def _reported_twice(harness: Harness) -> bool:
    return len(harness.fakes.reported) == 2


# With stand-in orders.


@workflow.defn(name=names.ORDER_WORKFLOW, sandboxed=False)
class WaitingOrderStandIn:
    """An order that only waits and counts how often it was woken."""

    def __init__(self) -> None:
        self.woken = 0

    @workflow.run
    async def run(self, _: Any) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name=names.SIGNAL_RESTOCK)
    def restock(self) -> None:
        self.woken += 1

    @workflow.query(name="woken")
    def times_woken(self) -> int:
        return self.woken


class Ledger:
    def __init__(self, env: WorkflowEnvironment, task_queue: str, fakes: FakeSystems) -> None:
        self.env = env
        self.task_queue = task_queue
        self.fakes = fakes
        self.sku = new_sku()
        self.started: list[WorkflowHandle[Any, Any]] = []

    async def start(self, **options: Any) -> Replenishment:
        handle = await self.env.client.start_workflow(
            ReplenishmentWorkflow.run,
            ReplenishmentInput(sku=self.sku, **options),
            id=names.replenishment_workflow_id(self.sku),
            task_queue=self.task_queue,
        )
        self.started.append(handle)
        return handle

    async def order(self, order_id: str) -> WorkflowHandle[Any, Any]:
        handle = await self.env.client.start_workflow(
            "OrderWorkflow", None, id=names.order_workflow_id(order_id), task_queue=self.task_queue
        )
        self.started.append(handle)
        return handle

    async def woken(self, order_id: str) -> int:
        count: int = await self.env.client.get_workflow_handle(names.order_workflow_id(order_id)).query("woken")
        return count

    async def receive(self, units: int) -> None:
        self.fakes.stock[self.sku] = self.fakes.stock.get(self.sku, 0) + units
        await replenishment_of(self.env.client, self.sku).signal(
            ReplenishmentWorkflow.stock_received,
            StockReceived(receipt_id=str(uuid.uuid4()), warehouse="WH-1", quantity=units),
        )


@pytest.fixture
async def ledger(env: WorkflowEnvironment) -> AsyncIterator[Ledger]:
    task_queue = f"ledger-{uuid.uuid4()}"
    fakes = FakeSystems()
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[ReplenishmentWorkflow, WaitingOrderStandIn],
        activities=fakes.activities(),
    ):
        ledger = Ledger(env, task_queue, fakes)
        yield ledger
        for handle in ledger.started:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await finish(handle)


UNAVAILABLE = {"type": "ProviderUnavailable", "non_retryable": False}


async def test_a_purchasing_inbox_that_does_not_answer_holds_up_no_wake_up(ledger: Ledger) -> None:
    ledger.fakes.fail["notify_purchasing"] = ApplicationError("purchasing answered 503", **UNAVAILABLE)
    handle = await ledger.start()
    await ledger.order("o-1")
    await handle.signal(ReplenishmentWorkflow.shortage, report("o-1", 2))
    await eventually_true(lambda: _tried(ledger), "purchasing was tried")

    await ledger.receive(2)

    await eventually_true(lambda: _woken_once(ledger, "o-1"), "o-1 was woken")
    [undelivered] = await handle.query(ReplenishmentWorkflow.undelivered_notices)
    assert (undelivered.order_id, undelivered.quantity, undelivered.round) == ("o-1", 2, 1)
    assert ledger.fakes.delivered_notices == []

    # Purchasing is back: the notice arrives in a later burst, once the pause has passed.
    del ledger.fakes.fail["notify_purchasing"]
    await ledger.env.sleep(timedelta(minutes=5))
    await eventually_true(lambda: _notices_cleared(handle), "the notice was delivered")
    assert [(notice.order_id, notice.round) for notice in ledger.fakes.delivered_notices] == [("o-1", 1)]


async def _tried(ledger: Ledger) -> bool:
    return ledger.fakes.calls["notify_purchasing"] >= 1


async def _woken_once(ledger: Ledger, order_id: str) -> bool:
    return await ledger.woken(order_id) == 1


async def _notices_cleared(handle: Replenishment) -> bool:
    return await handle.query(ReplenishmentWorkflow.undelivered_notices) == []


async def test_a_refused_notice_ends_neither_the_run_nor_the_waiting_list(ledger: Ledger) -> None:
    ledger.fakes.fail["notify_purchasing"] = refusal("PurchasingRefused")
    handle = await ledger.start()
    for order_id in ("o-1", "o-2"):
        await ledger.order(order_id)
        await handle.signal(ReplenishmentWorkflow.shortage, report(order_id, 1))
    await demand_becomes(handle, lambda waiting: ids(waiting) == ["o-1", "o-2"])
    await eventually_true(lambda: _notices_cleared(handle), "both notices were given up")
    assert ledger.fakes.calls["notify_purchasing"] == 2

    await ledger.receive(1)

    await eventually_true(lambda: _woken_once(ledger, "o-1"), "o-1 was woken")
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert await ledger.woken("o-2") == 0


async def test_a_woken_order_that_allocates_or_withdraws_frees_its_units_for_the_next(ledger: Ledger) -> None:
    handle = await ledger.start()
    for order_id in ("o-1", "o-2", "o-3"):
        await ledger.order(order_id)
        await handle.signal(ReplenishmentWorkflow.shortage, report(order_id, 2))
    await ledger.receive(2)
    await eventually_true(lambda: _woken_once(ledger, "o-1"), "o-1 was woken")
    woken = await demand_becomes(handle, lambda waiting: waiting[0].woken_at is not None)
    assert ids(woken) == ["o-1", "o-2", "o-3"]

    # o-1 reserves its units and says so; the next receipt is o-2's.
    ledger.fakes.stock[ledger.sku] -= 2
    await handle.signal(ReplenishmentWorkflow.allocated, Allocated(order_id="o-1"))
    await demand_becomes(handle, lambda waiting: ids(waiting) == ["o-2", "o-3"])
    await ledger.receive(2)
    await eventually_true(lambda: _woken_once(ledger, "o-2"), "o-2 was woken")
    assert await ledger.woken("o-3") == 0

    # o-2 withdraws before reserving: the units set aside for it go to o-3 at once.
    await handle.signal(ReplenishmentWorkflow.withdraw, Withdrawal(order_id="o-2"))

    await eventually_true(lambda: _woken_once(ledger, "o-3"), "o-3 was woken")
    waiting = await demand_becomes(handle, lambda waiting: ids(waiting) == ["o-3"])
    assert waiting[0].woken_at is not None
    assert list(ledger.fakes.open_shortages) == [(ledger.sku, "o-3")]


async def test_orders_that_are_gone_or_closed_are_dropped_when_woken(ledger: Ledger) -> None:
    handle = await ledger.start()
    await handle.signal(ReplenishmentWorkflow.shortage, report("o-gone", 1))
    closed = await ledger.order("o-closed")
    await handle.signal(ReplenishmentWorkflow.shortage, report("o-closed", 1))
    await closed.terminate("ended elsewhere")
    await ledger.order("o-2")
    await handle.signal(ReplenishmentWorkflow.shortage, report("o-2", 1))

    await ledger.receive(3)

    await eventually_true(lambda: _woken_once(ledger, "o-2"), "o-2 was woken")
    waiting = await demand_becomes(handle, lambda waiting: ids(waiting) == ["o-2"])
    assert waiting[0].woken_at is not None
    assert list(ledger.fakes.open_shortages) == [(ledger.sku, "o-2")]


@pytest.fixture
async def ledger_of_its_own() -> AsyncIterator[Ledger]:
    """A ledger on a server of its own: this test skips time, which a run ended by an earlier test may stop."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=TEST_CONVERTER,
        interceptors=client_interceptors(TEST_CONVERTER),
        test_server_existing_path=str(BIN / "temporal-test-server"),
    )
    task_queue = f"ledger-{uuid.uuid4()}"
    fakes = FakeSystems()
    try:
        async with Worker(
            env.client,
            task_queue=task_queue,
            workflows=[ReplenishmentWorkflow, WaitingOrderStandIn],
            activities=fakes.activities(),
        ):
            yield Ledger(env, task_queue, fakes)
    finally:
        await env.shutdown()


async def test_continuing_as_new_keeps_woken_marks_and_undelivered_notices(ledger_of_its_own: Ledger) -> None:
    ledger = ledger_of_its_own
    ledger.fakes.fail["notify_purchasing"] = ApplicationError("purchasing answered 503", **UNAVAILABLE)
    handle = await ledger.start(max_history_events=30)
    first_run = (await handle.describe()).run_id
    await ledger.order("o-0")
    await handle.signal(ReplenishmentWorkflow.shortage, report("o-0", 1))
    await ledger.receive(1)
    await eventually_true(lambda: _woken_once(ledger, "o-0"), "o-0 was woken")
    for number in range(1, 12):
        await handle.signal(ReplenishmentWorkflow.shortage, report(f"o-{number}", 1))

    # The run continues as new between two bursts of tries, once the first bursts have failed.
    await ledger.env.sleep(timedelta(seconds=40))
    latest = replenishment_of(ledger.env.client, ledger.sku)
    for _ in range(500):
        if (await latest.describe()).run_id != first_run:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the workflow never continued as new")

    waiting = await demand_becomes(latest, lambda waiting: len(waiting) == 12)
    assert ids(waiting) == [f"o-{number}" for number in range(12)]
    assert [entry.woken_at is not None for entry in waiting] == [True] + [False] * 11
    undelivered = await latest.query(ReplenishmentWorkflow.undelivered_notices)
    assert sorted(notice.order_id for notice in undelivered) == sorted(f"o-{number}" for number in range(12))
    # The new run goes on trying them (purchasing is still down): a try for every carried notice.
    tried = ledger.fakes.calls["notify_purchasing"]
    await eventually_true(lambda: _tried_at_least(ledger, tried + 12), "the new run tried the carried notices")


async def _tried_at_least(ledger: Ledger, count: int) -> bool:
    return ledger.fakes.calls["notify_purchasing"] >= count
