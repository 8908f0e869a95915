"""A dependency that does not answer is a 503 with Retry-After on every route, never a 500 or a hang.

Real PostgreSQL and a real Temporal dev server (no worker polls the test's task queue). The database
fault is real: the routes' pool has one connection, which the test holds, or points at a closed
port; the guard at the door keeps a pool of its own, so every request reaches its route. Temporal's
fault is real too: the API's Temporal client talks to the dev server through a TCP proxy that can
swallow everything (a server that does not answer).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.deps import route_sessionmaker
from db.engine import async_url, create_sessionmaker
from security.signing import sign
from settings import Settings
from temporal_client import client_interceptors
from tests.conftest import TEST_CONVERTER
from tests.keys import Keys, bearer
from tests.servers import running_server
from tests.tcp_proxy import TcpProxy, proxied
from tests.test_api import api_settings, order_body, tracking_event
from tests.test_api_inventory import stock_received_signals

Sessions = async_sessionmaker[AsyncSession]

# Every route that uses the database, as (method, path, role, body); "{order}" is an order of the client's.
DATABASE_ROUTES: list[tuple[str, str, str, Any]] = [
    ("POST", "/orders", "client", order_body()),
    ("GET", "/orders", "client", None),
    ("GET", "/orders/{order}", "client", None),
    ("POST", "/orders/{order}/cancel", "client", {"reason": "changed my mind"}),
    ("POST", "/orders/{order}/review", "operator", {"decision": "approve"}),
    ("PUT", "/inventory/WIDGET-1", "admin", {"warehouse": "AMS", "on_hand": 5}),
    ("GET", "/inventory/WIDGET-1", "purchasing", None),
    ("POST", "/inventory/WIDGET-1/receipts", "purchasing", {"warehouse": "AMS", "quantity": 5}),
    ("GET", "/purchasing/shortages", "purchasing", None),
    ("GET", "/keys", "admin", None),
    ("POST", "/keys", "admin", {"name": "new desk", "role": "operator"}),
    ("POST", "/keys/0123456789abcdef/revoke", "admin", None),
    ("GET", "/webhooks/subscriptions", "admin", None),
    ("DELETE", "/webhooks/subscriptions/s-1", "admin", None),
    ("GET", "/audit", "admin", None),
    ("POST", "/webhooks/carrier", "carrier", tracking_event("{order}")),
]


@pytest.fixture
def temporal(dev_server_env: WorkflowEnvironment) -> Client:
    return dev_server_env.client


async def placed_order(http: httpx.AsyncClient, keys: Keys) -> str:
    response = await http.post("/orders", json=order_body(), headers=bearer(keys.client))
    assert response.status_code == 202, response.text
    return str(response.json()["order_id"])


async def call(http: httpx.AsyncClient, keys: Keys, route: tuple[str, str, str, Any], order_id: str) -> httpx.Response:
    method, path, role, body = route
    path = path.replace("{order}", order_id)
    headers = {"Idempotency-Key": f"key-{uuid.uuid4().hex}"}
    if role == "carrier":
        content = json.dumps({**body, "order_id": order_id}).encode()
        headers |= {"Content-Type": "application/json", **sign(Settings().carrier_webhook_secret, content)}
        return await http.request(method, path, content=content, headers=headers)
    headers |= bearer(getattr(keys, role))
    return await http.request(method, path, json=body, headers=headers)


def answers_to_retry(response: httpx.Response) -> bool:
    return response.status_code == 503 and response.headers.get("retry-after") == "5"


@asynccontextmanager
async def api_whose_routes_use(
    routes_engine: AsyncEngine, settings: Settings, client: Client, sessionmaker: Sessions
) -> AsyncIterator[httpx.AsyncClient]:
    """The API whose routes draw connections from `routes_engine`, while its guard authenticates on the good pool."""
    app = create_app(settings, client=client, sessionmaker=sessionmaker)
    routes_sessionmaker = create_sessionmaker(routes_engine)
    app.dependency_overrides[route_sessionmaker] = lambda: routes_sessionmaker
    async with running_server(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        yield http


async def test_every_route_answers_503_to_retry_when_no_pooled_connection_is_free(
    database_url: str, task_queue: str, temporal: Client, sessionmaker: Sessions, keys: Keys
) -> None:
    settings = api_settings(database_url, task_queue)
    starved = create_async_engine(async_url(database_url), pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        async with api_whose_routes_use(starved, settings, temporal, sessionmaker) as http:
            order_id = await placed_order(http, keys)
            # The one connection of the routes' pool is busy for as long as the test holds it.
            async with starved.connect() as held:
                await held.execute(text("SELECT 1"))
                answers = {
                    f"{route[0]} {route[1]}": await call(http, keys, route, order_id) for route in DATABASE_ROUTES
                }
    finally:
        await starved.dispose()

    wrong = {
        route: (answer.status_code, answer.text) for route, answer in answers.items() if not answers_to_retry(answer)
    }
    assert wrong == {}
    assert {answer.json()["detail"] for answer in answers.values()} == {"the database is unavailable"}


async def test_every_route_answers_503_to_retry_when_the_database_refuses_connections(
    database_url: str, task_queue: str, temporal: Client, sessionmaker: Sessions, keys: Keys
) -> None:
    settings = api_settings(database_url, task_queue)
    # Placed through an API on the good pool, so that the order routes have a workflow to ask.
    order_id = await placed_order_on(sessionmaker, settings, temporal, keys)
    closed = create_async_engine(async_url("postgresql://oms:oms@127.0.0.1:1/oms"))
    try:
        async with api_whose_routes_use(closed, settings, temporal, sessionmaker) as http:
            routes = [*DATABASE_ROUTES, ("GET", "/readyz", "operator", None)]
            answers = {f"{route[0]} {route[1]}": await call(http, keys, route, order_id) for route in routes}
    finally:
        await closed.dispose()

    wrong = {
        route: (answer.status_code, answer.text) for route, answer in answers.items() if not answers_to_retry(answer)
    }
    assert wrong == {}


async def placed_order_on(sessionmaker: Sessions, settings: Settings, client: Client, keys: Keys) -> str:
    app = create_app(settings, client=client, sessionmaker=sessionmaker)
    async with running_server(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        return await placed_order(http, keys)


# Temporal not answering


@pytest.fixture
async def temporal_proxy(dev_server_env: WorkflowEnvironment) -> AsyncIterator[TcpProxy]:
    async with proxied(dev_server_env.client.service_client.config.target_host) as proxy:
        yield proxy


@pytest.fixture
async def proxied_temporal(temporal_proxy: TcpProxy, temporal: Client) -> Client:
    """A client of the dev server, as the API's own is, through the proxy."""
    return await Client.connect(
        temporal_proxy.address,
        namespace=temporal.namespace,
        data_converter=TEST_CONVERTER,
        interceptors=client_interceptors(TEST_CONVERTER),
    )


@pytest.fixture
async def api(
    database_url: str, task_queue: str, proxied_temporal: Client, sessionmaker: Sessions
) -> AsyncIterator[httpx.AsyncClient]:
    # A call to Temporal waits one second at most (api_settings).
    app = create_app(api_settings(database_url, task_queue), client=proxied_temporal, sessionmaker=sessionmaker)
    # Long enough to tell a hang from an answer.
    async with running_server(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        yield http


TEMPORAL_ROUTES: list[tuple[str, str, str, Any]] = [
    ("POST", "/orders", "client", order_body()),
    ("GET", "/orders/{order}", "client", None),
    ("POST", "/orders/{order}/cancel", "client", {"reason": "changed my mind"}),
    ("POST", "/orders/{order}/review", "operator", {"decision": "approve"}),
    ("POST", "/inventory/WIDGET-1/receipts", "purchasing", {"warehouse": "AMS", "quantity": 5}),
    ("POST", "/webhooks/carrier", "carrier", tracking_event("{order}")),
    # The readiness probe says which dependency is down, with the same Retry-After.
    ("GET", "/readyz", "operator", None),
]


async def test_every_route_answers_503_to_retry_when_temporal_does_not_answer(
    api: httpx.AsyncClient, temporal_proxy: TcpProxy, keys: Keys
) -> None:
    order_id = await placed_order(api, keys)
    await api.put("/inventory/WIDGET-1", json={"warehouse": "AMS", "on_hand": 0}, headers=bearer(keys.admin))
    temporal_proxy.black_hole()

    answers = {f"{route[0]} {route[1]}": await call(api, keys, route, order_id) for route in TEMPORAL_ROUTES}

    wrong = {
        route: (answer.status_code, answer.text) for route, answer in answers.items() if not answers_to_retry(answer)
    }
    assert wrong == {}


# Stock receipts


async def test_a_receipt_temporal_does_not_take_is_booked_and_a_503_naming_the_receipt_to_send_again(
    api: httpx.AsyncClient, temporal_proxy: TcpProxy, temporal: Client, keys: Keys
) -> None:
    sku = f"WIDGET-{uuid.uuid4().hex[:8]}"
    admin, purchasing = bearer(keys.admin), bearer(keys.purchasing)
    await api.put(f"/inventory/{sku}", json={"warehouse": "AMS", "on_hand": 2}, headers=admin)
    receipt = {"warehouse": "AMS", "quantity": 5}
    temporal_proxy.black_hole()

    # No Idempotency-Key: the answer names the receipt id the API gave the delivery.
    refused = await api.post(f"/inventory/{sku}/receipts", json=receipt, headers=purchasing)

    assert answers_to_retry(refused), refused.text
    detail = refused.json()["detail"]
    assert "is booked" in detail
    receipt_id = detail.rsplit("Idempotency-Key: ", 1)[1].split(",", 1)[0]
    assert (await api.get(f"/inventory/{sku}", headers=purchasing)).json()["on_hand"] == 7

    temporal_proxy.restore()
    again = await api.post(
        f"/inventory/{sku}/receipts", json=receipt, headers={**purchasing, "Idempotency-Key": receipt_id}
    )

    assert again.status_code == 200, again.text
    assert again.json()["on_hand"] == 7
    assert [signal.receipt_id for signal in await stock_received_signals(temporal, sku)] == [receipt_id]
