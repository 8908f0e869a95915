"""Orders survive the worker process being killed mid-flight, and nothing is done twice.

The worker runs as its own process (`python worker.py`, as in production) and is
killed with SIGKILL twice while a batch of orders is being allocated and
settled, then started again. Every order must still be delivered, with exactly
one invoice and one booking at the outside systems and the stock booked once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from models.names import SIGNAL_CANCEL
from models.order import CancelCommand
from models.tables import OrderRow, ReservationRow
from tests import builders
from tests.builders import AMSTERDAM, line
from tests.stack import OUTSIDE_SYSTEMS, Stack, eventually, running_stack

ROOT = Path(__file__).resolve().parent.parent
ORDERS = 24
SKU = "CRASH-1"
STOCK = 500


@asynccontextmanager
async def worker_process(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python worker.py` as production runs it; stopped with SIGTERM on exit unless the test killed it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "worker.py", cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            # Awaited, not blocked on: the stand-ins serving its last calls run in this event loop.
            await asyncio.wait_for(process.wait(), timeout=30)


async def kill(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGKILL)
    await process.wait()


def worker_environment(stack: Stack) -> dict[str, str]:
    """What a worker process needs to join the stack: the same server, database, task queue and outside systems."""
    settings = stack.settings
    return {
        **os.environ,
        "OMS_TEMPORAL_ADDRESS": stack.temporal.service_client.config.target_host,
        "DATABASE_URL": settings.database_url,
        "OMS_TASK_QUEUE": settings.task_queue,
        "OMS_ENCRYPTION_KEYS": settings.encryption_keys or "",
        "OMS_LOG_LEVEL": "WARNING",
        # No metrics server: its port would be taken by a worker of another test run on this machine.
        "OMS_WORKER_METRICS_ADDRESS": "",
        **{f"OMS_{system.upper()}_URL": getattr(settings, f"{system}_url") for system in OUTSIDE_SYSTEMS},
    }


def order_body(number: int) -> dict[str, object]:
    return builders.order_body(
        lines=[line(SKU, 2, "9.99")],
        customer={"id": f"crash-{number}", "name": "Crash Test", "email": "c@example.com", "phone": "+31201234567"},
        address={**AMSTERDAM, "name": "Crash Test", "line1": "Damrak 1", "postal_code": "1012LG"},
    )


@pytest.fixture
async def stack(
    dev_server_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    task_queue: str,
) -> AsyncIterator[Stack]:
    async with running_stack(
        dev_server_env.client, database_url, sessionmaker, task_queue, tracking_delay_seconds=0.3, with_worker=False
    ) as running:
        yield running


async def test_orders_survive_the_worker_being_killed_twice_and_nothing_happens_twice(
    stack: Stack, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    env = worker_environment(stack)
    await stack.count_stock(SKU, STOCK)
    # Slow settlement keeps orders in flight when the worker dies.
    await stack.set_fault("finance", latency_ms=1500)
    async with worker_process(env) as first:
        order_ids = await asyncio.gather(*(stack.place_order(order_body(n)) for n in range(ORDERS)))

        async def settling() -> None:
            # The order rows the workflows write as they go; a query would wait for the busy workflow task.
            async with sessionmaker() as session:
                statuses = set((await session.scalars(select(OrderRow.status))).all())
            assert "fulfilling" in statuses, statuses

        # Killed part way through: orders are being settled, none has gone past it unnoticed.
        await eventually(settling, timeout=60, interval=0.2)
        await kill(first)
    async with worker_process(env) as second:
        await asyncio.sleep(4.0)
        await kill(second)
    await stack.clear_faults()
    async with worker_process(env):
        delivered = await asyncio.gather(
            *(stack.wait_for_status(order_id, "delivered", timeout=150) for order_id in order_ids)
        )

    assert {order["status"] for order in delivered} == {"delivered"}
    invoices = await stack.records("invoices")
    bookings = await stack.records("bookings")
    mine = set(order_ids)
    assert sorted(i["order_id"] for i in invoices if i["order_id"] in mine) == sorted(order_ids)
    confirmed = [b for b in bookings if b["reference"] in mine and b["status"] != "cancelled"]
    assert sorted(b["reference"] for b in confirmed) == sorted(order_ids)
    assert {record["applied"] for record in invoices + bookings} == {1}
    stock = await stack.stock(SKU)
    assert (stock["on_hand"], stock["reserved"]) == (STOCK - 2 * ORDERS, 0)

    async def committed_reservations() -> int:
        async with sessionmaker() as session:
            statement = select(func.count()).where(ReservationRow.state == "committed")
            return int(await session.scalar(statement) or 0)

    assert await eventually(committed_reservations, timeout=5) == ORDERS


async def killed_mid_order(stack: Stack, env: dict[str, str], slow: str, done: Callable[[str], Awaitable[None]]) -> str:
    """An order whose worker was killed once `done` held, with the outside system `slow` holding its workflow task open.

    Whatever the order did in that task happened in the outside world and was never written to history.
    """
    await stack.count_stock(SKU, STOCK)
    await stack.set_fault(slow, latency_ms=8000)
    async with worker_process(env) as worker:
        order_id = await stack.place_order(order_body(0))
        await eventually(lambda: done(order_id), timeout=60)
        await kill(worker)
    return order_id


async def cancel_while_no_worker_runs(stack: Stack, env: dict[str, str], order_id: str) -> dict[str, Any]:
    """An operator cancels from the Temporal UI (the cancel_order signal); then a new worker takes the order on."""
    handle = stack.temporal.get_workflow_handle(f"order-{order_id}")
    await handle.signal(SIGNAL_CANCEL, CancelCommand(reason="customer called", actor="operator"))
    await stack.clear_faults()
    async with worker_process(env):
        return await stack.wait_for_status(order_id, "cancelled", timeout=90)


async def test_stock_a_killed_worker_reserved_is_given_back_when_the_order_is_cancelled_before_a_new_worker_runs_it(
    stack: Stack,
) -> None:
    env = worker_environment(stack)

    async def reserved(order_id: str) -> None:
        assert (await stack.stock(SKU))["reserved"] == 2

    # A slow carrier holds the order's first workflow task open after its stock is reserved.
    order_id = await killed_mid_order(stack, env, "carrier", reserved)
    cancelled = await cancel_while_no_worker_runs(stack, env, order_id)

    assert cancelled["status"] == "cancelled"
    stock = await stack.stock(SKU)
    assert (stock["on_hand"], stock["reserved"]) == (STOCK, 0)


async def test_a_cancel_that_arrives_while_no_worker_runs_undoes_what_the_lost_workflow_task_did(stack: Stack) -> None:
    env = worker_environment(stack)

    async def drafted(order_id: str) -> None:
        assert (await stack.stock(SKU))["reserved"] == 2
        assert [b for b in await stack.records("bookings") if b["reference"] == order_id]

    # A slow notification sink holds open the workflow task that reserved the stock and drafted the
    # booking: the worker dies with both done in the outside world and neither written to history.
    order_id = await killed_mid_order(stack, env, "notifications", drafted)
    cancelled = await cancel_while_no_worker_runs(stack, env, order_id)

    bookings = [b for b in await stack.records("bookings") if b["reference"] == order_id]
    assert [b["status"] for b in bookings] == ["cancelled"]
    stock = await stack.stock(SKU)
    assert (stock["on_hand"], stock["reserved"]) == (STOCK, 0)
    # The order's record is the run that went on: the lost task's entries were replaced.
    timeline = [(event["status"], event["event"]) for event in cancelled["timeline"]]
    assert "fulfilling" not in {status for status, _ in timeline}, timeline
    assert timeline[-1] == ("cancelled", "order cancelled"), timeline
