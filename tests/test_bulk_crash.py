"""An import survives its worker process being killed mid-job: every order is started exactly once.

The worker runs as its own process, as in production (tests/test_crash_recovery.py), two items at a
time, and is killed with SIGKILL once part of the import is placed; a new worker carries the job on.
Every order waits for review (a manual-review threshold of one cent), so the orders stay cheap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from models.tables import IdempotencyKeyRow
from tests.builders import order_body
from tests.keys import CLIENT_ID
from tests.polling import NotYet, eventually
from tests.stack import Stack, running_stack
from tests.test_crash_recovery import kill, worker_environment, worker_process

ORDERS = 24


@pytest.fixture
async def stack(
    dev_server_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    task_queue: str,
) -> AsyncIterator[Stack]:
    async with running_stack(
        dev_server_env.client, database_url, sessionmaker, task_queue, with_worker=False
    ) as running:
        yield running


async def test_an_import_whose_worker_is_killed_mid_job_starts_every_order_exactly_once(
    stack: Stack, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    env = {**worker_environment(stack), "OMS_BULK_CONCURRENCY": "2", "OMS_REVIEW_MANUAL_THRESHOLD": "0.01"}
    refs = [f"PO-{n}" for n in range(ORDERS)]
    body = {"orders": [{**order_body(customer={"id": f"crash-{ref}"}), "external_ref": ref} for ref in refs]}

    async def keys_claimed() -> int:
        async with sessionmaker() as session:
            statement = select(func.count()).where(IdempotencyKeyRow.owner == CLIENT_ID)
            return int(await session.scalar(statement) or 0)

    async with worker_process(env) as first:
        accepted = await stack.api.post("/bulk/orders", json=body)
        assert accepted.status_code == 202, accepted.text

        async def part_way() -> None:
            claimed = await keys_claimed()
            if not 4 <= claimed < ORDERS // 2:
                raise NotYet(f"{claimed} orders placed")

        await eventually(part_way, timeout=60, interval=0.05)
        await kill(first)

    async with worker_process(env):

        async def finished() -> dict[str, object]:
            response = await stack.api.get(accepted.headers["Location"], params={"limit": 1000})
            assert response.status_code == 200, response.text
            job = dict(response.json())
            if job["status"] == "running":
                raise NotYet(f"{job['done']} of {job['total']} done")
            return job

        job = await eventually(finished, timeout=120, interval=0.5)

    assert (job["status"], job["done"], job["failed"]) == ("completed", ORDERS, 0)
    items = job["items"]
    assert isinstance(items, list)
    order_ids = [item["order_id"] for item in items]
    assert [item["ref"] for item in items] == refs
    assert len(set(order_ids)) == ORDERS
    assert await keys_claimed() == ORDERS
    # Temporal ran one order workflow per order: none was started a second time under another id.
    query = f"WorkflowType = 'OrderWorkflow' AND TaskQueue = '{stack.settings.task_queue}'"

    async def started() -> Counter[str]:
        found = Counter([execution.id async for execution in stack.temporal.list_workflows(query)])
        if sum(found.values()) < ORDERS:
            raise NotYet(f"{sum(found.values())} order workflows listed")
        return found

    assert await eventually(started, timeout=30) == Counter(f"order-{order_id}" for order_id in order_ids)
