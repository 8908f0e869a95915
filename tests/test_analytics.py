"""The analytics API checked against figures computed by hand on a fixed set of orders, on SQLite and
PostgreSQL alike, over real HTTP.

The orders (times UTC; the period is Monday 2026-11-02 through Sunday 2026-11-15, the one before it
2026-10-19 through 2026-11-01):

| order | customer | placed | status | money | lines | shipped | delivered |
| o1 | c1 | 11-02 10:00 | delivered | EUR 20 | A 2x10 | 11-03 10:00 | 11-05 10:00 |
| o2 | c1 | 11-04 12:00 | delivered | EUR 40 | A 1x10, B 1x30 | 11-04 18:00 | 11-05 18:00 |
| o3 | c2 | 11-04 23:30 | shipped | EUR 60 | B 2x30 | 11-06 11:30 | |
| o4 | c3 | 11-10 09:00 | cancelled | EUR 50 | A 5x10 | | |
| o5 | c4 | 11-12 08:00 | delivered | USD 15 | C 3x5 | 11-12 20:00 | 11-14 08:00 |
| o6 | c1 | 11-15 22:00 | backordered | EUR 20 | C 4x5 | | |
| o7 | c2 | 10-20 10:00 | delivered | EUR 30 | A 3x10 | 10-21 10:00 | 10-22 10:00 |
| o8 | c5 | 10-25 10:00 | rejected | EUR 30 | B 1x30 | | |
| o9 | c2 | 11-16 10:00 | delivered | EUR 100 | A 10x10 | | |

Returns (RETURNS): r1 of o1 (A 1, damaged, refunded), r2 of o2 (A 1 damaged and B 1 wrong item,
received), r3 of o5 (C 2, no longer needed, declined), r4 of o9 (A 5, damaged, refunded).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from analytics.periods import Bucket, buckets
from api.app import create_app
from db import rollups
from db.engine import create_engine, create_sessionmaker
from db.migrate import upgrade
from models.tables import (
    OrderEventRow,
    OrderLineRow,
    OrderRow,
    ReturnLineRow,
    ReturnRow,
    ShortageRow,
    SkuRow,
    StockRow,
    WarehouseRow,
)
from tests.keys import bearer, make_keys
from tests.servers import running_server
from tests.test_api import api_settings

Sessions = async_sessionmaker[AsyncSession]
PERIOD = {"from": "2026-11-02", "to": "2026-11-15"}


def at(moment: str) -> datetime:
    return datetime.fromisoformat(f"2026-{moment}").replace(tzinfo=UTC)


# order, customer, placed, status, currency, lines (sku, quantity, unit price), shipped, delivered
ORDERS: list[tuple[str, str, str, str, str, list[tuple[str, int, int]], str | None, str | None]] = [
    ("o1", "c1", "11-02 10:00", "delivered", "EUR", [("A", 2, 10)], "11-03 10:00", "11-05 10:00"),
    ("o2", "c1", "11-04 12:00", "delivered", "EUR", [("A", 1, 10), ("B", 1, 30)], "11-04 18:00", "11-05 18:00"),
    ("o3", "c2", "11-04 23:30", "shipped", "EUR", [("B", 2, 30)], "11-06 11:30", None),
    ("o4", "c3", "11-10 09:00", "cancelled", "EUR", [("A", 5, 10)], None, None),
    ("o5", "c4", "11-12 08:00", "delivered", "USD", [("C", 3, 5)], "11-12 20:00", "11-14 08:00"),
    ("o6", "c1", "11-15 22:00", "backordered", "EUR", [("C", 4, 5)], None, None),
    ("o7", "c2", "10-20 10:00", "delivered", "EUR", [("A", 3, 10)], "10-21 10:00", "10-22 10:00"),
    ("o8", "c5", "10-25 10:00", "rejected", "EUR", [("B", 1, 30)], None, None),
    ("o9", "c2", "11-16 10:00", "delivered", "EUR", [("A", 10, 10)], None, None),
]

# return, order, status, lines (sku, units, reason)
RETURNS: list[tuple[str, str, str, list[tuple[str, int, str]]]] = [
    ("r1", "o1", "refunded", [("A", 1, "damaged")]),
    ("r2", "o2", "received", [("A", 1, "damaged"), ("B", 1, "wrong_item")]),
    ("r3", "o5", "declined", [("C", 2, "no_longer_needed")]),
    ("r4", "o9", "refunded", [("A", 5, "damaged")]),
]


async def seed(sessionmaker: Sessions) -> None:
    now = datetime.now(UTC)
    async with sessionmaker.begin() as session:
        session.add(WarehouseRow(code="WH1", name="One"))
        session.add_all(SkuRow(sku=sku, name=sku, active=sku != "D") for sku in "ABCD")
        await session.flush()
        session.add_all(
            [
                StockRow(sku="A", warehouse="WH1", on_hand=5, reserved=5),
                StockRow(sku="B", warehouse="WH1", on_hand=10, reserved=0),
            ]
        )
        for order_id, customer, placed, status, currency, lines, _, _ in ORDERS:
            total = sum(quantity * price for _, quantity, price in lines)
            session.add(
                OrderRow(
                    order_id=order_id,
                    workflow_id=f"order-{order_id}",
                    customer_id=customer,
                    status=status,
                    total=Decimal(total),
                    currency=currency,
                    last_seq=3,
                    created_at=at(placed),
                    updated_at=at(placed),
                )
            )
        await session.flush()
        # As the status writes do for each order they record.
        for order_id, *_ in ORDERS:
            await rollups.count_order(session, order_id)
        for order_id, _, placed, _, _, lines, shipped, delivered in ORDERS:
            for number, (sku, quantity, price) in enumerate(lines, start=1):
                session.add(
                    OrderLineRow(
                        order_id=order_id,
                        line_no=number,
                        sku=sku,
                        quantity=quantity,
                        unit_price=Decimal(price),
                        placed_at=at(placed),
                    )
                )
            steps = [("received", placed), ("shipped", shipped), ("delivered", delivered)]
            for seq, (step, moment) in enumerate(steps, start=1):
                if moment is not None:
                    session.add(
                        OrderEventRow(order_id=order_id, seq=seq, at=at(moment), status=step, actor="test", event=step)
                    )
        for return_id, order_id, status, lines in RETURNS:
            session.add(
                ReturnRow(
                    return_id=return_id,
                    order_id=order_id,
                    workflow_id=f"return-{return_id}",
                    customer_id="c",
                    status=status,
                    value=Decimal(0),
                    currency="EUR",
                    last_seq=1,
                    created_at=at("11-20 10:00"),
                    updated_at=at("11-20 10:00"),
                )
            )
            await session.flush()
            session.add_all(
                ReturnLineRow(return_id=return_id, line_no=n, order_id=order_id, sku=sku, quantity=units, reason=why)
                for n, (sku, units, why) in enumerate(lines, start=1)
            )
        session.add_all(
            [
                ShortageRow(sku="C", order_id="o6", quantity=4, since=now - timedelta(days=3, hours=1)),
                ShortageRow(sku="A", order_id="ox", quantity=2, since=now - timedelta(days=20)),
                ShortageRow(sku="A", order_id="oy", quantity=9, since=now - timedelta(days=5), resolved_at=now),
            ]
        )


@pytest.fixture(params=["sqlite", "postgresql"])
async def analytics_db(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str, sessionmaker: Sessions
) -> AsyncIterator[tuple[str, Sessions]]:
    """The emptied PostgreSQL test database, or a fresh SQLite file."""
    if request.param == "postgresql":
        yield database_url, sessionmaker
        return
    url = f"sqlite:///{tmp_path}/analytics.sqlite3"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    yield url, create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def analytics(
    analytics_db: tuple[str, Sessions], dev_server_env: WorkflowEnvironment, task_queue: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The API over the fixed orders, with an operator key."""
    url, sessionmaker = analytics_db
    await seed(sessionmaker)
    keys = await make_keys(sessionmaker, api_settings(url, task_queue).api_key_hash_secret)
    app = create_app(api_settings(url, task_queue), client=dev_server_env.client, sessionmaker=sessionmaker)
    async with (
        running_server(app) as base_url,
        httpx.AsyncClient(base_url=base_url, headers=bearer(keys.operator), timeout=30) as http,
    ):
        yield http


async def get(http: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await http.get(path, params={**PERIOD, **params})
    assert response.status_code == 200, response.text
    return response.json()


async def test_summary_against_the_previous_period(analytics: httpx.AsyncClient) -> None:
    summary = await get(analytics, "/analytics/summary")

    assert summary["current"] == {
        "first_day": "2026-11-02",
        "last_day": "2026-11-15",
        "orders": 6,
        "by_currency": [
            {"currency": "EUR", "orders": 4, "revenue": "140.00", "average_order_value": "35.00"},
            {"currency": "USD", "orders": 1, "revenue": "15.00", "average_order_value": "15.00"},
        ],
    }
    assert summary["previous"] == {
        "first_day": "2026-10-19",
        "last_day": "2026-11-01",
        "orders": 2,
        "by_currency": [{"currency": "EUR", "orders": 1, "revenue": "30.00", "average_order_value": "30.00"}],
    }
    assert summary["change"] == {
        "orders_pct": 200.0,
        "by_currency": [
            {"currency": "EUR", "revenue_pct": 366.67, "average_order_value_pct": 16.67},
            {"currency": "USD", "revenue_pct": None, "average_order_value_pct": None},
        ],
    }


async def test_orders_per_day_and_week_by_status_with_revenue(analytics: httpx.AsyncClient) -> None:
    days = {item["start"]: item for item in (await get(analytics, "/analytics/orders"))["items"]}
    weeks = (await get(analytics, "/analytics/orders", bucket="week"))["items"]

    assert len(days) == 14
    assert days["2026-11-04"] == {
        "start": "2026-11-04",
        "orders": 2,
        "by_status": {"delivered": 1, "shipped": 1},
        "revenue": [{"currency": "EUR", "amount": "100.00"}],
    }
    assert days["2026-11-10"]["by_status"] == {"cancelled": 1} and days["2026-11-10"]["revenue"] == []
    assert days["2026-11-03"] == {"start": "2026-11-03", "orders": 0, "by_status": {}, "revenue": []}
    assert sum(day["orders"] for day in days.values()) == 6
    assert weeks == [
        {
            "start": "2026-11-02",
            "orders": 3,
            "by_status": {"delivered": 2, "shipped": 1},
            "revenue": [{"currency": "EUR", "amount": "120.00"}],
        },
        {
            "start": "2026-11-09",
            "orders": 3,
            "by_status": {"backordered": 1, "cancelled": 1, "delivered": 1},
            "revenue": [{"currency": "EUR", "amount": "20.00"}, {"currency": "USD", "amount": "15.00"}],
        },
    ]


async def test_days_are_counted_in_the_time_zone_asked_for(analytics: httpx.AsyncClient) -> None:
    days = {
        item["start"]: item["orders"]
        for item in (await get(analytics, "/analytics/orders", tz="Europe/Amsterdam"))["items"]
    }

    # o3, placed 23:30 UTC on the 4th, is past midnight in Amsterdam (UTC+1).
    assert (days["2026-11-04"], days["2026-11-05"]) == (1, 1)


async def test_days_in_a_zone_half_an_hour_off_utc_are_counted_from_the_orders(analytics: httpx.AsyncClient) -> None:
    summary = await get(analytics, "/analytics/summary", tz="Asia/Kolkata")
    days = {
        item["start"]: item["orders"]
        for item in (await get(analytics, "/analytics/orders", tz="Asia/Kolkata"))["items"]
    }

    # UTC+5:30: the period is 11-01 18:30 to 11-15 18:30 UTC, so o6 (11-15 22:00 UTC) falls after it;
    # o2 (11-04 12:00 UTC) is 17:30 on the 4th, o3 (11-04 23:30 UTC) 05:00 on the 5th.
    assert summary["current"]["orders"] == 5
    assert summary["current"]["by_currency"][0] == {
        "currency": "EUR",
        "orders": 3,
        "revenue": "120.00",
        "average_order_value": "40.00",
    }
    assert (days["2026-11-04"], days["2026-11-05"], days["2026-11-15"]) == (1, 1, 0)


async def test_fulfilment_lead_time_percentiles_per_week_and_backorder_ageing(analytics: httpx.AsyncClient) -> None:
    fulfilment = await get(analytics, "/analytics/fulfilment")

    assert fulfilment["weeks"] == [
        {
            "week": "2026-11-02",
            # 6, 24 and 36 hours; 24 and 48 hours.
            "placed_to_shipped": {"count": 3, "p50_hours": 24.0, "p90_hours": 36.0},
            "shipped_to_delivered": {"count": 2, "p50_hours": 24.0, "p90_hours": 48.0},
        },
        {
            "week": "2026-11-09",
            "placed_to_shipped": {"count": 1, "p50_hours": 12.0, "p90_hours": 12.0},
            "shipped_to_delivered": {"count": 1, "p50_hours": 36.0, "p90_hours": 36.0},
        },
    ]
    assert fulfilment["backorder_ageing"] == [
        {"days": "0-1", "orders": 0, "units": 0},
        {"days": "2-3", "orders": 1, "units": 4},
        {"days": "4-7", "orders": 0, "units": 0},
        {"days": "8-14", "orders": 0, "units": 0},
        {"days": "15+", "orders": 1, "units": 2},
    ]


async def test_top_skus_by_units_and_revenue_and_stock_outs(analytics: httpx.AsyncClient) -> None:
    skus = await get(analytics, "/analytics/skus", limit=2)

    assert skus["by_units"] == [
        {
            "sku": "C",
            "units": 7,
            "revenue": [{"currency": "EUR", "amount": "20.00"}, {"currency": "USD", "amount": "15.00"}],
        },
        {"sku": "A", "units": 3, "revenue": [{"currency": "EUR", "amount": "30.00"}]},
    ]
    assert [item["sku"] for item in skus["by_revenue"]] == ["B", "A"]
    assert skus["stock_outs"] == [
        {"sku": "A", "available": 0, "waiting_units": 2},
        {"sku": "C", "available": 0, "waiting_units": 4},
    ]


async def test_return_rates_by_sku_and_reason_of_the_orders_placed_in_the_period(
    analytics: httpx.AsyncClient,
) -> None:
    returns = await get(analytics, "/analytics/returns", limit=2)

    # Sold on the revenue orders of the period: A 2+1, B 1+2, C 3+4 (o4 cancelled). Returned: r1 and r2;
    # r3 was declined and r4's order o9 was placed after the period.
    assert (returns["sold_units"], returns["returned_units"], returns["return_rate"]) == (13, 3, 0.2308)
    assert returns["by_reason"] == [
        {"reason": "damaged", "units": 2, "return_rate": 0.1538},
        {"reason": "wrong_item", "units": 1, "return_rate": 0.0769},
        {"reason": "not_as_described", "units": 0, "return_rate": 0.0},
        {"reason": "no_longer_needed", "units": 0, "return_rate": 0.0},
        {"reason": "other", "units": 0, "return_rate": 0.0},
    ]
    assert returns["skus"] == [
        {"sku": "A", "sold_units": 3, "returned_units": 2, "return_rate": 0.6667, "by_reason": {"damaged": 2}},
        {"sku": "B", "sold_units": 3, "returned_units": 1, "return_rate": 0.3333, "by_reason": {"wrong_item": 1}},
    ]


async def test_customers_segments_repeat_rate_and_top_customers_by_id(analytics: httpx.AsyncClient) -> None:
    customers = await get(analytics, "/analytics/customers")

    assert customers["customers"] == 3
    assert customers["repeat_purchase_rate"] == 0.3333
    # c1: 13.5 days from first to last of three orders.
    assert customers["average_days_between_orders"] == 6.75
    assert {s["segment"]: s["customers"] for s in customers["segments"]} == {
        "champions": 1,
        "loyal": 0,
        "new": 2,
        "promising": 0,
        "at_risk": 0,
        "dormant": 0,
    }
    assert customers["top_customers"] == [
        {"customer_id": "c1", "currency": "EUR", "orders": 3, "revenue": "80.00"},
        {"customer_id": "c2", "currency": "EUR", "orders": 1, "revenue": "60.00"},
        {"customer_id": "c4", "currency": "USD", "orders": 1, "revenue": "15.00"},
    ]


async def test_a_bad_period_or_time_zone_is_a_422_naming_the_parameter(analytics: httpx.AsyncClient) -> None:
    backwards = await analytics.get("/analytics/summary", params={"from": "2026-11-15", "to": "2026-11-02"})
    too_long = await analytics.get("/analytics/orders", params={"from": "2024-01-01", "to": "2026-11-02"})
    nowhere = await analytics.get("/analytics/skus", params={"tz": "Mars/Olympus_Mons"})
    unix_time = await analytics.get("/analytics/customers", params={"to": "0"})
    ancient = await analytics.get("/analytics/fulfilment", params={"from": "0001-01-01", "to": "0001-01-02"})

    assert {r.status_code for r in (backwards, too_long, nowhere, unix_time, ancient)} == {422}
    assert unix_time.json()["detail"][0]["loc"] == ["query", "to"]
    assert ancient.json()["detail"][0]["loc"] == ["query", "from"]
    assert backwards.json()["detail"][0]["loc"] == ["query", "from"]
    assert too_long.json()["detail"][0]["loc"] == ["query", "from"]
    assert nowhere.json()["detail"][0]["loc"] == ["query", "tz"]


def test_a_day_bucket_follows_daylight_saving_time() -> None:
    amsterdam = ZoneInfo("Europe/Amsterdam")
    (autumn,) = buckets(date(2026, 10, 25), date(2026, 10, 25), amsterdam, Bucket.DAY)
    (spring,) = buckets(date(2026, 3, 29), date(2026, 3, 29), amsterdam, Bucket.DAY)
    weeks = buckets(date(2026, 11, 4), date(2026, 11, 17), ZoneInfo("UTC"), Bucket.WEEK)

    assert autumn.end - autumn.start == timedelta(hours=25)
    assert spring.end - spring.start == timedelta(hours=23)
    assert autumn.start == datetime(2026, 10, 24, 22, tzinfo=UTC)
    assert [(w.label, w.start.date(), w.end.date()) for w in weeks] == [
        (date(2026, 11, 2), date(2026, 11, 4), date(2026, 11, 9)),
        (date(2026, 11, 9), date(2026, 11, 9), date(2026, 11, 16)),
        (date(2026, 11, 16), date(2026, 11, 16), date(2026, 11, 18)),
    ]
