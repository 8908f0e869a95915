"""A carrier event while Temporal is slow or away: no database connection is held, and no event is lost.

Real PostgreSQL and a real Temporal dev server (no worker polls the test's task queue, so the order's
history shows exactly which tracking events reached it). The API's Temporal client goes through a TCP
proxy that can swallow everything, as a server that does not answer; its database pool has a single
connection, so one request holding it would keep every other request waiting.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from db.engine import async_url, create_sessionmaker
from security.signing import sign
from settings import Settings
from temporal_client import client_interceptors
from tests.conftest import TEST_CONVERTER
from tests.keys import Keys, bearer
from tests.servers import running_server
from tests.tcp_proxy import TcpProxy, proxied
from tests.test_api import api_settings, order_body, tracking_event
from tests.test_webhook_signatures import tracking_signals

Sessions = async_sessionmaker[AsyncSession]

# How long a request waits for a pooled connection before the API answers 503.
POOL_TIMEOUT_SECONDS = 2.0


@dataclass
class Api:
    http: httpx.AsyncClient
    proxy: TcpProxy

    async def place_order(self, keys: Keys) -> dict[str, str]:
        response = await self.http.post("/orders", json=order_body(), headers=bearer(keys.client))
        assert response.status_code == 202, response.text
        return dict(response.json())

    async def deliver(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post("/webhooks/carrier", content=body, headers=headers)


def signed_event(order_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(tracking_event(order_id)).encode()
    return body, {"Content-Type": "application/json", **sign(Settings().carrier_webhook_secret, body)}


@pytest.fixture
async def temporal_proxy(dev_server_env: WorkflowEnvironment) -> AsyncIterator[TcpProxy]:
    async with proxied(dev_server_env.client.service_client.config.target_host) as proxy:
        yield proxy


@asynccontextmanager
async def one_connection_api(
    database_url: str, task_queue: str, proxy: TcpProxy, namespace: str, workflow_timeout: float
) -> AsyncIterator[Api]:
    client = await Client.connect(
        proxy.address,
        namespace=namespace,
        data_converter=TEST_CONVERTER,
        interceptors=client_interceptors(TEST_CONVERTER),
    )
    engine = create_async_engine(
        async_url(database_url), pool_size=1, max_overflow=0, pool_timeout=POOL_TIMEOUT_SECONDS
    )
    settings = api_settings(database_url, task_queue).model_copy(
        update={"api_workflow_timeout_seconds": workflow_timeout}
    )
    app = create_app(settings, client=client, sessionmaker=create_sessionmaker(engine))
    try:
        async with running_server(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            yield Api(http, proxy)
    finally:
        await engine.dispose()


@pytest.fixture
async def patient_api(
    database_url: str, task_queue: str, temporal_proxy: TcpProxy, temporal: Client, sessionmaker: Sessions
) -> AsyncIterator[Api]:
    """Waits up to 10 s for Temporal, as the API does by default."""
    async with one_connection_api(database_url, task_queue, temporal_proxy, temporal.namespace, 10.0) as api:
        yield api


@pytest.fixture
async def impatient_api(
    database_url: str, task_queue: str, temporal_proxy: TcpProxy, temporal: Client, sessionmaker: Sessions
) -> AsyncIterator[Api]:
    """Waits 1 s for Temporal."""
    async with one_connection_api(database_url, task_queue, temporal_proxy, temporal.namespace, 1.0) as api:
        yield api


@pytest.fixture
def temporal(dev_server_env: WorkflowEnvironment) -> Client:
    return dev_server_env.client


async def test_a_carrier_event_waiting_for_temporal_keeps_no_other_request_from_the_database(
    patient_api: Api, keys: Keys, temporal: Client
) -> None:
    order = await patient_api.place_order(keys)
    body, headers = signed_event(order["order_id"])
    patient_api.proxy.black_hole()
    delivery = asyncio.create_task(patient_api.deliver(body, headers))
    await asyncio.wait_for(patient_api.proxy.swallowed.wait(), timeout=5)

    # The delivery is waiting for Temporal; the only pooled connection must be free for others.
    other = await patient_api.http.get("/orders", headers=bearer(keys.client))

    assert other.status_code == 200, other.text
    assert not delivery.done()
    patient_api.proxy.restore()
    accepted = await delivery
    assert accepted.status_code == 202, accepted.text
    assert await tracking_signals(temporal, order["workflow_id"]) == 1


async def test_a_carrier_event_temporal_does_not_take_is_a_503_and_the_carriers_retry_of_it_is_taken(
    impatient_api: Api, keys: Keys, temporal: Client
) -> None:
    order = await impatient_api.place_order(keys)
    body, headers = signed_event(order["order_id"])
    impatient_api.proxy.black_hole()

    refused = await impatient_api.deliver(body, headers)

    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "5"
    impatient_api.proxy.restore()
    # The very same delivery, byte for byte and signature for signature: not a replay, since it was never taken.
    retried = await impatient_api.deliver(body, headers)
    assert retried.status_code == 202, retried.text
    assert await tracking_signals(temporal, order["workflow_id"]) == 1
    # Taken once, it is remembered: the same delivery again is a replay.
    assert (await impatient_api.deliver(body, headers)).status_code == 401
