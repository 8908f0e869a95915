"""Outbound webhooks: order events to subscribers and shortage notices to purchasing, signed.

The whole stack runs (tests/stack.py): orders go through the real worker, whose dispatcher sends
order events to a subscriber receiver on loopback (allow-listed for the test) over real HTTP.
The receiver checks every signature with the secret its subscription was given.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from db.engine import create_engine, create_sessionmaker
from db.migrate import upgrade
from db.webhooks import create_subscription, enqueue_order_event
from models.order import OrderStatus, TimelineEvent
from models.tables import WebhookOutboxRow
from security.api_keys import Role, create_key
from security.signing import ID_HEADER, SignatureError, verify
from settings import Settings
from tests import builders
from tests.builders import AMSTERDAM, line
from tests.conftest import TEST_KEYRING
from tests.servers import running_server
from tests.stack import NotYet, Stack, eventually, running_stack
from webhook_dispatcher import WebhookDispatcher

Sessions = async_sessionmaker[AsyncSession]

# Quick retries, so a test sees a failed delivery tried again within a second or so.
FAST_WEBHOOKS: dict[str, Any] = {
    "webhook_allowed_hosts": ["127.0.0.1"],
    "webhook_retry_seconds": 0.2,
    "webhook_retry_max_seconds": 1.0,
    "webhook_poll_seconds": 0.1,
}
PERSONAL = ("Ada Lovelace", "ada@example.com", "+31 20 555 0100", "Keizersgracht")


@dataclass
class Received:
    name: str
    delivery_id: str
    signed: bool
    payload: dict[str, Any]
    answered: int


@dataclass
class Subscriber:
    """Receivers of order events, one per path `/<name>`, each with its subscription's secret."""

    secrets: dict[str, str] = field(default_factory=dict)
    # Attempts still to answer 500 to, by receiver.
    failures: dict[str, int] = field(default_factory=dict)
    # Receivers that answer 307 to this URL.
    redirects: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{name}")
        async def receive(name: str, request: Request) -> Response:
            body = await request.body()
            try:
                verify(self.secrets.get(name, ""), request.headers, body, tolerance_seconds=300)
                signed = True
            except SignatureError:
                signed = False
            answer: Response = Response(status_code=204)
            if self.failures.get(name, 0) > 0:
                self.failures[name] -= 1
                answer = Response(status_code=500)
            elif name in self.redirects:
                answer = RedirectResponse(self.redirects[name], status_code=307)
            self.received.append(
                Received(name, request.headers.get(ID_HEADER, ""), signed, json.loads(body), answer.status_code)
            )
            return answer

        return app

    def taken(self, name: str) -> list[Received]:
        """What the receiver accepted (answered 2xx)."""
        return [item for item in self.received if item.name == name and 200 <= item.answered < 300]

    def attempts(self, name: str) -> list[Received]:
        return [item for item in self.received if item.name == name]


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    subscriber = Subscriber()
    async with running_server(subscriber.app()) as url:
        subscriber.url = url
        yield subscriber


StackFactory = Callable[..., AbstractAsyncContextManager[Stack]]


@pytest.fixture
def stack_with(
    dev_server_env: WorkflowEnvironment, database_url: str, sessionmaker: Sessions, task_queue: str
) -> StackFactory:
    @asynccontextmanager
    async def start(**changes: Any) -> AsyncIterator[Stack]:
        settings = {**FAST_WEBHOOKS, **changes}
        async with running_stack(
            dev_server_env.client, database_url, sessionmaker, task_queue, settings=settings
        ) as stack:
            yield stack

    return start


@dataclass(frozen=True)
class Admin:
    """The API as an admin uses it to manage subscriptions."""

    stack: Stack
    headers: dict[str, str]

    @classmethod
    async def of(cls, stack: Stack) -> Admin:
        async with stack.sessionmaker.begin() as session:
            key, _ = await create_key(
                session, name="admin", role=Role.ADMIN, hash_secret=stack.settings.api_key_hash_secret
            )
        return cls(stack, {"Authorization": f"Bearer {key}"})

    async def subscribe(self, subscriber: Subscriber, name: str, events: list[str] | None = None) -> str:
        """Subscribe receiver `name`, giving it the secret; returns the subscription id."""
        response = await self.stack.api.post(
            "/webhooks/subscriptions",
            json={"url": f"{subscriber.url}/{name}", "events": events or []},
            headers=self.headers,
        )
        assert response.status_code == 201, response.text
        subscriber.secrets[name] = response.json()["secret"]
        return str(response.json()["subscription_id"])

    async def unsubscribe(self, subscription_id: str) -> None:
        response = await self.stack.api.delete(f"/webhooks/subscriptions/{subscription_id}", headers=self.headers)
        assert response.status_code == 204, response.text


def order_body(sku: str) -> dict[str, Any]:
    return builders.order_body(
        lines=[line(sku, 1, "10.00")],
        customer={"id": "cust-hooks", "name": PERSONAL[0], "email": PERSONAL[1], "phone": PERSONAL[2]},
        address={**AMSTERDAM, "name": PERSONAL[0], "line1": f"{PERSONAL[3]} 1"},
    )


async def place_stocked_order(stack: Stack) -> str:
    sku = f"HOOK-{uuid.uuid4().hex[:8].upper()}"
    await stack.count_stock(sku, 5)
    return await stack.place_order(order_body(sku))


async def outbox(sessionmaker: Sessions, order_id: str) -> list[WebhookOutboxRow]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(WebhookOutboxRow).where(WebhookOutboxRow.order_id == order_id).order_by(WebhookOutboxRow.id)
        )
        return list(rows)


async def marked_delivered(sessionmaker: Sessions, order_id: str) -> list[WebhookOutboxRow]:
    """The order's outbox rows once the dispatcher has marked each delivered (it does so after the answer)."""
    rows = await outbox(sessionmaker, order_id)
    if any(row.delivered_at is None for row in rows):
        raise NotYet("the dispatcher has not marked every delivery yet")
    return rows


def entries(order: dict[str, Any], statuses: set[str] | None = None) -> list[tuple[int, str, str]]:
    return [
        (event["seq"], event["status"], event["event"])
        for event in order["timeline"]
        if statuses is None or event["status"] in statuses
    ]


def as_entries(received: list[Received]) -> list[tuple[int, str, str]]:
    return sorted((item.payload["seq"], item.payload["status"], item.payload["event"]) for item in received)


async def until_taken(subscriber: Subscriber, name: str, count: int, timeout: float = 30) -> list[Received]:
    async def taken() -> list[Received]:
        items = subscriber.taken(name)
        if len(items) < count:
            raise NotYet(f"{name} has taken {len(items)} of {count} events")
        return items

    return await eventually(taken, timeout=timeout)


# Order events


async def test_a_subscriber_gets_each_status_change_of_an_order_once_signed(
    stack_with: StackFactory, subscriber: Subscriber
) -> None:
    async with stack_with() as stack:
        admin = await Admin.of(stack)
        await admin.subscribe(subscriber, "everything")
        await admin.subscribe(subscriber, "shipping", ["shipped", "delivered"])
        await admin.unsubscribe(await admin.subscribe(subscriber, "unsubscribed"))

        order_id = await place_stocked_order(stack)
        order = await stack.wait_for_status(order_id, "delivered")
        timeline, shipping = entries(order), entries(order, {"shipped", "delivered"})
        everything = await until_taken(subscriber, "everything", len(timeline))
        await until_taken(subscriber, "shipping", len(shipping))
        rows = await eventually(lambda: marked_delivered(stack.sessionmaker, order_id), timeout=30)

    assert as_entries(everything) == timeline
    assert {"received", "allocating", "fulfilling", "shipped", "delivered"} <= {status for _, status, _ in timeline}
    assert as_entries(subscriber.taken("shipping")) == shipping
    # Exactly once: one attempt per event, each with its own delivery id, and every row marked delivered.
    assert len(subscriber.attempts("everything")) == len(timeline)
    assert len({item.delivery_id for item in everything}) == len(timeline)
    assert len(rows) == len(timeline) + len(shipping)
    assert all(row.delivered_at is not None and row.attempts == 1 and row.last_error is None for row in rows)
    assert all(item.signed for item in subscriber.received)
    assert subscriber.attempts("unsubscribed") == []
    for item in subscriber.received:
        assert set(item.payload) == {"order_id", "status", "seq", "at", "event"}
        assert item.payload["order_id"] == order_id
        assert not any(value in json.dumps(item.payload) for value in PERSONAL)


async def test_a_subscriber_answering_500_at_first_gets_the_event_later_and_the_order_does_not_wait(
    stack_with: StackFactory, subscriber: Subscriber
) -> None:
    subscriber.failures["flaky"] = 3
    async with stack_with() as stack:
        await (await Admin.of(stack)).subscribe(subscriber, "flaky", ["received"])

        order_id = await place_stocked_order(stack)
        order = await stack.wait_for_status(order_id, "delivered")
        [taken] = await until_taken(subscriber, "flaky", 1)
        [row] = await outbox(stack.sessionmaker, order_id)

    attempts = subscriber.attempts("flaky")
    assert [item.answered for item in attempts] == [500, 500, 500, 204]
    # Every attempt is the same delivery, signed afresh.
    assert {item.delivery_id for item in attempts} == {taken.delivery_id}
    assert all(item.signed for item in attempts)
    assert (taken.payload["seq"], taken.payload["status"]) == (1, "received")
    assert (row.attempts, row.delivered_at is not None, row.last_error) == (4, True, None)
    assert order["status"] == "delivered"


async def test_a_redirect_is_never_followed_and_the_event_is_given_up_keeping_the_error(
    stack_with: StackFactory, subscriber: Subscriber, sessionmaker: Sessions
) -> None:
    subscriber.redirects["moved"] = f"{subscriber.url}/target"
    async with stack_with(webhook_delivery_attempts=2) as stack:
        await (await Admin.of(stack)).subscribe(subscriber, "moved", ["received"])

        order_id = await place_stocked_order(stack)
        await stack.wait_for_status(order_id, "delivered")

        async def given_up() -> WebhookOutboxRow:
            [row] = await outbox(sessionmaker, order_id)
            if row.attempts < 2 or row.last_error is None:
                raise NotYet(f"{row.attempts} attempts so far")
            return row

        row = await eventually(given_up, timeout=30)
        # Given up: no third attempt comes.
        await asyncio.sleep(1.0)

    assert [item.answered for item in subscriber.attempts("moved")] == [307, 307]
    assert subscriber.attempts("target") == []
    assert (row.attempts, row.delivered_at) == (2, None)
    assert row.last_error == "answered 307, a redirect, which is never followed"


# Purchasing notices


async def test_shortage_notices_reach_purchasing_signed_with_the_purchasing_secret(stack_with: StackFactory) -> None:
    sku = f"HOOK-SHORT-{uuid.uuid4().hex[:8].upper()}"
    async with stack_with(purchasing_webhook_secret="purchasing-secret-for-tests") as stack:
        await stack.count_stock(sku, 0)
        order_id = await stack.place_order(order_body(sku))
        await stack.wait_for_status(order_id, "backordered")

        async def purchasing_told() -> list[dict[str, Any]]:
            notices = [notice for notice in await stack.records("shortages") if notice["sku"] == sku]
            if not notices:
                raise NotYet("purchasing has not been told")
            return notices

        notices = await eventually(purchasing_told, timeout=30)
        cancelled = await stack.api.post(f"/orders/{order_id}/cancel", json={"reason": "test over"})
        assert cancelled.status_code == 200, cancelled.text

    assert [(notice["order_id"], notice["signature_valid"]) for notice in notices] == [(order_id, True)]
    assert notices[0]["signature_problem"] is None


# The dispatcher on its own


async def deliver_with_dispatchers(
    sessionmaker: Sessions, subscriber: Subscriber, dispatchers: int, events: int
) -> list[Received]:
    """Enqueue `events` order events for one subscription and let `dispatchers` dispatchers deliver them."""
    async with sessionmaker.begin() as session:
        subscription = await create_subscription(session, TEST_KEYRING, f"{subscriber.url}/shared", [])
        for seq in range(1, events + 1):
            entry = TimelineEvent(seq=seq, at=datetime.now(UTC), status=OrderStatus.RECEIVED, actor="test", event="e")
            await enqueue_order_event(session, "order-shared", entry, version=1)
    subscriber.secrets["shared"] = subscription.secret
    settings = Settings().model_copy(update={**FAST_WEBHOOKS, "webhook_batch_size": 5})
    running = [WebhookDispatcher(sessionmaker, settings, TEST_KEYRING) for _ in range(dispatchers)]
    async with AsyncExitStack() as stack:
        for dispatcher in running:
            await stack.enter_async_context(dispatcher.running())
        return await until_taken(subscriber, "shared", events)


async def test_dispatchers_sharing_the_outbox_send_each_event_once(
    sessionmaker: Sessions, subscriber: Subscriber
) -> None:
    taken = await deliver_with_dispatchers(sessionmaker, subscriber, dispatchers=3, events=30)
    await asyncio.sleep(0.5)

    assert sorted(item.payload["seq"] for item in subscriber.attempts("shared")) == list(range(1, 31))
    assert len({item.delivery_id for item in taken}) == 30
    assert all(item.signed for item in taken)


@pytest.fixture
async def sqlite_sessionmaker(tmp_path: Path) -> AsyncIterator[Sessions]:
    url = f"sqlite:///{tmp_path}/webhooks.sqlite3"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def test_the_dispatcher_works_on_sqlite_too(sqlite_sessionmaker: Sessions, subscriber: Subscriber) -> None:
    taken = await deliver_with_dispatchers(sqlite_sessionmaker, subscriber, dispatchers=2, events=6)
    await asyncio.sleep(0.5)

    assert sorted(item.payload["seq"] for item in subscriber.attempts("shared")) == list(range(1, 7))
    assert all(item.signed for item in taken)
