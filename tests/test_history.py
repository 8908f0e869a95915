"""Orders on record at scale (bench.history): what the generator writes, and that the API reads it by index.

20,000 generated orders in a database of this module's own; every query the API runs for the lists,
an order, the analytics and the shortages is planned by PostgreSQL (EXPLAIN), and none may read
orders, their lines or their timelines whole. A page of GET /orders, first or deep, reads about
as many rows as it shows, whichever filter: it must not walk the orders until enough match.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from bench.history import Shape, closed_orders, load
from bench.on_record import REPORTS
from db import rollups
from db.engine import create_engine, create_sessionmaker
from db.migrate import upgrade
from db.orders import get_order
from models.order import OrderStatus
from tests.conftest import database_of_its_own
from tests.keys import bearer, make_keys
from tests.servers import running_server
from tests.test_api import TEST_KEYRING, api_settings

SHAPE = Shape(orders=20_000, customers=2_000, skus=1_000, batch=5_000)
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
BIG_TABLES = {"orders", "order_lines", "order_events"}
PAGE = 50
# Rows a page's queries may read from the big tables: the page, its lines, and some slack.
PAGE_ROWS_READ = 10 * PAGE


@pytest.fixture(scope="module")
def history_url(database_url: str) -> str:
    url = database_of_its_own(database_url, "history")
    upgrade(url)
    server = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(server) as connection:
        tables = [row[0] for row in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        kept = ", ".join(f'"{name}"' for name in tables if name != "alembic_version")
        connection.execute(f"TRUNCATE {kept} CASCADE")
    load(url, SHAPE, TEST_KEYRING, now=NOW)
    return url


@pytest.fixture
async def history_engine(history_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(history_url, pool_size=4)
    yield engine
    await engine.dispose()


def test_the_generator_writes_closed_orders_with_lines_and_timelines_over_returning_customers(
    history_url: str,
) -> None:
    with psycopg.connect(make_url(history_url).set(drivername="postgresql").render_as_string(False)) as db:
        statuses = dict(db.execute("SELECT status, count(*) FROM orders GROUP BY status").fetchall())
        lines, events, customers, skus, stock = (
            db.execute(
                "SELECT (SELECT count(*) FROM order_lines), (SELECT count(*) FROM order_events),"
                " (SELECT count(DISTINCT customer_id) FROM orders), (SELECT count(*) FROM skus),"
                " (SELECT count(*) FROM stock)"
            ).fetchone()
            or ()
        )
        span = db.execute("SELECT max(created_at) - min(created_at) FROM orders").fetchone()
    assert sum(statuses.values()) == SHAPE.orders
    assert set(statuses) <= {status.value for status in OrderStatus if status.is_terminal}
    assert statuses["delivered"] > 0.8 * SHAPE.orders
    assert {"cancelled", "rejected"} <= set(statuses)
    assert 2 * SHAPE.orders <= lines <= 3 * SHAPE.orders
    assert events > 3 * SHAPE.orders
    assert customers <= SHAPE.customers < SHAPE.orders
    assert (skus, stock) == (SHAPE.skus, 5 * SHAPE.skus)
    assert span is not None and span[0].days > 700


async def test_a_generated_order_reads_through_the_app_with_its_personal_data_decrypted(
    history_engine: AsyncEngine,
) -> None:
    generated = next(closed_orders(SHAPE, NOW, TEST_KEYRING))
    order_id = generated.row[0]
    async with create_sessionmaker(history_engine)() as session:
        order = await get_order(session, order_id, TEST_KEYRING)
    assert order is not None
    assert order.status == generated.status
    assert order.customer.name and "@example.com" in order.customer.email
    assert order.shipping_address.city
    assert [entry.seq for entry in order.timeline] == list(range(1, len(generated.events) + 1))
    assert order.timeline[-1].status == order.status
    assert order.total == sum(line.unit_price * line.quantity for line in order.lines)


async def test_the_analytics_rollups_add_up_to_the_generated_orders(history_engine: AsyncEngine) -> None:
    async with create_sessionmaker(history_engine)() as session:
        assert await rollups.mismatches(session) == []


@pytest.fixture
def captured(history_engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT the API runs on the engine, with its parameters."""
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(history_engine.sync_engine, "before_cursor_execute", capture)
    yield statements
    event.remove(history_engine.sync_engine, "before_cursor_execute", capture)


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for inner in plan.get("Plans", []):
        yield from plan_nodes(inner)


async def test_every_query_behind_the_lists_an_order_analytics_and_shortages_reads_by_index(
    history_url: str,
    history_engine: AsyncEngine,
    captured: list[tuple[str, Any]],
    dev_server_env: WorkflowEnvironment,
    task_queue: str,
) -> None:
    settings = api_settings(history_url, task_queue)
    sessionmaker = create_sessionmaker(history_engine)
    keys = await make_keys(sessionmaker, settings.api_key_hash_secret)
    app = create_app(settings, client=dev_server_env.client, sessionmaker=sessionmaker)
    server = make_url(history_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(server) as db:
        order_id, customer = db.execute("SELECT order_id, customer_id FROM orders LIMIT 1").fetchone() or ()
        (sku,) = db.execute("SELECT sku FROM order_lines GROUP BY sku ORDER BY count(*) DESC LIMIT 1").fetchone() or ()
    async with (
        running_server(app) as base_url,
        httpx.AsyncClient(base_url=base_url, headers=bearer(keys.admin), timeout=30) as http,
    ):
        asked = {
            "unfiltered": {},
            "by status": {"status": "delivered"},
            "by a rare status": {"status": "failed"},
            "by customer": {"customer_id": customer},
            "by SKU": {"sku": sku},
            "quick search": {"q": customer},
        }
        pages: dict[str, list[tuple[str, Any]]] = {}
        for name, params in asked.items():
            before = len(captured)
            first = await http.get("/orders", params={**params, "limit": PAGE})
            assert first.status_code == 200, first.text
            cursor = first.json()["next_cursor"]
            for _ in range(3):
                if cursor is None:
                    break
                deeper = await http.get("/orders", params={**params, "limit": PAGE, "cursor": cursor})
                assert deeper.status_code == 200, deeper.text
                cursor = deeper.json()["next_cursor"]
            pages[name] = [(sql, params) for sql, params in captured[before:] if "orders" in sql]
        for path in (f"/orders/{order_id}", *REPORTS):
            response = await http.get(path)
            assert response.status_code == 200, f"{path}: {response.text}"
    statements = [(sql, params) for sql, params in captured if any(name in sql for name in BIG_TABLES)]
    assert len(statements) > 10
    scans = await asyncio.to_thread(_seq_scans_of_big_tables, server, statements)
    assert scans == [], "\n".join(scans)
    read = {name: await asyncio.to_thread(_most_rows_read, server, queries) for name, queries in pages.items()}
    assert {name: rows for name, rows in read.items() if rows > PAGE_ROWS_READ} == {}


def _most_rows_read(server: str, statements: list[tuple[str, Any]]) -> int:
    """The most rows one of `statements` reads from the big tables, filtered out or not, by EXPLAIN ANALYZE."""
    most = 0
    with psycopg.connect(server) as db, psycopg.ClientCursor(db) as cursor:
        for sql, params in statements:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            (document,) = cursor.fetchone() or ()
            plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
            read = sum(
                (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
                for node in plan_nodes(plan)
                if node.get("Relation Name") in BIG_TABLES
            )
            most = max(most, read)
    return most


def _seq_scans_of_big_tables(server: str, statements: list[tuple[str, Any]]) -> list[str]:
    found = []
    with psycopg.connect(server) as db, psycopg.ClientCursor(db) as cursor:
        for sql, params in statements:
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
            (document,) = cursor.fetchone() or ()
            plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
            for node in plan_nodes(plan):
                if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in BIG_TABLES:
                    found.append(f"{node['Relation Name']}: {' '.join(sql.split())[:1500]}")
    return found
