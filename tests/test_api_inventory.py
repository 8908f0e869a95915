"""The HTTP API for stock and purchasing: counts, levels, supplier receipts and open shortages.

Real PostgreSQL, real HTTP, and a real Temporal dev server to receive the
replenishment signals (no worker polls the test's task queue). Stock counts are an
admin's (`admin`); levels, receipts and shortages purchasing's (`purchasing`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from db.stock import reserve_line
from models.inventory import LineKey
from models.names import REPLENISHMENT_WORKFLOW, SIGNAL_STOCK_RECEIVED, replenishment_workflow_id
from models.purchasing import StockReceived
from models.tables import ShortageRow
from tests.keys import Keys, bearer
from tests.servers import running_server
from tests.test_api import api_settings

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def temporal(dev_server_env: WorkflowEnvironment) -> Client:
    return dev_server_env.client


@pytest.fixture
async def api_url(database_url: str, task_queue: str, temporal: Client, sessionmaker: Sessions) -> AsyncIterator[str]:
    app = create_app(api_settings(database_url, task_queue), client=temporal, sessionmaker=sessionmaker)
    async with running_server(app) as base_url:
        yield base_url


@pytest.fixture
async def purchasing(api_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=bearer(keys.purchasing)) as http:
        yield http


@pytest.fixture
async def admin(api_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=bearer(keys.admin)) as http:
        yield http


@pytest.fixture
def sku() -> str:
    # The dev server lives for the whole session: a SKU of its own keeps each test's replenishment workflow apart.
    return f"WIDGET-{uuid.uuid4().hex[:8]}"


async def stock_received_signals(temporal: Client, sku: str) -> list[StockReceived]:
    history = await temporal.get_workflow_handle(replenishment_workflow_id(sku)).fetch_history()
    received = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        attributes = event.workflow_execution_signaled_event_attributes
        assert attributes.signal_name == SIGNAL_STOCK_RECEIVED
        [payload] = attributes.input.payloads
        [signal] = await temporal.data_converter.decode([payload], [StockReceived])
        received.append(signal)
    return received


# Stock counts and levels


async def test_a_stock_count_creates_the_sku_and_reports_its_level(
    admin: httpx.AsyncClient, purchasing: httpx.AsyncClient
) -> None:
    first = await admin.put("/inventory/WIDGET-1", json={"warehouse": "AMS", "on_hand": 7})
    second = await admin.put("/inventory/WIDGET-1", json={"warehouse": "BER", "on_hand": 3})

    assert first.status_code == second.status_code == 200
    level = second.json()
    assert level == {
        "sku": "WIDGET-1",
        "on_hand": 10,
        "reserved": 0,
        "available": 10,
        "warehouses": [
            {"warehouse": "AMS", "on_hand": 7, "reserved": 0, "available": 7},
            {"warehouse": "BER", "on_hand": 3, "reserved": 0, "available": 3},
        ],
    }
    assert (await purchasing.get("/inventory/WIDGET-1")).json() == level


async def test_a_stock_count_below_what_is_reserved_is_a_409(
    admin: httpx.AsyncClient, purchasing: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await admin.put("/inventory/WIDGET-1", json={"warehouse": "AMS", "on_hand": 5})
    async with sessionmaker.begin() as session:
        await reserve_line(session, LineKey(order_id="o-1", line_no=1, attempt=1), "WIDGET-1", 4, ["AMS"])

    response = await admin.put("/inventory/WIDGET-1", json={"warehouse": "AMS", "on_hand": 3})

    assert response.status_code == 409
    assert "reserved" in response.json()["detail"]
    level = (await purchasing.get("/inventory/WIDGET-1")).json()
    assert (level["on_hand"], level["reserved"]) == (5, 4)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"warehouse": "AMS", "on_hand": -1}, "on_hand"),
        ({"on_hand": 1}, "warehouse"),
        ({"warehouse": "", "on_hand": 1}, "warehouse"),
    ],
)
async def test_a_malformed_stock_count_is_a_422(
    admin: httpx.AsyncClient, purchasing: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await admin.put("/inventory/WIDGET-1", json=body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert (await purchasing.get("/inventory/WIDGET-1")).status_code == 404


async def test_an_unknown_sku_is_a_404(purchasing: httpx.AsyncClient) -> None:
    response = await purchasing.get("/inventory/NOPE-1")

    assert response.status_code == 404
    assert response.json() == {"detail": "unknown SKU NOPE-1"}


# Supplier receipts


async def test_a_receipt_adds_stock_and_tells_the_replenishment_workflow(
    admin: httpx.AsyncClient, purchasing: httpx.AsyncClient, sku: str, temporal: Client, task_queue: str
) -> None:
    await admin.put(f"/inventory/{sku}", json={"warehouse": "AMS", "on_hand": 2})

    response = await purchasing.post(
        f"/inventory/{sku}/receipts", json={"warehouse": "AMS", "quantity": 5}, headers={"Idempotency-Key": "rcpt-1"}
    )

    assert response.status_code == 201
    assert response.json()["on_hand"] == 7
    description = await temporal.get_workflow_handle(replenishment_workflow_id(sku)).describe()
    assert description.workflow_type == REPLENISHMENT_WORKFLOW
    assert description.task_queue == task_queue
    assert await stock_received_signals(temporal, sku) == [
        StockReceived(receipt_id="rcpt-1", warehouse="AMS", quantity=5)
    ]


async def test_a_repeated_receipt_counts_once_and_signals_again(
    admin: httpx.AsyncClient, purchasing: httpx.AsyncClient, sku: str, temporal: Client
) -> None:
    await admin.put(f"/inventory/{sku}", json={"warehouse": "AMS", "on_hand": 0})
    receipt = {"warehouse": "AMS", "quantity": 5}

    first = await purchasing.post(f"/inventory/{sku}/receipts", json=receipt, headers={"Idempotency-Key": "rcpt-2"})
    again = await purchasing.post(f"/inventory/{sku}/receipts", json=receipt, headers={"Idempotency-Key": "rcpt-2"})

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["on_hand"] == again.json()["on_hand"] == 5
    signals = await stock_received_signals(temporal, sku)
    assert [signal.receipt_id for signal in signals] == ["rcpt-2", "rcpt-2"]


async def test_receipts_without_a_key_are_separate_deliveries(
    admin: httpx.AsyncClient, purchasing: httpx.AsyncClient, sku: str, temporal: Client
) -> None:
    await admin.put(f"/inventory/{sku}", json={"warehouse": "AMS", "on_hand": 0})

    for _ in range(2):
        response = await purchasing.post(f"/inventory/{sku}/receipts", json={"warehouse": "BER", "quantity": 3})
        assert response.status_code == 201

    assert (await purchasing.get(f"/inventory/{sku}")).json()["on_hand"] == 6
    signals = await stock_received_signals(temporal, sku)
    assert len({signal.receipt_id for signal in signals}) == 2


async def test_a_receipt_for_an_unknown_sku_is_a_404_and_signals_nothing(
    purchasing: httpx.AsyncClient, temporal: Client
) -> None:
    response = await purchasing.post("/inventory/NOPE-2/receipts", json={"warehouse": "AMS", "quantity": 1})

    assert response.status_code == 404
    with pytest.raises(RPCError) as missing:
        await temporal.get_workflow_handle(replenishment_workflow_id("NOPE-2")).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("body", "headers", "location"),
    [
        ({"warehouse": "AMS", "quantity": 0}, {}, ["body", "quantity"]),
        ({"warehouse": "AMS", "quantity": 1}, {"Idempotency-Key": "r" * 129}, ["header", "Idempotency-Key"]),
    ],
)
async def test_a_malformed_receipt_is_a_422(
    admin: httpx.AsyncClient,
    purchasing: httpx.AsyncClient,
    sku: str,
    body: dict[str, object],
    headers: dict[str, str],
    location: list[str],
) -> None:
    await admin.put(f"/inventory/{sku}", json={"warehouse": "AMS", "on_hand": 1})

    response = await purchasing.post(f"/inventory/{sku}/receipts", json=body, headers=headers)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == location
    assert (await purchasing.get(f"/inventory/{sku}")).json()["on_hand"] == 1


# Shortages


async def test_open_shortages_are_listed_per_sku_with_their_orders(
    purchasing: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    since = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
    async with sessionmaker.begin() as session:
        session.add_all(
            [
                ShortageRow(sku="WIDGET-1", order_id="o-1", quantity=2, since=since),
                ShortageRow(sku="WIDGET-1", order_id="o-2", quantity=3, since=since + timedelta(hours=1)),
                ShortageRow(sku="BOLT-7", order_id="o-3", quantity=1, since=since, resolved_at=since),
            ]
        )

    response = await purchasing.get("/purchasing/shortages")

    assert response.status_code == 200
    [shortage] = response.json()["items"]
    assert shortage["sku"] == "WIDGET-1"
    assert shortage["outstanding_quantity"] == 5
    assert sorted(shortage["order_ids"]) == ["o-1", "o-2"]
    assert datetime.fromisoformat(shortage["since"]) == since


async def test_no_shortages_is_an_empty_list(purchasing: httpx.AsyncClient) -> None:
    response = await purchasing.get("/purchasing/shortages")

    assert response.status_code == 200
    assert response.json() == {"items": []}
