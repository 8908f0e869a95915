"""The carrier webhook takes only signed, recent, first-time deliveries, over real HTTP.

Real PostgreSQL and a real Temporal dev server; no worker polls the test's task queue, so the
order workflow's history shows exactly which tracking events the API signalled to it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from db.webhooks import remember_delivery
from models.names import SIGNAL_TRACKING
from models.tables import WebhookDeliveryRow
from security.api_keys import Role, create_key
from security.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from settings import Settings
from tests.servers import running_server
from tests.test_api import api_settings, order_body, tracking_event

Sessions = async_sessionmaker[AsyncSession]

SECRET = "carrier-secret-for-tests"
TOLERANCE = 300


class Carrier:
    """The API as the carrier and as an admin see it."""

    def __init__(self, http: httpx.AsyncClient, admin: dict[str, str]) -> None:
        self.http = http
        self.admin = admin

    async def place_order(self) -> dict[str, Any]:
        response = await self.http.post("/orders", json=order_body(), headers=self.admin)
        assert response.status_code == 202, response.text
        return dict(response.json())

    async def deliver(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post(
            "/webhooks/carrier", content=body, headers={"Content-Type": "application/json", **headers}
        )


@pytest.fixture
def temporal(dev_server_env: WorkflowEnvironment) -> Client:
    return dev_server_env.client


@pytest.fixture
async def carrier(
    database_url: str, task_queue: str, temporal: Client, sessionmaker: Sessions
) -> AsyncIterator[Carrier]:
    settings = api_settings(database_url, task_queue).model_copy(
        update={"carrier_webhook_secret": SECRET, "webhook_tolerance_seconds": TOLERANCE}
    )
    async with sessionmaker.begin() as session:
        key, _ = await create_key(session, name="admin", role=Role.ADMIN, hash_secret=settings.api_key_hash_secret)
    app = create_app(settings, client=temporal, sessionmaker=sessionmaker)
    async with running_server(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        yield Carrier(http, {"Authorization": f"Bearer {key}"})


async def tracking_signals(temporal: Client, workflow_id: str) -> int:
    """How many tracking events the order's workflow has been signalled."""
    history = await temporal.get_workflow_handle(workflow_id).fetch_history()
    return sum(
        1
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and event.workflow_execution_signaled_event_attributes.signal_name == SIGNAL_TRACKING
    )


def event_body(order_id: str) -> bytes:
    return json.dumps(tracking_event(order_id)).encode()


# Accepted


def rotating(body: bytes) -> dict[str, str]:
    old, current = sign("old-secret", body), sign(SECRET, body)
    return {**current, SIGNATURE_HEADER: f"{old[SIGNATURE_HEADER]}, {current[SIGNATURE_HEADER]}"}


@pytest.mark.parametrize(
    ("case", "signed"),
    [
        ("signed just now", lambda body: sign(SECRET, body)),
        ("signed four minutes ago", lambda body: sign(SECRET, body, now=time.time() - 240)),
        ("stamped by a clock four minutes fast", lambda body: sign(SECRET, body, now=time.time() + 240)),
        ("signed with an old and the current secret while the secret changes", rotating),
    ],
)
async def test_a_signed_delivery_is_accepted_and_signals_the_order(
    case: str, signed: Callable[[bytes], dict[str, str]], carrier: Carrier, temporal: Client
) -> None:
    order = await carrier.place_order()
    body = event_body(order["order_id"])

    response = await carrier.deliver(body, signed(body))

    assert response.status_code == 202, (case, response.text)
    assert response.json() == {"accepted": True}
    assert await tracking_signals(temporal, order["workflow_id"]) == 1


# Refused


def tampered_body(body: bytes) -> tuple[bytes, dict[str, str]]:
    headers = sign(SECRET, body)
    return body.replace(b"in_transit", b"delivered"), headers


def tampered_signature(body: bytes) -> tuple[bytes, dict[str, str]]:
    headers = sign(SECRET, body)
    digest = headers[SIGNATURE_HEADER].removeprefix("v1=")
    flipped = ("0" if digest[0] != "0" else "1") + digest[1:]
    return body, {**headers, SIGNATURE_HEADER: f"v1={flipped}"}


def tampered_timestamp(body: bytes) -> tuple[bytes, dict[str, str]]:
    headers = sign(SECRET, body)
    return body, {**headers, TIMESTAMP_HEADER: str(int(headers[TIMESTAMP_HEADER]) - 1)}


REFUSALS: list[tuple[str, Callable[[bytes], tuple[bytes, dict[str, str]]], str]] = [
    ("tampered body", tampered_body, "does not match"),
    ("tampered signature", tampered_signature, "does not match"),
    ("tampered timestamp", tampered_timestamp, "does not match"),
    ("wrong secret", lambda body: (body, sign("not-the-carrier-secret", body)), "does not match"),
    ("no headers", lambda body: (body, {}), "headers are required"),
    ("no signature", lambda body: (body, {TIMESTAMP_HEADER: sign(SECRET, body)[TIMESTAMP_HEADER]}), "required"),
    ("no timestamp", lambda body: (body, {SIGNATURE_HEADER: sign(SECRET, body)[SIGNATURE_HEADER]}), "required"),
    (
        "signature of another scheme",
        lambda body: (body, {**sign(SECRET, body), SIGNATURE_HEADER: "sha256=abc"}),
        "must read v1=",
    ),
    (
        "timestamp not in seconds",
        lambda body: (body, {**sign(SECRET, body), TIMESTAMP_HEADER: datetime.now(UTC).isoformat()}),
        "unix seconds",
    ),
    ("stale, six minutes old", lambda body: (body, sign(SECRET, body, now=time.time() - 360)), "s old"),
    ("stale, just over five minutes", lambda body: (body, sign(SECRET, body, now=time.time() - 302)), "s old"),
    ("from the future", lambda body: (body, sign(SECRET, body, now=time.time() + 360)), "in the future"),
]


@pytest.mark.parametrize(("case", "forge", "reason"), REFUSALS, ids=[case for case, _, _ in REFUSALS])
async def test_a_delivery_not_signed_by_the_carrier_is_a_401_and_signals_nothing(
    case: str,
    forge: Callable[[bytes], tuple[bytes, dict[str, str]]],
    reason: str,
    carrier: Carrier,
    temporal: Client,
) -> None:
    order = await carrier.place_order()
    body, headers = forge(event_body(order["order_id"]))

    response = await carrier.deliver(body, headers)

    assert response.status_code == 401, response.text
    assert response.json()["detail"].startswith("webhook refused: ")
    assert reason in response.json()["detail"]
    assert response.headers["WWW-Authenticate"] == "Webhook-Signature"
    assert await tracking_signals(temporal, order["workflow_id"]) == 0


async def test_a_replayed_delivery_is_a_401_and_the_order_is_signalled_once(carrier: Carrier, temporal: Client) -> None:
    order = await carrier.place_order()
    body = event_body(order["order_id"])
    headers = sign(SECRET, body)
    assert (await carrier.deliver(body, headers)).status_code == 202

    replayed = await carrier.deliver(body, headers)

    assert replayed.status_code == 401
    assert replayed.json() == {"detail": "webhook refused: this delivery was already received"}
    assert await tracking_signals(temporal, order["workflow_id"]) == 1


async def test_the_same_event_signed_again_later_is_a_new_delivery(carrier: Carrier, temporal: Client) -> None:
    # A carrier retrying signs afresh: a new timestamp makes a new signature, and the workflow
    # itself ignores an event it has already applied.
    order = await carrier.place_order()
    body = event_body(order["order_id"])
    assert (await carrier.deliver(body, sign(SECRET, body, now=time.time() - 5))).status_code == 202

    assert (await carrier.deliver(body, sign(SECRET, body))).status_code == 202
    assert await tracking_signals(temporal, order["workflow_id"]) == 2


async def test_an_unsigned_malformed_body_is_refused_before_it_is_read(carrier: Carrier) -> None:
    response = await carrier.deliver(b'{"not": "a tracking event"', {})

    assert response.status_code == 401
    assert "required" in response.json()["detail"]


async def test_a_signed_malformed_event_is_a_422(carrier: Carrier) -> None:
    body = json.dumps({**tracking_event("o-1"), "status": "teleported"}).encode()

    response = await carrier.deliver(body, sign(SECRET, body))

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "status"]


async def test_a_delivery_that_could_not_be_signalled_is_not_remembered(carrier: Carrier) -> None:
    # Refused for an unknown order: the carrier may send the very same delivery again and get the same answer.
    body = event_body(str(uuid.uuid4()))
    headers = sign(SECRET, body)

    assert (await carrier.deliver(body, headers)).status_code == 404
    assert (await carrier.deliver(body, headers)).status_code == 404


async def test_only_deliveries_that_could_still_be_replayed_are_remembered(
    carrier: Carrier, sessionmaker: Sessions
) -> None:
    long_ago = datetime.now(UTC) - timedelta(seconds=2 * TOLERANCE + 60)
    async with sessionmaker.begin() as session:
        await remember_delivery(session, "0" * 64, "carrier", long_ago)
    order = await carrier.place_order()
    body = event_body(order["order_id"])
    headers = sign(SECRET, body)

    assert (await carrier.deliver(body, headers)).status_code == 202

    async with sessionmaker() as session:
        remembered = set((await session.scalars(select(WebhookDeliveryRow.signature))).all())
    assert remembered == {headers[SIGNATURE_HEADER].removeprefix("v1=")}


def test_the_webhook_documents_its_body_its_signature_headers_and_its_401() -> None:
    operation = create_app(Settings()).openapi()["paths"]["/webhooks/carrier"]["post"]

    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"event_id", "order_id", "tracking_number", "status", "at"}
    assert "delivered" in schema["properties"]["status"]["enum"]
    assert {parameter["name"] for parameter in operation["parameters"]} == {TIMESTAMP_HEADER, SIGNATURE_HEADER}
    assert "401" in operation["responses"]
