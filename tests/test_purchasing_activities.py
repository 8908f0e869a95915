"""Shortages on real PostgreSQL, the purchasing inbox over real HTTP, and the signal-with-start of replenishment."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.http import create_http_client
from activities.purchasing import PurchasingActivities
from db.shortages import open_shortages, record_shortage, resolve_shortages
from models.integrations import PurchasingNotice
from models.names import REPLENISHMENT_WORKFLOW, SIGNAL_SHORTAGE, replenishment_workflow_id
from models.purchasing import (
    ReplenishmentInput,
    ReportShortageInput,
    Shortage,
    ShortageList,
    ShortageRecordInput,
    ShortageReport,
    ShortageResolvedInput,
)
from settings import Settings
from standins.app import create_app
from tests.servers import running_server

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


async def shortages_now(sessionmaker: async_sessionmaker[AsyncSession]) -> ShortageList:
    async with sessionmaker() as session:
        return await open_shortages(session)


async def record(
    sessionmaker: async_sessionmaker[AsyncSession], sku: str, order_id: str, quantity: int, since: datetime
) -> None:
    async with sessionmaker.begin() as session:
        await record_shortage(session, sku, order_id, quantity, since)


async def resolve(sessionmaker: async_sessionmaker[AsyncSession], sku: str, order_ids: list[str]) -> None:
    async with sessionmaker.begin() as session:
        await resolve_shortages(session, sku, order_ids)


async def test_open_shortages_are_one_item_per_sku_longest_waiting_first(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await record(sessionmaker, "WIDGET", "order-2", 3, T0 + timedelta(hours=2))
    await record(sessionmaker, "GADGET", "order-3", 1, T0 + timedelta(hours=1))
    await record(sessionmaker, "WIDGET", "order-1", 4, T0)

    assert await shortages_now(sessionmaker) == ShortageList(
        items=[
            Shortage(sku="WIDGET", outstanding_quantity=7, order_ids=["order-1", "order-2"], since=T0),
            Shortage(sku="GADGET", outstanding_quantity=1, order_ids=["order-3"], since=T0 + timedelta(hours=1)),
        ]
    )


async def test_recording_again_updates_the_quantity_but_keeps_the_place_in_the_queue(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await record(sessionmaker, "WIDGET", "order-1", 4, T0)
    await record(sessionmaker, "WIDGET", "order-1", 4, T0)
    await record(sessionmaker, "WIDGET", "order-1", 2, T0 + timedelta(days=1))

    [shortage] = (await shortages_now(sessionmaker)).items
    assert (shortage.outstanding_quantity, shortage.order_ids, shortage.since) == (2, ["order-1"], T0)


async def test_resolved_shortages_are_no_longer_open(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await record(sessionmaker, "WIDGET", "order-1", 4, T0)
    await record(sessionmaker, "WIDGET", "order-2", 3, T0 + timedelta(hours=1))
    await record(sessionmaker, "GADGET", "order-1", 1, T0)

    await resolve(sessionmaker, "WIDGET", ["order-1", "order-unknown"])
    await resolve(sessionmaker, "WIDGET", ["order-1"])

    assert [
        (item.sku, item.order_ids, item.outstanding_quantity) for item in (await shortages_now(sessionmaker)).items
    ] == [
        ("GADGET", ["order-1"], 1),
        ("WIDGET", ["order-2"], 3),
    ]


async def test_a_resolved_shortage_reopens_with_the_new_quantity_and_time(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await record(sessionmaker, "WIDGET", "order-1", 4, T0)
    await resolve(sessionmaker, "WIDGET", ["order-1"])
    later = T0 + timedelta(days=2)
    await record(sessionmaker, "WIDGET", "order-1", 5, later)

    [shortage] = (await shortages_now(sessionmaker)).items
    assert (shortage.outstanding_quantity, shortage.since) == (5, later)


async def test_nothing_open_is_an_empty_list(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    assert await shortages_now(sessionmaker) == ShortageList(items=[])


@workflow.defn(name=REPLENISHMENT_WORKFLOW)
class RecordingReplenishment:
    """Stands in for the replenishment workflow: collects shortage signals until two orders have reported."""

    def __init__(self) -> None:
        self._reports: list[ShortageReport] = []

    @workflow.run
    async def run(self, request: ReplenishmentInput) -> list[ShortageReport]:
        await workflow.wait_condition(lambda: len(self._reports) >= 2)
        return self._reports

    @workflow.signal(name=SIGNAL_SHORTAGE)
    def shortage(self, report: ShortageReport) -> None:
        self._reports.append(report)


@dataclasses.dataclass
class Purchasing:
    activities: PurchasingActivities
    control: httpx.AsyncClient
    client: Client


@pytest.fixture
async def purchasing(
    sessionmaker: async_sessionmaker[AsyncSession], time_skipping_env: WorkflowEnvironment
) -> AsyncIterator[Purchasing]:
    async with running_server(create_app()) as url:
        settings = Settings(purchasing_url=f"{url}/purchasing")
        async with create_http_client(settings) as http, httpx.AsyncClient(base_url=url) as control:
            yield Purchasing(
                PurchasingActivities(sessionmaker, http, time_skipping_env.client, settings),
                control,
                time_skipping_env.client,
            )


async def test_record_and_resolve_activities_keep_the_shortage_list(
    purchasing: Purchasing, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    env = ActivityEnvironment()
    await env.run(
        purchasing.activities.record_shortage, ShortageRecordInput(sku="W", order_id="o-1", quantity=2, since=T0)
    )
    await env.run(
        purchasing.activities.record_shortage, ShortageRecordInput(sku="W", order_id="o-2", quantity=1, since=T0)
    )
    await env.run(purchasing.activities.resolve_shortages, ShortageResolvedInput(sku="W", order_ids=["o-1"]))

    [shortage] = (await shortages_now(sessionmaker)).items
    assert (shortage.sku, shortage.order_ids, shortage.outstanding_quantity) == ("W", ["o-2"], 1)


async def test_notify_purchasing_reaches_the_buyers_inbox_once(purchasing: Purchasing) -> None:
    notice = PurchasingNotice(sku="WIDGET", order_id="order-1", quantity=3, outstanding_quantity=7)
    env = ActivityEnvironment()
    await env.run(purchasing.activities.notify_purchasing, notice)
    await env.run(purchasing.activities.notify_purchasing, notice)

    items: list[dict[str, Any]] = (await purchasing.control.get("/_control/records/shortages")).json()["items"]
    [received] = items
    assert {
        key: received[key] for key in ("sku", "order_id", "quantity", "outstanding_quantity", "round")
    } == notice.model_dump()
    assert (received["idempotency_key"], received["applied"]) == ("order-1:purchasing:WIDGET:qty-3", 1)


async def test_report_shortage_starts_the_skus_replenishment_and_signals_every_order(
    purchasing: Purchasing, task_queue: str
) -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, task_queue=task_queue)
    async with Worker(
        purchasing.client,
        task_queue=task_queue,
        workflows=[RecordingReplenishment],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        await env.run(
            purchasing.activities.report_shortage, ReportShortageInput(sku="WIDGET", order_id="o-1", quantity=2)
        )
        await env.run(
            purchasing.activities.report_shortage, ReportShortageInput(sku="WIDGET", order_id="o-2", quantity=5)
        )
        handle = purchasing.client.get_workflow_handle(
            replenishment_workflow_id("WIDGET"), result_type=list[ShortageReport]
        )
        reports = await handle.result()
    assert reports == [ShortageReport(order_id="o-1", quantity=2), ShortageReport(order_id="o-2", quantity=5)]
