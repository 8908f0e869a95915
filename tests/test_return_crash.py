"""Returns survive the worker process being killed mid-refund: one refund per return at finance, stock booked once.

The worker runs as its own process, as in production (tests/test_crash_recovery.py), and is killed
with SIGKILL while a batch of returns is being refunded (finance applying each refund but its answer lost),
then started again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from models.tables import ReturnRow
from tests.stack import Stack, eventually, running_stack
from tests.test_crash_recovery import kill, worker_environment, worker_process
from tests.test_returns_api import order_body, wait_for_return

RETURNS = 4


@pytest.fixture
async def stack(
    dev_server_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    task_queue: str,
) -> AsyncIterator[Stack]:
    async with running_stack(
        dev_server_env.client, database_url, sessionmaker, task_queue, tracking_delay_seconds=0.2, with_worker=False
    ) as running:
        yield running


async def test_returns_survive_the_worker_killed_mid_refund_and_nothing_is_refunded_twice(
    stack: Stack, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    env = worker_environment(stack)
    mug, lamp = "CRASH-MUG", "CRASH-LAMP"
    await stack.count_stock(mug, 3 * RETURNS)
    await stack.count_stock(lamp, RETURNS)
    async with worker_process(env) as first:
        order_ids = [await stack.place_order(order_body(mug, lamp)) for _ in range(RETURNS)]
        for order_id in order_ids:
            await stack.wait_for_status(order_id, "delivered")
        return_ids = []
        for order_id in order_ids:
            asked = await stack.api.post(
                f"/orders/{order_id}/returns", json={"lines": [{"sku": mug, "quantity": 3, "reason": "damaged"}]}
            )
            assert asked.status_code == 202, asked.text
            return_ids.append(asked.json()["return_id"])
        for return_id in return_ids:
            await wait_for_return(stack, return_id, "in_transit")

        # Finance refunds but its answers are lost: the refunds are in flight, retried, when the worker dies.
        await stack.set_fault("finance", drop_rate=1.0, drop_after_effect=True)
        for return_id in return_ids:
            received = await stack.operator.post(
                f"/returns/{return_id}/receipt",
                json={"warehouse": "AMS", "lines": [{"sku": mug, "quantity": 3, "condition": "resellable"}]},
            )
            assert received.status_code == 200, received.text

        async def refunded_unanswered() -> None:
            refunded = {refund["return_id"] for refund in await stack.records("refunds")}
            assert refunded == set(return_ids), refunded

        await eventually(refunded_unanswered, timeout=30, interval=0.1)
        async with sessionmaker() as session:
            statuses = Counter((await session.scalars(select(ReturnRow.status))).all())
        assert statuses == {"received": RETURNS}, statuses
        await kill(first)

    await stack.clear_faults()
    async with worker_process(env):
        for return_id in return_ids:
            await wait_for_return(stack, return_id, "closed", timeout=90)

    refunds = await stack.records("refunds")
    assert Counter(refund["return_id"] for refund in refunds) == Counter(return_ids)
    assert all(refund["applied"] == 1 for refund in refunds)
    # Each return's three mugs are back on the shelf once: none of the orders' mugs remain out.
    assert (await stack.stock(mug))["on_hand"] == 3 * RETURNS
