"""Operator actions through the HTTP API against the real order workflow.

The worker runs the real OrderWorkflow with stand-in activities (tests/fakes.py),
on the dev server, so the API's answers come from the workflow's own update
validators and queries, as they would in production. A shop places and follows its
orders (`api`, a client key); an operator reviews them (`operator`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from models import names
from models.order import ReviewDecision, ReviewOutcome
from tests.fakes import FakeSystems
from tests.keys import Keys, bearer
from tests.polling import NotYet, eventually
from tests.servers import running_server
from tests.test_api import api_settings, order_body, post_tracking
from workflows.order import OrderWorkflow
from workflows.replenishment import ReplenishmentWorkflow

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def fakes() -> FakeSystems:
    return FakeSystems(stock={"WIDGET-1": 100, "BOLT-7": 100})


@pytest.fixture
async def api_url(
    database_url: str, task_queue: str, dev_server_env: WorkflowEnvironment, sessionmaker: Sessions, fakes: FakeSystems
) -> AsyncIterator[str]:
    client: Client = dev_server_env.client
    app = create_app(api_settings(database_url, task_queue), client=client, sessionmaker=sessionmaker)
    async with (
        Worker(
            client,
            task_queue=task_queue,
            workflows=[OrderWorkflow, ReplenishmentWorkflow],
            activities=fakes.activities(),
        ),
        running_server(app) as base_url,
    ):
        yield base_url


@pytest.fixture
async def api(api_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=bearer(keys.client)) as http:
        yield http


@pytest.fixture
async def operator(api_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=bearer(keys.operator)) as http:
        yield http


async def until(api: httpx.AsyncClient, order_id: str, status: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any]:
        response = await api.get(f"/orders/{order_id}")
        if response.status_code != 200 or response.json()["status"] != status:
            raise NotYet(f"order {order_id} is not {status}: {response.status_code} {response.text}")
        return dict(response.json())

    return await eventually(reached, timeout=15, interval=0.05)


async def place(api: httpx.AsyncClient) -> str:
    response = await api.post("/orders", json=order_body())
    assert response.status_code == 202
    return str(response.json()["order_id"])


async def deliver(api: httpx.AsyncClient, order_id: str) -> None:
    shipped = await until(api, order_id, "shipped")
    event = {
        "event_id": "evt-delivered",
        "order_id": order_id,
        "tracking_number": shipped["shipment"]["tracking_number"],
        "status": "delivered",
        "at": datetime.now(UTC).isoformat(),
    }
    assert (await post_tracking(api, event)).status_code == 202


async def test_an_operator_approves_an_order_waiting_for_review(
    api: httpx.AsyncClient, operator: httpx.AsyncClient, fakes: FakeSystems
) -> None:
    fakes.review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["total above the threshold"])
    order_id = await place(api)
    await until(api, order_id, "pending_review")

    response = await operator.post(f"/orders/{order_id}/review", json={"decision": "approve", "note": "known customer"})

    assert response.status_code == 200
    assert response.json()["status"] != "pending_review"
    assert response.json()["review"]["note"] == "known customer"


async def test_a_review_of_an_order_not_waiting_for_one_is_refused_with_the_reason(
    api: httpx.AsyncClient, operator: httpx.AsyncClient
) -> None:
    order_id = await place(api)
    await until(api, order_id, "shipped")

    response = await operator.post(f"/orders/{order_id}/review", json={"decision": "reject"})

    assert response.status_code == 409
    assert response.json() == {"detail": "order is shipped, not waiting for review"}


async def test_cancelling_a_shipped_order_is_refused_with_the_reason(api: httpx.AsyncClient) -> None:
    order_id = await place(api)
    await until(api, order_id, "shipped")

    response = await api.post(f"/orders/{order_id}/cancel", json={"reason": "changed my mind"})

    assert response.status_code == 409
    assert "cancellation is no longer possible" in response.json()["detail"]
    assert (await api.get(f"/orders/{order_id}")).json()["status"] == "shipped"


async def test_an_operator_cancels_an_order_waiting_for_review(
    api: httpx.AsyncClient, operator: httpx.AsyncClient, fakes: FakeSystems
) -> None:
    fakes.review = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["customer is flagged"])
    order_id = await place(api)
    await until(api, order_id, "pending_review")

    response = await operator.post(f"/orders/{order_id}/cancel", json={"reason": "customer asked"})

    assert response.status_code == 200
    assert response.json()["cancellation_reason"] == "customer asked"
    cancelled = await until(api, order_id, "cancelled")
    assert cancelled["cancellation_reason"] == "customer asked"
    assert cancelled["timeline"][-1]["actor"] == "operator"


async def test_a_delivered_order_is_read_and_cannot_be_cancelled(api: httpx.AsyncClient) -> None:
    order_id = await place(api)
    await deliver(api, order_id)
    await until(api, order_id, "delivered")

    response = await api.post(f"/orders/{order_id}/cancel", json={"reason": "too late"})

    assert response.status_code == 409
    assert response.json() == {"detail": "order is delivered"}


async def test_a_cancel_the_order_cannot_take_now_is_a_503_to_retry_not_a_server_error(
    operator: httpx.AsyncClient, dev_server_env: WorkflowEnvironment, task_queue: str
) -> None:
    # An order whose workflow cannot even read its input fails every workflow task it is given.
    order_id = str(uuid.uuid4())
    await dev_server_env.client.start_workflow(
        names.ORDER_WORKFLOW, {"order_id": 7}, id=names.order_workflow_id(order_id), task_queue=task_queue
    )

    response = await operator.post(f"/orders/{order_id}/cancel", json={"reason": "stuck"})

    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert order_id in response.json()["detail"]
