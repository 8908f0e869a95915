"""Bulk approve, reject and cancel through the HTTP API, on the dev server, against the real order workflow.

The worker runs the real OrderWorkflow and the real bulk job workflow and activities (which act through
the API's own order client), the real order records in PostgreSQL, and stand-ins for the outside steps
(tests/fakes.py); orders wait for review because the stand-in review says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.bulk import BulkActivities
from activities.orders import OrderRecordActivities
from api.app import create_app
from api.order_client import OrderClient
from models.bulk import BulkAction, ItemInput, ItemResult
from models.order import ReviewDecision, ReviewOutcome
from tests.builders import order_body
from tests.conftest import TEST_KEYRING
from tests.fakes import FakeSystems
from tests.keys import Keys, bearer
from tests.polling import NotYet, eventually
from tests.servers import running_server
from tests.test_api import api_settings
from workflows.bulk import BulkJobWorkflow
from workflows.order import OrderWorkflow
from workflows.replenishment import ReplenishmentWorkflow

Sessions = async_sessionmaker[AsyncSession]
MANUAL = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["total above the threshold"])


@pytest.fixture
def fakes() -> FakeSystems:
    return FakeSystems(stock={"WIDGET-1": 100, "BOLT-7": 100})


@pytest.fixture
async def api_url(
    database_url: str, task_queue: str, dev_server_env: WorkflowEnvironment, sessionmaker: Sessions, fakes: FakeSystems
) -> AsyncIterator[str]:
    client: Client = dev_server_env.client
    settings = api_settings(database_url, task_queue)
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)
    worker_settings = settings.model_copy(update={"api_workflow_timeout_seconds": 10.0})
    bulk = BulkActivities(OrderClient(client, sessionmaker, worker_settings, TEST_KEYRING))
    stand_ins = [step for step in fakes.activities() if step.__name__ not in ("record_order", "record_status")]  # type: ignore[attr-defined]
    async with (
        Worker(
            client,
            task_queue=task_queue,
            workflows=[OrderWorkflow, ReplenishmentWorkflow, BulkJobWorkflow],
            activities=[*stand_ins, records.record_order, records.record_status, bulk.act_on_order, bulk.place_order],
        ),
        running_server(create_app(settings, client=client, sessionmaker=sessionmaker)) as base_url,
    ):
        yield base_url


@dataclass
class Callers:
    shop: httpx.AsyncClient
    operator: httpx.AsyncClient


@pytest.fixture
async def callers(api_url: str, keys: Keys) -> AsyncIterator[Callers]:
    """A shop (a client key) places and follows orders; the operations desk acts on them in bulk."""
    async with (
        httpx.AsyncClient(base_url=api_url, timeout=30, headers=bearer(keys.client)) as shop,
        httpx.AsyncClient(base_url=api_url, timeout=30, headers=bearer(keys.operator)) as operator,
    ):
        yield Callers(shop, operator)


async def order_in(shop: httpx.AsyncClient, status: str, customer_id: str = "C-1") -> str:
    placed = await shop.post("/orders", json=order_body(customer={"id": customer_id}))
    assert placed.status_code == 202, placed.text
    order_id = str(placed.json()["order_id"])

    async def reached() -> None:
        response = await shop.get(f"/orders/{order_id}")
        if response.status_code != 200 or response.json()["status"] != status:
            raise NotYet(f"order {order_id}: {response.status_code} {response.text}")

    await eventually(reached, timeout=15, interval=0.05)
    return order_id


async def finished_job(operator: httpx.AsyncClient, location: str) -> dict[str, Any]:
    async def finished() -> dict[str, Any]:
        response = await operator.get(location)
        assert response.status_code == 200, response.text
        job = dict(response.json())
        if job["status"] == "running":
            raise NotYet(f"job is running: {job}")
        return job

    return await eventually(finished, timeout=30, interval=0.1)


async def start(operator: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await operator.post("/bulk/actions", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "running"
    assert response.headers["Location"] == f"/bulk/{response.json()['job_id']}"
    return str(response.headers["Location"])


def by_ref(job: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {item["ref"]: (item["outcome"], item["reason"]) for item in job["items"]}


async def test_a_bulk_approval_approves_the_orders_waiting_and_names_why_the_others_refused(
    callers: Callers, fakes: FakeSystems
) -> None:
    shop, operator = callers.shop, callers.operator
    fakes.review = MANUAL
    waiting = [await order_in(shop, "pending_review") for _ in range(3)]
    fakes.review = ReviewOutcome(decision=ReviewDecision.APPROVED)
    moving_on = await order_in(shop, "shipped")

    location = await start(
        operator, {"action": "approve", "order_ids": [*waiting, moving_on, "no-such-order"], "reason": "known shop"}
    )
    job = await finished_job(operator, location)

    assert (job["action"], job["status"], job["total"], job["done"], job["refused"], job["failed"]) == (
        "approve",
        "completed",
        5,
        3,
        2,
        0,
    )
    assert by_ref(job) == {
        **{order_id: ("done", None) for order_id in waiting},
        moving_on: ("refused", "order is shipped, not waiting for review"),
        "no-such-order": ("refused", "order no-such-order not found"),
    }
    for order_id in waiting:
        order = (await operator.get(f"/orders/{order_id}")).json()
        assert order["status"] != "pending_review"
        assert (order["review"]["decision"], order["review"]["note"]) == ("approved", "known shop")


async def test_a_bulk_rejection_by_filter_rejects_only_the_orders_the_filter_matches(
    callers: Callers, fakes: FakeSystems
) -> None:
    shop, operator = callers.shop, callers.operator
    fakes.review = MANUAL
    matched = [await order_in(shop, "pending_review", customer_id="C-fraud") for _ in range(2)]
    other = await order_in(shop, "pending_review", customer_id="C-good")

    location = await start(
        operator,
        {"action": "reject", "filter": {"status": "pending_review", "customer_id": "C-fraud"}, "reason": "fraud ring"},
    )
    job = await finished_job(operator, location)

    assert (job["total"], job["done"]) == (2, 2)
    assert set(by_ref(job)) == set(matched)
    for order_id in matched:
        assert (await operator.get(f"/orders/{order_id}")).json()["status"] == "rejected"
    assert (await operator.get(f"/orders/{other}")).json()["status"] == "pending_review"


async def test_a_bulk_cancellation_cancels_the_open_orders_and_refuses_a_closed_one(
    callers: Callers, fakes: FakeSystems
) -> None:
    shop, operator = callers.shop, callers.operator
    fakes.review = MANUAL
    waiting = [await order_in(shop, "pending_review") for _ in range(2)]
    fakes.review = ReviewOutcome(decision=ReviewDecision.REJECTED, reasons=["blocked customer"])
    rejected = await order_in(shop, "rejected")

    location = await start(operator, {"action": "cancel", "order_ids": [*waiting, rejected], "reason": "shop closed"})
    job = await finished_job(operator, location)

    assert by_ref(job) == {
        **{order_id: ("done", None) for order_id in waiting},
        rejected: ("refused", "order is rejected"),
    }
    for order_id in waiting:
        order = (await operator.get(f"/orders/{order_id}")).json()
        assert (order["status"], order["cancellation_reason"]) == ("cancelled", "shop closed")


async def test_an_approval_tried_again_after_its_answer_was_lost_is_done_not_refused(
    callers: Callers, fakes: FakeSystems, dev_server_env: WorkflowEnvironment, sessionmaker: Sessions, task_queue: str
) -> None:
    fakes.review = MANUAL
    order_id = await order_in(callers.shop, "pending_review")
    settings = api_settings("", task_queue).model_copy(update={"api_workflow_timeout_seconds": 10.0})
    items = BulkActivities(OrderClient(dev_server_env.client, sessionmaker, settings, TEST_KEYRING))
    item = ItemInput(job_id="job-1", ref=order_id, order_id=order_id, action=BulkAction.APPROVE, actor="operator")

    first = await ActivityEnvironment().run(items.act_on_order, item)
    # The same item tried again, as Temporal does when the first try's answer never reached it.
    again = await ActivityEnvironment().run(items.act_on_order, item)

    assert first == again == ItemResult(order_id=order_id)
    order = (await callers.operator.get(f"/orders/{order_id}")).json()
    assert [event["event"] for event in order["timeline"]].count("approved by operator") == 1


async def test_only_operators_start_bulk_actions_and_a_job_is_read_only_by_those_who_may(
    api_url: str, keys: Keys, callers: Callers, fakes: FakeSystems
) -> None:
    shop, operator = callers.shop, callers.operator
    fakes.review = MANUAL
    order_id = await order_in(shop, "pending_review")
    body = {"action": "approve", "order_ids": [order_id], "reason": "ok"}
    for key in (keys.purchasing, keys.client):
        async with httpx.AsyncClient(base_url=api_url, headers=bearer(key)) as caller:
            assert (await caller.post("/bulk/actions", json=body)).status_code == 403
    location = await start(operator, body)
    assert (await shop.get(location)).status_code == 404
    assert (await operator.get("/bulk/no-such-job")).status_code == 404

    both = await operator.post("/bulk/actions", json={**body, "filter": {"customer_id": "C-1"}})
    nothing = await operator.post(
        "/bulk/actions", json={"action": "cancel", "filter": {"customer_id": "nobody"}, "reason": "x"}
    )
    assert both.status_code == 422
    assert nothing.status_code == 422
    assert nothing.json()["detail"] == [
        {"loc": ["body", "filter"], "msg": "the filter matches no order", "type": "too_many_orders"}
    ]
