"""Notices to purchasing: one Idempotency-Key per order, SKU, allocation round and quantity, and every try's
outcome on the shortage purchasing reads, against real PostgreSQL and the stand-in inbox over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.http import create_http_client
from activities.purchasing import PurchasingActivities, notice_key
from db.metrics import read_state
from db.shortages import open_shortages, resolve_shortages
from models.integrations import PurchasingNotice
from models.purchasing import NoticeStatus, ShortageNotice, ShortageRecordInput
from settings import Settings
from standins.app import create_app
from tests.servers import running_server

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]


class Inbox:
    def __init__(self, activities: PurchasingActivities, control: httpx.AsyncClient) -> None:
        self.activities = activities
        self.control = control

    async def notices(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.control.get("/_control/records/shortages")).json()["items"]
        return items

    async def fail(self, status: int) -> None:
        fault = {"service": "purchasing", "failure_rate": 1.0, "failure_status": status}
        assert (await self.control.put("/_control/faults", json=fault)).status_code == 200

    async def heal(self) -> None:
        assert (await self.control.delete("/_control/faults")).status_code == 204


@pytest.fixture
async def inbox(sessionmaker: Sessions) -> AsyncIterator[Inbox]:
    async with running_server(create_app()) as url:
        settings = Settings(purchasing_url=f"{url}/purchasing")
        async with create_http_client(settings) as http, httpx.AsyncClient(base_url=url) as control:
            yield Inbox(PurchasingActivities(sessionmaker, http, None, settings), control)  # type: ignore[arg-type]


def notice(round: int | None, quantity: int = 3, outstanding: int = 3) -> PurchasingNotice:
    return PurchasingNotice(
        sku="WIDGET", order_id="order-1", quantity=quantity, outstanding_quantity=outstanding, round=round
    )


async def record(inbox: Inbox, sent: PurchasingNotice) -> None:
    await ActivityEnvironment().run(
        inbox.activities.record_shortage,
        ShortageRecordInput(
            sku=sent.sku, order_id=sent.order_id, quantity=sent.quantity, since=T0, notice_key=notice_key(sent)
        ),
    )


async def notify(inbox: Inbox, sent: PurchasingNotice) -> None:
    await ActivityEnvironment().run(inbox.activities.notify_purchasing, sent)


async def notices_of_order_1(sessionmaker: Sessions) -> list[ShortageNotice]:
    async with sessionmaker() as session:
        [shortage] = (await open_shortages(session)).items
    return shortage.notices


async def test_a_second_backorder_of_an_order_reaches_purchasing_and_a_repeat_does_not(inbox: Inbox) -> None:
    await notify(inbox, notice(round=1, outstanding=3))
    await notify(inbox, notice(round=2, outstanding=5))
    await notify(inbox, notice(round=2, outstanding=5))
    await notify(inbox, notice(round=2, quantity=4, outstanding=5))

    received = await inbox.notices()

    assert [(item["round"], item["quantity"], item["outstanding_quantity"], item["applied"]) for item in received] == [
        (1, 3, 3, 1),
        (2, 3, 5, 1),
        (2, 4, 5, 1),
    ]
    assert [item["idempotency_key"] for item in received] == [
        "order-1:purchasing:WIDGET:round-1:qty-3",
        "order-1:purchasing:WIDGET:round-2:qty-3",
        "order-1:purchasing:WIDGET:round-2:qty-4",
    ]


async def test_each_try_of_a_notice_is_noted_on_the_shortage_until_it_is_delivered(
    inbox: Inbox, sessionmaker: Sessions
) -> None:
    sent = notice(round=1)
    await record(inbox, sent)
    assert await notices_of_order_1(sessionmaker) == [
        ShortageNotice(order_id="order-1", status=NoticeStatus.PENDING, attempts=0)
    ]

    await inbox.fail(503)
    for _ in range(2):
        with pytest.raises(ApplicationError) as failed:
            await notify(inbox, sent)
        assert not failed.value.non_retryable
    assert await notices_of_order_1(sessionmaker) == [
        ShortageNotice(
            order_id="order-1", status=NoticeStatus.FAILING, attempts=2, last_error="503 service_unavailable"
        )
    ]
    async with sessionmaker() as session:
        assert (await read_state(session)).undelivered_purchasing_notices == 1
    # The same report recorded again (a retried step) keeps what the tries so far found.
    await record(inbox, sent)
    assert [(n.status, n.attempts) for n in await notices_of_order_1(sessionmaker)] == [(NoticeStatus.FAILING, 2)]

    await inbox.heal()
    await notify(inbox, sent)

    assert await notices_of_order_1(sessionmaker) == [
        ShortageNotice(order_id="order-1", status=NoticeStatus.DELIVERED, attempts=3)
    ]
    async with sessionmaker() as session:
        assert (await read_state(session)).undelivered_purchasing_notices == 0


async def test_a_refused_notice_is_noted_as_refused_and_a_newer_notice_starts_afresh(
    inbox: Inbox, sessionmaker: Sessions
) -> None:
    first = notice(round=1)
    await record(inbox, first)
    await inbox.fail(422)
    with pytest.raises(ApplicationError) as refused:
        await notify(inbox, first)
    assert refused.value.non_retryable
    [noted] = await notices_of_order_1(sessionmaker)
    assert (noted.status, noted.attempts, noted.last_error) == (
        NoticeStatus.REFUSED,
        1,
        "422 injected_failure: injected failure",
    )

    await inbox.heal()
    second = notice(round=2)
    await record(inbox, second)
    # A late answer to the replaced notice changes nothing.
    await notify(inbox, first)
    assert await notices_of_order_1(sessionmaker) == [
        ShortageNotice(order_id="order-1", status=NoticeStatus.PENDING, attempts=0)
    ]
    await notify(inbox, second)
    assert [(n.status, n.attempts) for n in await notices_of_order_1(sessionmaker)] == [(NoticeStatus.DELIVERED, 1)]


async def test_undelivered_notices_of_resolved_shortages_are_not_counted(inbox: Inbox, sessionmaker: Sessions) -> None:
    sent = notice(round=1)
    await record(inbox, sent)
    async with sessionmaker() as session:
        assert (await read_state(session)).undelivered_purchasing_notices == 1

    async with sessionmaker.begin() as session:
        await resolve_shortages(session, "WIDGET", ["order-1"])

    async with sessionmaker() as session:
        assert (await read_state(session)).undelivered_purchasing_notices == 0
