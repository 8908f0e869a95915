"""The audit log: every mutating request and every refusal of who the caller is, read back through GET /audit.

Real HTTP, real PostgreSQL (whose trigger keeps the log append-only) and a real Temporal dev server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from structlog.testing import capture_logs
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from db.engine import create_engine, create_sessionmaker
from security.api_keys import new_key, split_key
from tests.keys import Keys, bearer
from tests.servers import running_server
from tests.test_api import api_settings, order_body

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def api_url(
    dev_server_env: WorkflowEnvironment, database_url: str, sessionmaker: Sessions, task_queue: str
) -> AsyncIterator[str]:
    settings = api_settings(database_url, task_queue).model_copy(
        update={"auth_failure_limit": 2, "auth_block_seconds": 60.0, "order_rate_limit_per_minute": 1}
    )
    app = create_app(settings, client=dev_server_env.client, sessionmaker=sessionmaker)
    async with running_server(app) as base_url:
        yield base_url


def http(base_url: str, key: str | None = None, source: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client of the API sending `key`, from the loopback address `source`."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(base_url=base_url, timeout=30, headers=bearer(key) if key else None, transport=transport)


def auditor(base_url: str, keys: Keys) -> httpx.AsyncClient:
    # From an address of its own, which the tests' failed authentications never block.
    return http(base_url, keys.admin, source="127.0.0.2")


async def audit(base_url: str, keys: Keys, **filters: Any) -> list[dict[str, Any]]:
    async with auditor(base_url, keys) as admin:
        response = await admin.get("/audit", params=filters)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def key_id(key: str) -> str:
    return split_key(key)[0]


async def test_a_mutating_request_is_recorded_with_who_what_which_outcome_and_where(api_url: str, keys: Keys) -> None:
    async with http(api_url, keys.client) as client:
        placed = await client.post("/orders", json=order_body(), headers={"X-Request-ID": "req-42"})
    order_id = placed.json()["order_id"]

    [entry] = await audit(api_url, keys)

    assert placed.headers["x-request-id"] == "req-42"
    assert entry["key_id"] == key_id(keys.client)
    assert (entry["actor"], entry["role"]) == ("shop A", "client")
    assert (entry["action"], entry["target"]) == ("POST /orders", f"order_id={order_id}")
    assert (entry["outcome"], entry["status_code"]) == ("ok", 202)
    assert (entry["source"], entry["request_id"]) == ("127.0.0.1", "req-42")
    assert abs(datetime.fromisoformat(entry["at"]) - datetime.now(UTC)) < timedelta(minutes=1)


async def test_refused_requests_are_recorded_by_outcome_and_reads_are_not(api_url: str, keys: Keys) -> None:
    unknown_key = new_key()
    order_id = str(uuid.uuid4())
    async with http(api_url, keys.operator) as operator, http(api_url, keys.client) as client:
        read = await operator.get("/orders")
        not_found = await operator.post(f"/orders/{order_id}/cancel", json={"reason": "x"})
        invalid = await operator.post(f"/orders/{order_id}/review", json={"decision": "maybe"})
        forbidden = await operator.put("/inventory/SKU-9", json={"warehouse": "AMS", "on_hand": 1})
        unauthenticated = await operator.get("/orders", headers=bearer(unknown_key))
        first_order = await client.post("/orders", json=order_body())
        rate_limited = await client.post("/orders", json=order_body())
        blocking = await operator.get("/orders", headers=bearer("guess"))
        blocked = await operator.get("/orders")

    answers = [read, not_found, invalid, forbidden, unauthenticated, first_order, rate_limited, blocking, blocked]
    assert [answer.status_code for answer in answers] == [200, 404, 422, 403, 401, 202, 429, 401, 429]
    entries = list(reversed(await audit(api_url, keys)))
    assert [(e["action"], e["outcome"], e["status_code"]) for e in entries] == [
        ("POST /orders/{order_id}/cancel", "refused", 404),
        ("POST /orders/{order_id}/review", "refused", 422),
        ("PUT /inventory/{sku}", "forbidden", 403),
        ("GET /orders", "unauthenticated", 401),
        ("POST /orders", "ok", 202),
        ("POST /orders", "rate_limited", 429),
        ("GET /orders", "unauthenticated", 401),
        ("GET /orders", "blocked", 429),
    ]
    assert entries[0]["target"] == f"order_id={order_id}"
    assert entries[2]["target"] == "sku=SKU-9"
    assert (entries[2]["key_id"], entries[2]["role"]) == (key_id(keys.operator), "operator")
    # A failed authentication names the key id tried, never who it claimed to be.
    assert (entries[3]["key_id"], entries[3]["actor"], entries[3]["role"]) == (key_id(unknown_key), None, None)
    assert entries[6]["key_id"] is None
    assert all(entry["request_id"] for entry in entries)
    assert len({entry["request_id"] for entry in entries}) == len(entries)


async def test_the_log_holds_no_bodies_and_no_personal_data(api_url: str, keys: Keys) -> None:
    async with http(api_url, keys.client) as client:
        await client.post("/orders", json=order_body(), headers={"Idempotency-Key": "checkout-secret-1"})
        await client.post(f"/orders/{uuid.uuid4()}/cancel", json={"reason": "my card ending 4242"})
    async with auditor(api_url, keys) as admin:
        logged = (await admin.get("/audit")).text

    for private in ("Ada", "Lovelace", "ada@example.com", "+44", "St James", "4242", "checkout-secret-1", keys.client):
        assert private not in logged


async def test_the_audit_log_is_filtered_and_paged(api_url: str, keys: Keys) -> None:
    async with http(api_url, keys.operator) as operator, http(api_url, keys.admin) as admin:
        for _ in range(3):
            await operator.post(f"/orders/{uuid.uuid4()}/cancel", json={"reason": "x"})
        await admin.put("/inventory/SKU-1", json={"warehouse": "AMS", "on_hand": 5})
        await operator.put("/inventory/SKU-1", json={"warehouse": "AMS", "on_hand": 1})
        middle = datetime.now(UTC)
        await admin.put("/inventory/SKU-2", json={"warehouse": "AMS", "on_hand": 5})

    by_key = await audit(api_url, keys, key_id=key_id(keys.operator))
    by_action = await audit(api_url, keys, action="PUT /inventory/{sku}")
    by_outcome = await audit(api_url, keys, outcome="forbidden")
    before = await audit(api_url, keys, until=middle.isoformat())
    after = await audit(api_url, keys, since=middle.isoformat())
    operator_only = {"key_id": key_id(keys.operator)}
    async with auditor(api_url, keys) as admin:
        first = (await admin.get("/audit", params={**operator_only, "limit": 3})).json()
        rest = (await admin.get("/audit", params={**operator_only, "cursor": first["next_cursor"]})).json()
        bad_cursor = await admin.get("/audit", params={"cursor": "nonsense"})

    assert len(by_key) == 4
    assert [entry["target"] for entry in by_action] == ["sku=SKU-2", "sku=SKU-1", "sku=SKU-1"]
    assert [(entry["key_id"], entry["action"]) for entry in by_outcome] == [
        (key_id(keys.operator), "PUT /inventory/{sku}")
    ]
    assert len(before) == 5 and [entry["target"] for entry in after] == ["sku=SKU-2"]
    assert [entry["id"] for entry in first["items"] + rest["items"]] == [entry["id"] for entry in by_key]
    assert len(first["items"]) == 3 and rest["next_cursor"] is None
    assert bad_cursor.status_code == 422


async def test_the_audit_log_cannot_be_changed_or_emptied_row_by_row(
    api_url: str, keys: Keys, sessionmaker: Sessions
) -> None:
    async with http(api_url, keys.client) as client:
        await client.post("/orders", json=order_body())

    for statement in ("UPDATE audit_log SET outcome = 'ok', status_code = 200", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with sessionmaker.begin() as session:
                await session.execute(text(statement))

    assert len(await audit(api_url, keys)) == 1


async def test_security_events_reach_the_structured_log_under_stable_names(api_url: str, keys: Keys) -> None:
    operator_id = key_id(keys.operator)
    with capture_logs() as logged:
        async with http(api_url, keys.admin) as admin, http(api_url, keys.operator) as operator:
            await admin.post(f"/keys/{operator_id}/lock")
            await operator.put("/inventory/SKU-1", json={"warehouse": "AMS", "on_hand": 1})
            await operator.get("/orders")

    events = [(entry["event"], entry.get("key_id")) for entry in logged if entry.get("category") == "security"]
    assert events == [
        ("key_locked", operator_id),
        ("auth_failed", operator_id),
        ("auth_failed", operator_id),
        ("source_blocked", operator_id),
    ]
    failed = next(entry for entry in logged if entry["event"] == "auth_failed")
    assert (failed["source"], failed["action"], failed["reason"]) == ("127.0.0.1", "PUT /inventory/{sku}", "refused")
    assert failed["log_level"] == "warning"


async def test_a_failed_audit_write_is_logged_with_the_entry(
    dev_server_env: WorkflowEnvironment, database_url: str, task_queue: str
) -> None:
    client: Client = dev_server_env.client
    engine = create_engine("postgresql://oms:oms@127.0.0.1:1/oms")
    app = create_app(api_settings(database_url, task_queue), client=client, sessionmaker=create_sessionmaker(engine))
    try:
        with capture_logs() as logged:
            async with running_server(app) as base_url, http(base_url) as anonymous:
                response = await anonymous.post("/webhooks/carrier", json={}, headers={"X-Request-ID": "req-lost"})
    finally:
        await engine.dispose()

    [failure] = [entry for entry in logged if entry["event"] == "audit_write_failed"]
    assert failure["log_level"] == "error"
    assert (failure["action"], failure["request_id"]) == ("POST /webhooks/carrier", "req-lost")
    assert failure["status_code"] == response.status_code
