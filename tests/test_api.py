"""The HTTP API for orders, carrier webhooks and health, served over real HTTP.

Real PostgreSQL and a real Temporal dev server; no worker polls the test's task
queue, so a started order workflow stays as the API left it. `api` calls with a
shop's client key, `operator` with an operator's.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from db.engine import create_engine, create_sessionmaker
from db.orders import record_order, record_status
from models.names import (
    ORDER_WORKFLOW,
    SA_CUSTOMER_ID,
    SA_ORDER_STATUS,
    SA_ORDER_TOTAL,
    SA_SKUS,
    SIGNAL_TRACKING,
    order_workflow_id,
)
from models.order import OrderRequest, OrderState, OrderStatus, TimelineEvent
from models.records import RecordOrderInput, StatusChangeInput
from models.tables import IdempotencyKeyRow, OrderRow
from security.signing import sign
from settings import Settings
from tests.builders import order_body
from tests.conftest import TEST_KEYRING
from tests.keys import CLIENT_ID, Keys, bearer
from tests.polling import NotYet, eventually
from tests.servers import running_server

Sessions = async_sessionmaker[AsyncSession]


def api_settings(database_url: str, task_queue: str) -> Settings:
    # A short wait keeps the tests quick where no worker will ever answer.
    return Settings().model_copy(
        update={
            "database_url": database_url,
            "task_queue": task_queue,
            "api_workflow_timeout_seconds": 1.0,
            "encryption_keys": TEST_KEYRING.to_json(),
        }
    )


@pytest.fixture
def temporal(dev_server_env: WorkflowEnvironment) -> Client:
    return dev_server_env.client


@pytest.fixture
async def api_url(database_url: str, task_queue: str, temporal: Client, sessionmaker: Sessions) -> AsyncIterator[str]:
    app = create_app(api_settings(database_url, task_queue), client=temporal, sessionmaker=sessionmaker)
    async with running_server(app) as base_url:
        yield base_url


@pytest.fixture
async def api(api_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=bearer(keys.client)) as http:
        yield http


@pytest.fixture
async def operator(api_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=bearer(keys.operator)) as http:
        yield http


async def workflow_runs(temporal: Client, workflow_id: str) -> int:
    """Runs ever started with this id, once visibility has caught up with at least one."""

    async def counted() -> int:
        count = (await temporal.count_workflows(f"WorkflowId = '{workflow_id}'")).count
        if not count:
            raise NotYet(f"no run of {workflow_id} is visible yet")
        return count

    return await eventually(counted, timeout=5, interval=0.05)


async def rows(sessionmaker: Sessions, table: Any) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def stored_order(
    sessionmaker: Sessions, status: OrderStatus, order_id: str | None = None, client_id: str | None = None
) -> OrderState:
    """An order record as the workflow would have written it, ending in `status`; placed by `client_id`."""
    order_id = order_id or str(uuid.uuid4())
    request = OrderRequest.model_validate(order_body())
    now = datetime.now(UTC)
    state = OrderState.received(order_id, order_workflow_id(order_id), request, now, client_id).model_copy(
        update={"status": status}
    )
    event = TimelineEvent(seq=1, at=now, status=status, actor="workflow", event=status.value)
    async with sessionmaker.begin() as session:
        await record_order(
            session,
            RecordOrderInput(
                order_id=order_id, workflow_id=state.workflow_id, request=request, received_at=now, client_id=client_id
            ),
            TEST_KEYRING,
        )
        await record_status(session, StatusChangeInput.of(state, event), TEST_KEYRING)
    return state


# POST /orders


async def test_placing_an_order_starts_its_workflow_with_summary_and_search_attributes(
    api: httpx.AsyncClient, temporal: Client, task_queue: str
) -> None:
    response = await api.post("/orders", json=order_body())

    assert response.status_code == 202
    accepted = response.json()
    order_id = accepted["order_id"]
    assert uuid.UUID(order_id).version == 4
    assert accepted == {"order_id": order_id, "status": "received", "workflow_id": f"order-{order_id}"}
    assert response.headers["location"] == f"/orders/{order_id}"

    description = await temporal.get_workflow_handle(f"order-{order_id}").describe()
    assert description.workflow_type == ORDER_WORKFLOW
    assert description.task_queue == task_queue
    assert description.status == WorkflowExecutionStatus.RUNNING
    attributes = description.typed_search_attributes
    assert attributes.get(SA_ORDER_STATUS) == "received"
    assert attributes.get(SA_CUSTOMER_ID) == "C-1"
    assert attributes.get(SA_ORDER_TOTAL) == 120.0
    assert attributes.get(SA_SKUS) == ["BOLT-7", "WIDGET-1"]
    summary = await description.static_summary()
    assert summary is not None
    assert order_id[:8] in summary
    assert "customer C-1" in summary and "2 lines" in summary and "120.00 EUR" in summary
    assert "Ada" not in summary and "@" not in summary


def _without(path: str) -> dict[str, Any]:
    body = order_body()
    section, field = path.split(".")
    del body[section][field]
    return body


def _line(**changes: Any) -> dict[str, Any]:
    return order_body(lines=[{"sku": "WIDGET-1", "quantity": 1, "unit_price": "1.00", **changes}])


MALFORMED = {
    "missing customer email": (_without("customer.email"), ["body", "customer", "email"]),
    "negative quantity": (_line(quantity=-1), ["body", "lines", 0, "quantity"]),
    "price with 3 decimals": (_line(unit_price="1.005"), ["body", "lines", 0, "unit_price"]),
    "lower-case country": (
        order_body(shipping_address={**order_body()["shipping_address"], "country": "gb"}),
        ["body", "shipping_address", "country"],
    ),
    "unknown field": (order_body(coupon="FREE"), ["body", "coupon"]),
    "101 lines": (
        order_body(lines=[{"sku": f"S-{n}", "quantity": 1, "unit_price": "1.00"} for n in range(101)]),
        ["body", "lines"],
    ),
}


@pytest.mark.parametrize("case", MALFORMED.keys())
async def test_a_malformed_order_is_refused_naming_the_field_and_nothing_is_started_or_stored(
    case: str, api: httpx.AsyncClient, temporal: Client, task_queue: str, sessionmaker: Sessions
) -> None:
    body, location = MALFORMED[case]

    response = await api.post("/orders", json=body, headers={"Idempotency-Key": f"key-{case}"})

    assert response.status_code == 422
    assert location in [error["loc"] for error in response.json()["detail"]]
    assert (await temporal.count_workflows(f"TaskQueue = '{task_queue}'")).count == 0
    assert await rows(sessionmaker, IdempotencyKeyRow) == 0
    assert await rows(sessionmaker, OrderRow) == 0


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b"{not json", "application/json"), (b"", "text/plain")],
)
async def test_a_body_that_is_not_a_json_order_is_a_422(
    content: bytes, content_type: str, api: httpx.AsyncClient, temporal: Client, task_queue: str
) -> None:
    response = await api.post("/orders", content=content, headers={"Content-Type": content_type})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"
    assert (await temporal.count_workflows(f"TaskQueue = '{task_queue}'")).count == 0


async def test_the_same_idempotency_key_and_body_return_the_same_order_and_one_workflow(
    api: httpx.AsyncClient, temporal: Client
) -> None:
    first = await api.post("/orders", json=order_body(), headers={"Idempotency-Key": "checkout-42"})
    second = await api.post("/orders", json=order_body(), headers={"Idempotency-Key": "checkout-42"})

    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert second.headers["location"] == first.headers["location"]
    assert await workflow_runs(temporal, first.json()["workflow_id"]) == 1


async def test_concurrent_requests_with_one_idempotency_key_make_one_order(
    api: httpx.AsyncClient, temporal: Client, task_queue: str
) -> None:
    responses = await asyncio.gather(
        *(api.post("/orders", json=order_body(), headers={"Idempotency-Key": "double-click"}) for _ in range(20))
    )

    assert {response.status_code for response in responses} == {202}
    order_ids = {response.json()["order_id"] for response in responses}
    assert len(order_ids) == 1
    assert await workflow_runs(temporal, order_workflow_id(order_ids.pop())) == 1
    assert (await temporal.count_workflows(f"TaskQueue = '{task_queue}'")).count == 1


async def test_an_idempotency_key_reused_for_another_order_is_refused(
    api: httpx.AsyncClient, temporal: Client, task_queue: str
) -> None:
    first = await api.post("/orders", json=order_body(), headers={"Idempotency-Key": "checkout-7"})
    other = order_body(currency="USD")

    second = await api.post("/orders", json=other, headers={"Idempotency-Key": "checkout-7"})

    assert first.status_code == 202
    assert second.status_code == 422
    assert second.json() == {
        "detail": [
            {
                "loc": ["header", "Idempotency-Key"],
                "msg": "Idempotency-Key was used with a different request",
                "type": "idempotency_conflict",
            }
        ]
    }
    assert await workflow_runs(temporal, first.json()["workflow_id"]) == 1
    assert (await temporal.count_workflows(f"TaskQueue = '{task_queue}'")).count == 1


async def test_an_idempotency_key_longer_than_255_characters_is_refused(
    api: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    response = await api.post("/orders", json=order_body(), headers={"Idempotency-Key": "k" * 256})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await rows(sessionmaker, IdempotencyKeyRow) == 0


async def test_an_idempotency_key_of_a_finished_order_answers_with_its_final_status(
    api: httpx.AsyncClient, temporal: Client, sessionmaker: Sessions
) -> None:
    first = await api.post("/orders", json=order_body(), headers={"Idempotency-Key": "checkout-9"})
    order_id = first.json()["order_id"]
    await temporal.get_workflow_handle(order_workflow_id(order_id)).terminate("test")
    await stored_order(sessionmaker, OrderStatus.CANCELLED, order_id, client_id=CLIENT_ID)

    again = await api.post("/orders", json=order_body(), headers={"Idempotency-Key": "checkout-9"})

    assert again.status_code == 202
    assert again.json() == {"order_id": order_id, "status": "cancelled", "workflow_id": order_workflow_id(order_id)}
    assert await workflow_runs(temporal, order_workflow_id(order_id)) == 1


# GET /orders/{order_id}


async def test_an_unknown_order_is_a_404(api: httpx.AsyncClient) -> None:
    response = await api.get(f"/orders/{uuid.uuid4()}")

    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


async def test_a_finished_order_is_read_from_its_record(operator: httpx.AsyncClient, sessionmaker: Sessions) -> None:
    # No workflow exists for this order: a final record is answer enough.
    stored = await stored_order(sessionmaker, OrderStatus.DELIVERED)

    response = await operator.get(f"/orders/{stored.order_id}")

    assert response.status_code == 200
    state = OrderState.model_validate(response.json())
    assert state.status == OrderStatus.DELIVERED
    assert state.total == Decimal("120.00")
    assert [event.event for event in state.timeline] == ["delivered"]


async def test_an_order_whose_workflow_cannot_answer_yet_is_a_503_to_retry(api: httpx.AsyncClient) -> None:
    accepted = (await api.post("/orders", json=order_body())).json()

    response = await api.get(f"/orders/{accepted['order_id']}")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


async def test_a_running_order_without_an_answer_shows_its_last_record(
    api: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    accepted = (await api.post("/orders", json=order_body())).json()
    await stored_order(sessionmaker, OrderStatus.ALLOCATING, accepted["order_id"], client_id=CLIENT_ID)

    response = await api.get(f"/orders/{accepted['order_id']}")

    assert response.status_code == 200
    assert response.json()["status"] == "allocating"


# GET /orders


async def test_orders_are_listed_newest_first_filtered_and_paged(
    operator: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    delivered = [await stored_order(sessionmaker, OrderStatus.DELIVERED) for _ in range(3)]
    await stored_order(sessionmaker, OrderStatus.CANCELLED)

    first = await operator.get("/orders", params={"status": "delivered", "limit": 2})
    second = await operator.get(
        "/orders", params={"status": "delivered", "limit": 2, "cursor": first.json()["next_cursor"]}
    )

    assert first.status_code == second.status_code == 200
    listed = [item["order_id"] for item in first.json()["items"] + second.json()["items"]]
    assert listed == [order.order_id for order in reversed(delivered)]
    assert second.json()["next_cursor"] is None
    by_sku = await operator.get("/orders", params={"sku": "BOLT-7", "customer_id": "C-1"})
    assert len(by_sku.json()["items"]) == 4


@pytest.mark.parametrize(
    ("params", "field"),
    [({"status": "lost"}, "status"), ({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"cursor": "x"}, "cursor")],
)
async def test_a_bad_listing_query_is_a_422(api: httpx.AsyncClient, params: dict[str, Any], field: str) -> None:
    response = await api.get("/orders", params=params)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


# Cancel and review


@pytest.mark.parametrize(
    ("action", "body"), [("cancel", {"reason": "changed my mind"}), ("review", {"decision": "approve"})]
)
async def test_acting_on_an_unknown_order_is_a_404(
    action: str, body: dict[str, str], operator: httpx.AsyncClient
) -> None:
    response = await operator.post(f"/orders/{uuid.uuid4()}/{action}", json=body)

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("action", "body"), [("cancel", {"reason": "changed my mind"}), ("review", {"decision": "reject", "note": "x"})]
)
async def test_acting_on_a_finished_order_is_a_409_naming_its_status(
    action: str, body: dict[str, str], operator: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    stored = await stored_order(sessionmaker, OrderStatus.DELIVERED)

    response = await operator.post(f"/orders/{stored.order_id}/{action}", json=body)

    assert response.status_code == 409
    assert response.json() == {"detail": "order is delivered"}


async def test_cancelling_an_order_whose_workflow_was_stopped_is_a_409(
    api: httpx.AsyncClient, temporal: Client
) -> None:
    accepted = (await api.post("/orders", json=order_body())).json()
    await temporal.get_workflow_handle(accepted["workflow_id"]).terminate("test")

    response = await api.post(f"/orders/{accepted['order_id']}/cancel", json={"reason": "too late"})

    assert response.status_code == 409
    assert response.json() == {"detail": "order is terminated"}


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [("cancel", {"reason": ""}, "reason"), ("review", {"decision": "maybe"}, "decision")],
)
async def test_a_malformed_action_is_a_422(
    action: str, body: dict[str, str], field: str, operator: httpx.AsyncClient
) -> None:
    response = await operator.post(f"/orders/{uuid.uuid4()}/{action}", json=body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]


# Carrier webhook


def tracking_event(order_id: str) -> dict[str, str]:
    return {
        "event_id": "evt-1",
        "order_id": order_id,
        "tracking_number": "TRK-1",
        "status": "in_transit",
        "at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
    }


async def post_tracking(api: httpx.AsyncClient, event: dict[str, Any]) -> httpx.Response:
    """Post a tracking event as the carrier does: signed with the carrier's webhook secret."""
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", **sign(Settings().carrier_webhook_secret, body)}
    return await api.post("/webhooks/carrier", content=body, headers=headers)


async def test_a_tracking_event_is_signalled_to_its_order(api: httpx.AsyncClient, temporal: Client) -> None:
    accepted = (await api.post("/orders", json=order_body())).json()

    response = await post_tracking(api, tracking_event(accepted["order_id"]))

    assert response.status_code == 202
    assert response.json() == {"accepted": True}
    history = await temporal.get_workflow_handle(accepted["workflow_id"]).fetch_history()
    signals = [
        event.workflow_execution_signaled_event_attributes.signal_name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert signals == [SIGNAL_TRACKING]


async def test_a_tracking_event_for_an_unknown_order_is_a_404(api: httpx.AsyncClient) -> None:
    response = await post_tracking(api, tracking_event(str(uuid.uuid4())))

    assert response.status_code == 404


async def test_a_late_tracking_event_for_a_finished_order_is_accepted(api: httpx.AsyncClient, temporal: Client) -> None:
    accepted = (await api.post("/orders", json=order_body())).json()
    await temporal.get_workflow_handle(accepted["workflow_id"]).terminate("test")

    response = await post_tracking(api, tracking_event(accepted["order_id"]))

    assert response.status_code == 202


async def test_a_malformed_tracking_event_is_a_422(api: httpx.AsyncClient) -> None:
    response = await post_tracking(api, {**tracking_event("o-1"), "status": "teleported"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "status"]


# Health


async def test_the_process_is_alive(api: httpx.AsyncClient) -> None:
    response = await api.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_ready_when_database_and_temporal_answer(database_url: str, task_queue: str, temporal: Client) -> None:
    # No sessionmaker injected: the app opens its own engine from the settings.
    app = create_app(api_settings(database_url, task_queue), client=temporal)
    async with running_server(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "temporal": "ok"}}


@pytest.fixture
async def api_without_database(
    database_url: str, task_queue: str, temporal: Client, keys: Keys
) -> AsyncIterator[httpx.AsyncClient]:
    engine = create_engine("postgresql://oms:oms@127.0.0.1:1/oms")
    app = create_app(api_settings(database_url, task_queue), client=temporal, sessionmaker=create_sessionmaker(engine))
    try:
        async with (
            running_server(app) as base_url,
            httpx.AsyncClient(base_url=base_url, headers=bearer(keys.operator)) as http,
        ):
            yield http
    finally:
        await engine.dispose()


async def test_not_ready_when_the_database_refuses_connections(api_without_database: httpx.AsyncClient) -> None:
    response = await api_without_database.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "unavailable", "temporal": "ok"}}


async def test_a_request_while_the_database_is_down_is_a_503_to_retry(api_without_database: httpx.AsyncClient) -> None:
    response = await api_without_database.get("/orders")

    assert response.status_code == 503
    assert response.json() == {"detail": "the database is unavailable"}
    assert response.headers["retry-after"] == "5"


async def test_not_ready_when_temporal_cannot_be_reached(
    database_url: str, task_queue: str, sessionmaker: Sessions
) -> None:
    unreachable = await Client.connect("127.0.0.1:1", lazy=True)
    app = create_app(api_settings(database_url, task_queue), client=unreachable, sessionmaker=sessionmaker)
    async with running_server(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "ok", "temporal": "unavailable"}}


async def test_an_order_temporal_does_not_confirm_in_time_is_a_503_and_the_same_key_later_finds_one_order(
    database_url: str, task_queue: str, sessionmaker: Sessions, temporal: Client, keys: Keys
) -> None:
    body, key = order_body(), {"Idempotency-Key": f"busy-temporal-{uuid.uuid4().hex}"}
    impatient = api_settings(database_url, task_queue).model_copy(update={"api_workflow_timeout_seconds": 0.001})
    answers = []
    for settings in (impatient, api_settings(database_url, task_queue)):
        app = create_app(settings, client=temporal, sessionmaker=sessionmaker)
        async with (
            running_server(app) as base_url,
            httpx.AsyncClient(base_url=base_url, headers=bearer(keys.client)) as http,
        ):
            answers.append(await http.post("/orders", json=body, headers=key))
    busy, again = answers

    assert busy.status_code == 503, busy.text
    assert busy.headers["retry-after"] == "5"
    assert "same Idempotency-Key" in busy.json()["detail"]
    assert again.status_code == 202, again.text
    order_id = again.json()["order_id"]
    assert order_id in busy.json()["detail"]
    async with sessionmaker() as session:
        claims = await session.scalar(select(func.count()).where(IdempotencyKeyRow.key == key["Idempotency-Key"]))
    assert claims == 1
