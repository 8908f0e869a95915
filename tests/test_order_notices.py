"""Customer notices: one per event and round of an order, so a second backorder is not taken for a repeat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.customers import CustomerActivities
from activities.http import create_http_client
from models.integrations import NotificationInput
from models.order import OrderStatus
from standins.app import StandinConfig, create_app
from tests.servers import free_port, running_server
from tests.test_integrations import settings_for
from tests.test_order_workflow import Harness, running_harness
from workflows.order import OrderWorkflow


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Harness]:
    async with running_harness(time_skipping_env, task_queue, {"MUG-1": 10, "TEE-2": 0}) as running:
        yield running


async def test_an_order_backordered_twice_sends_two_backorder_notices(harness: Harness) -> None:
    handle = await harness.start()
    await harness.until(handle, OrderStatus.BACKORDERED)
    # Restocked, but not for this order: the next round falls short again.
    await handle.signal(OrderWorkflow.restock)
    await until_notified(harness, "backordered", times=2)
    harness.fakes.stock["TEE-2"] = 3
    await handle.signal(OrderWorkflow.restock)

    final = await harness.deliver(handle)

    assert final.status == OrderStatus.DELIVERED
    assert sorted(harness.fakes.notices.values()) == ["backordered", "backordered", "confirmed", "delivered", "shipped"]
    order_id = final.order_id
    assert sorted(key for key, event in harness.fakes.notices.items() if event == "backordered") == [
        f"{order_id}:notify:backordered",
        f"{order_id}:notify:backordered:2",
    ]


async def until_notified(harness: Harness, event: str, times: int) -> None:
    for _ in range(500):
        if harness.fakes.notifications.count(event) >= times:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{event} was notified {harness.fakes.notifications.count(event)} times, not {times}")


@pytest.fixture
async def notifications() -> AsyncIterator[tuple[CustomerActivities, httpx.AsyncClient]]:
    config = StandinConfig(tracking_delay_seconds=60, webhook_url=f"http://127.0.0.1:{free_port()}/webhooks/carrier")
    async with running_server(create_app(config)) as url:
        settings = settings_for(url)
        async with create_http_client(settings) as http, httpx.AsyncClient(base_url=url) as control:
            yield CustomerActivities(http, settings), control


async def test_the_notification_service_keeps_a_notice_for_each_backorder_round_and_drops_repeats(
    notifications: tuple[CustomerActivities, httpx.AsyncClient],
) -> None:
    customers, control = notifications
    env = ActivityEnvironment()

    for round_no in (1, 2, 2):
        await env.run(
            customers.notify_customer,
            NotificationInput(
                order_id="order-1", customer_id="cust-1", event="backordered", detail="MUG-1 short by 1", round=round_no
            ),
        )

    items: list[dict[str, Any]] = (await control.get("/_control/records/notifications")).json()["items"]
    assert sorted((item["event"], item["idempotency_key"]) for item in items) == [
        ("backordered", "order-1:notify:backordered"),
        ("backordered", "order-1:notify:backordered:2"),
    ]
    assert "round" not in items[0]
