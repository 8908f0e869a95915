"""Bad input never gets in: every endpoint refuses it with a 4xx naming the problem, and nothing is
started or stored.

Real HTTP to the API, real PostgreSQL and a real Temporal dev server; no worker polls the test's
task queue, so a workflow the API started by mistake would still be there to count.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from db.orders import encode_cursor
from models.names import replenishment_workflow_id
from models.tables import Base
from security import signing
from settings import Settings
from tests.keys import Keys, bearer
from tests.servers import running_server
from tests.test_api import api_settings, order_body

Sessions = async_sessionmaker[AsyncSession]

LIMIT = 65_536
SKU = "WIDGET-1"
UNKNOWN_ORDER = str(uuid.uuid4())


@pytest.fixture
def temporal(dev_server_env: WorkflowEnvironment) -> Client:
    return dev_server_env.client


@pytest.fixture
async def api(
    database_url: str, task_queue: str, temporal: Client, sessionmaker: Sessions, keys: Keys
) -> AsyncIterator[httpx.AsyncClient]:
    """The API as an admin calls it: every route is open to that key, so what is refused is the input."""
    app = create_app(api_settings(database_url, task_queue), client=temporal, sessionmaker=sessionmaker)
    async with (
        running_server(app) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30, headers=bearer(keys.admin)) as http,
    ):
        yield http


# The callers' keys, and the audit log, which records every refused request by design.
NOT_ORDER_DATA = frozenset({"api_keys", "audit_log"})


async def stored_rows(sessionmaker: Sessions) -> dict[str, int]:
    """Rows in every table of the schema but the keys and the audit log, by table, leaving out empty ones."""
    counts = {}
    async with sessionmaker() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in NOT_ORDER_DATA:
                continue
            count = int(await session.scalar(select(func.count()).select_from(table)) or 0)
            if count:
                counts[table.name] = count
    return counts


async def assert_nothing_started_or_stored(temporal: Client, task_queue: str, sessionmaker: Sessions) -> None:
    assert (await temporal.count_workflows(f"TaskQueue = '{task_queue}'")).count == 0
    try:
        await temporal.get_workflow_handle(replenishment_workflow_id(SKU)).describe()
    except RPCError as error:
        assert error.status == RPCStatusCode.NOT_FOUND
    else:
        raise AssertionError(f"the replenishment workflow of {SKU} was started")
    assert await stored_rows(sessionmaker) == {}


@dataclass(frozen=True)
class Bad:
    """A bad request and the answer it must get: the status, and the field named (422) or words in the detail."""

    method: str
    path: str
    status: int
    loc: list[str | int] | None = None
    says: str | None = None
    json: Any = None
    content: bytes | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    def send(self, api: httpx.AsyncClient) -> Any:
        content, headers = self.content, dict(self.headers)
        if self.json is not None:
            content = json.dumps(self.json).encode()
            headers.setdefault("Content-Type", "application/json")
        if self.path == "/webhooks/carrier" and content is not None:
            # Signed as the carrier signs, so that what is refused is the body, not the delivery.
            headers.update(signing.sign(Settings().carrier_webhook_secret, content))
        return api.request(self.method, self.path, content=content, headers=headers, params=self.params)


def raw(text: str, content_type: str = "application/json") -> dict[str, Any]:
    """A body sent byte for byte, for what a JSON encoder would never produce."""
    return {"content": text.encode("utf-8", "surrogatepass"), "headers": {"Content-Type": content_type}}


def order_with(path: str, value: Any) -> dict[str, Any]:
    """The valid order with one field, named by a dotted path ("lines.0.quantity"), set to `value`."""
    body = order_body()
    *parents, last = path.split(".")
    target: Any = body
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    return body


def order_refused(path: str, value: Any, loc: list[str | int] | None = None) -> Bad:
    where: list[str | int] = ["body", *(int(part) if part.isdigit() else part for part in path.split("."))]
    return Bad("POST", "/orders", 422, loc=loc or where, json=order_with(path, value))


def line(**changes: Any) -> dict[str, Any]:
    return {"sku": SKU, "quantity": 1, "unit_price": "1.00", **changes}


# A JSON document of exactly `size` bytes: the valid order, padded with spaces inside the object.
def order_of_size(size: int) -> bytes:
    body = json.dumps(order_body()).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


TRACKING = {
    "event_id": "evt-1",
    "order_id": UNKNOWN_ORDER,
    "tracking_number": "TRK-1",
    "status": "in_transit",
    "at": "2025-03-01T12:00:00Z",
}

ORDERS: dict[str, Bad] = {
    # Size and shape of the body.
    "body over the limit": Bad(
        "POST",
        "/orders",
        413,
        says=f"limit of {LIMIT} bytes",
        content=order_of_size(LIMIT + 1),
        headers={"Content-Type": "application/json"},
    ),
    "101 lines": order_refused("lines", [line(sku=f"S-{n}") for n in range(101)], ["body", "lines"]),
    "no lines": order_refused("lines", [], ["body", "lines"]),
    "malformed JSON": Bad("POST", "/orders", 422, loc=["body"], says="malformed JSON", **raw('{"customer": ')),
    "not UTF-8": Bad(
        "POST",
        "/orders",
        422,
        loc=["body"],
        says="malformed JSON",
        content=b'{"customer": "\xff\xfe"}',
        headers={"Content-Type": "application/json"},
    ),
    "nested too deep": Bad("POST", "/orders", 422, loc=["body"], says="malformed JSON", **raw(nested(20_000))),
    "a number of 5000 digits": Bad(
        "POST",
        "/orders",
        422,
        loc=["body"],
        says="malformed JSON",
        **raw(json.dumps(order_body()).replace('"quantity": 2', '"quantity": ' + "9" * 5000)),
    ),
    "NaN": Bad(
        "POST",
        "/orders",
        422,
        loc=["body", "lines", 0, "quantity"],
        **raw(json.dumps(order_body()).replace('"quantity": 2', '"quantity": NaN')),
    ),
    "a list, not an object": Bad("POST", "/orders", 422, loc=["body"], says="JSON object", json=[order_body()]),
    "empty body": Bad(
        "POST",
        "/orders",
        422,
        loc=["body"],
        says="body is required",
        content=b"",
        headers={"Content-Type": "application/json"},
    ),
    "form instead of JSON": Bad(
        "POST",
        "/orders",
        415,
        says="Content-Type: application/json",
        **raw("customer=C-1", "application/x-www-form-urlencoded"),
    ),
    "text instead of JSON": Bad(
        "POST", "/orders", 415, says="must be JSON", **raw(json.dumps(order_body()), "text/plain")
    ),
    # Quantities.
    "quantity 0": order_refused("lines.0.quantity", 0),
    "quantity above 10000": order_refused("lines.0.quantity", 10_001),
    "quantity as a string": order_refused("lines.0.quantity", "2"),
    "fractional quantity": order_refused("lines.0.quantity", 2.5),
    "quantity true": order_refused("lines.0.quantity", True),
    "quantity null": order_refused("lines.0.quantity", None),
    # Money.
    "price true": order_refused("lines.0.unit_price", True),
    "price as a JSON fraction": order_refused("lines.0.unit_price", 12.5),
    "price with 3 decimals": order_refused("lines.0.unit_price", "1.005"),
    "price in exponent notation": order_refused("lines.0.unit_price", "1e3"),
    "price above 999999.99": order_refused("lines.0.unit_price", "1000000.00"),
    "negative price": order_refused("lines.0.unit_price", "-1.00"),
    "price NaN": order_refused("lines.0.unit_price", "NaN"),
    # Strings: length, control characters, NUL bytes, blanks, lone surrogates.
    "name of 201 characters": order_refused("customer.name", "A" * 201),
    "line1 of 201 characters": order_refused("shipping_address.line1", "1" * 201),
    "email of 255 characters": order_refused("customer.email", "a" * 243 + "@example.com"),
    "phone of 33 characters": order_refused("customer.phone", "1" * 33),
    "postal code of 17 characters": order_refused("shipping_address.postal_code", "1" * 17),
    "sku of 65 characters": order_refused("lines.0.sku", "S" * 65),
    "customer id of 65 characters": order_refused("customer.id", "C" * 65),
    "NUL in a name": order_refused("customer.name", "Ada\x00Lovelace"),
    "NUL in an email": order_refused("customer.email", "ada\x00@example.com"),
    "NUL in a sku": order_refused("lines.0.sku", "WIDGET\x00"),
    "NUL in a customer id": order_refused("customer.id", "C\x00"),
    "escape character in a city": order_refused("shipping_address.city", "London\x1b[2J"),
    "line break in an address line": order_refused("shipping_address.line1", "12 St James's Sq\nLondon"),
    "blank name": order_refused("customer.name", "   "),
    "lone surrogate in a name": Bad(
        "POST",
        "/orders",
        422,
        loc=["body", "customer", "name"],
        **raw(json.dumps(order_body()).replace("Ada Lovelace", "Ada \\ud800")),
    ),
    "lower-case country": order_refused("shipping_address.country", "gb"),
    "currency as a number": order_refused("currency", 978),
    # Wrong types.
    "customer as a string": order_refused("customer", "C-1"),
    "lines as an object": order_refused("lines", {"0": line()}, ["body", "lines"]),
    "unknown backorder policy": order_refused("backorder_policy", "maybe"),
    # Unknown and server-owned fields.
    "unknown field": order_refused("coupon", "FREE"),
    "status set by the client": order_refused("status", "delivered"),
    "total set by the client": order_refused("total", "0.01"),
    "order id set by the client": order_refused("order_id", str(uuid.uuid4())),
    "client id set by the client": order_refused("client_id", "someone-else"),
    "unknown field in a line": order_refused("lines.0.discount", "100%"),
    # Headers.
    "Idempotency-Key of 256 characters": Bad(
        "POST",
        "/orders",
        422,
        loc=["header", "Idempotency-Key"],
        json=order_body(),
        headers={"Idempotency-Key": "k" * 256},
    ),
    "Idempotency-Key not ASCII": Bad(
        "POST",
        "/orders",
        422,
        loc=["header", "Idempotency-Key"],
        json=order_body(),
        headers={"Idempotency-Key": "caf\xe9".encode("latin-1")},
    ),
}

ORDER_ACTIONS: dict[str, Bad] = {
    "order id with a NUL byte": Bad("GET", "/orders/abc%00def", 422, loc=["path", "order_id"]),
    "order id of 65 characters": Bad("GET", f"/orders/{'a' * 65}", 422, loc=["path", "order_id"]),
    "cancel with a NUL byte in the order id": Bad(
        "POST", "/orders/abc%00/cancel", 422, loc=["path", "order_id"], json={"reason": "changed my mind"}
    ),
    "cancel reason of 501 characters": Bad(
        "POST", f"/orders/{UNKNOWN_ORDER}/cancel", 422, loc=["body", "reason"], json={"reason": "r" * 501}
    ),
    "cancel reason with a NUL byte": Bad(
        "POST", f"/orders/{UNKNOWN_ORDER}/cancel", 422, loc=["body", "reason"], json={"reason": "changed\x00my mind"}
    ),
    "blank cancel reason": Bad(
        "POST", f"/orders/{UNKNOWN_ORDER}/cancel", 422, loc=["body", "reason"], json={"reason": " \n "}
    ),
    "cancel reason as a number": Bad(
        "POST", f"/orders/{UNKNOWN_ORDER}/cancel", 422, loc=["body", "reason"], json={"reason": 42}
    ),
    "cancel with the status to set": Bad(
        "POST",
        f"/orders/{UNKNOWN_ORDER}/cancel",
        422,
        loc=["body", "status"],
        json={"reason": "changed my mind", "status": "cancelled"},
    ),
    "cancel as a form": Bad(
        "POST",
        f"/orders/{UNKNOWN_ORDER}/cancel",
        415,
        says="must be JSON",
        **raw("reason=changed", "application/x-www-form-urlencoded"),
    ),
    "review decision unknown": Bad(
        "POST", f"/orders/{UNKNOWN_ORDER}/review", 422, loc=["body", "decision"], json={"decision": "approve!"}
    ),
    "review decision true": Bad(
        "POST", f"/orders/{UNKNOWN_ORDER}/review", 422, loc=["body", "decision"], json={"decision": True}
    ),
    "review note of 1001 characters": Bad(
        "POST",
        f"/orders/{UNKNOWN_ORDER}/review",
        422,
        loc=["body", "note"],
        json={"decision": "approve", "note": "n" * 1001},
    ),
    "review note with a NUL byte": Bad(
        "POST",
        f"/orders/{UNKNOWN_ORDER}/review",
        422,
        loc=["body", "note"],
        json={"decision": "approve", "note": "ok\x00"},
    ),
    "review with the reviewer to record": Bad(
        "POST",
        f"/orders/{UNKNOWN_ORDER}/review",
        422,
        loc=["body", "reviewed_by"],
        json={"decision": "approve", "reviewed_by": "the boss"},
    ),
    "review body over the limit": Bad(
        "POST",
        f"/orders/{UNKNOWN_ORDER}/review",
        413,
        says=f"limit of {LIMIT} bytes",
        json={"decision": "approve", "note": "n" * LIMIT},
    ),
}

LISTING: dict[str, Bad] = {
    "customer id with a NUL byte": Bad(
        "GET", "/orders", 422, loc=["query", "customer_id"], params={"customer_id": "C\x00"}
    ),
    "sku with a NUL byte": Bad("GET", "/orders", 422, loc=["query", "sku"], params={"sku": "W\x00"}),
    "customer id of 65 characters": Bad(
        "GET", "/orders", 422, loc=["query", "customer_id"], params={"customer_id": "C" * 65}
    ),
    "cursor with a NUL byte": Bad("GET", "/orders", 422, loc=["query", "cursor"], params={"cursor": "ab\x00"}),
    "cursor naming an order id with a NUL byte": Bad(
        "GET", "/orders", 422, loc=["query", "cursor"], params={"cursor": encode_cursor(datetime.now(UTC), "x\x00")}
    ),
    "cursor of 501 characters": Bad("GET", "/orders", 422, loc=["query", "cursor"], params={"cursor": "a" * 501}),
    "limit as a word": Bad("GET", "/orders", 422, loc=["query", "limit"], params={"limit": "ten"}),
    "fractional limit": Bad("GET", "/orders", 422, loc=["query", "limit"], params={"limit": "2.5"}),
}

INVENTORY: dict[str, Bad] = {
    "sku with a NUL byte": Bad("GET", "/inventory/W%00", 422, loc=["path", "sku"]),
    "negative count": Bad(
        "PUT", f"/inventory/{SKU}", 422, loc=["body", "on_hand"], json={"warehouse": "AMS", "on_hand": -1}
    ),
    "count above 10000000": Bad(
        "PUT", f"/inventory/{SKU}", 422, loc=["body", "on_hand"], json={"warehouse": "AMS", "on_hand": 10_000_001}
    ),
    "count as a string": Bad(
        "PUT", f"/inventory/{SKU}", 422, loc=["body", "on_hand"], json={"warehouse": "AMS", "on_hand": "5"}
    ),
    "fractional count": Bad(
        "PUT", f"/inventory/{SKU}", 422, loc=["body", "on_hand"], json={"warehouse": "AMS", "on_hand": 5.5}
    ),
    "count true": Bad(
        "PUT", f"/inventory/{SKU}", 422, loc=["body", "on_hand"], json={"warehouse": "AMS", "on_hand": True}
    ),
    "warehouse with a NUL byte": Bad(
        "PUT", f"/inventory/{SKU}", 422, loc=["body", "warehouse"], json={"warehouse": "AMS\x00", "on_hand": 5}
    ),
    "warehouse of 33 characters": Bad(
        "PUT", f"/inventory/{SKU}", 422, loc=["body", "warehouse"], json={"warehouse": "W" * 33, "on_hand": 5}
    ),
    "count with the reserved units to set": Bad(
        "PUT",
        f"/inventory/{SKU}",
        422,
        loc=["body", "reserved"],
        json={"warehouse": "AMS", "on_hand": 5, "reserved": 0},
    ),
    "count as a form": Bad(
        "PUT",
        f"/inventory/{SKU}",
        415,
        says="must be JSON",
        **raw("warehouse=AMS&on_hand=5", "application/x-www-form-urlencoded"),
    ),
    "receipt of 0 units": Bad(
        "POST", f"/inventory/{SKU}/receipts", 422, loc=["body", "quantity"], json={"warehouse": "AMS", "quantity": 0}
    ),
    "receipt quantity as a string": Bad(
        "POST", f"/inventory/{SKU}/receipts", 422, loc=["body", "quantity"], json={"warehouse": "AMS", "quantity": "1"}
    ),
    "receipt quantity true": Bad(
        "POST", f"/inventory/{SKU}/receipts", 422, loc=["body", "quantity"], json={"warehouse": "AMS", "quantity": True}
    ),
    "receipt id of 129 characters": Bad(
        "POST",
        f"/inventory/{SKU}/receipts",
        422,
        loc=["header", "Idempotency-Key"],
        json={"warehouse": "AMS", "quantity": 1},
        headers={"Idempotency-Key": "r" * 129},
    ),
    "receipt with an unknown field": Bad(
        "POST",
        f"/inventory/{SKU}/receipts",
        422,
        loc=["body", "supplier"],
        json={"warehouse": "AMS", "quantity": 1, "supplier": "ACME"},
    ),
    "receipt malformed": Bad(
        "POST",
        f"/inventory/{SKU}/receipts",
        422,
        loc=["body"],
        says="malformed JSON",
        **raw('{"warehouse": "AMS", "quantity": 1'),
    ),
}

WEBHOOK: dict[str, Bad] = {
    "time as a number": Bad(
        "POST", "/webhooks/carrier", 422, loc=["body", "at"], json={**TRACKING, "at": 1_740_830_400}
    ),
    "time without a zone": Bad(
        "POST", "/webhooks/carrier", 422, loc=["body", "at"], json={**TRACKING, "at": "2025-03-01T12:00:00"}
    ),
    "event id with a NUL byte": Bad(
        "POST", "/webhooks/carrier", 422, loc=["body", "event_id"], json={**TRACKING, "event_id": "evt\x00"}
    ),
    "order id with a NUL byte": Bad(
        "POST", "/webhooks/carrier", 422, loc=["body", "order_id"], json={**TRACKING, "order_id": "o\x00"}
    ),
    "order id of 65 characters": Bad(
        "POST", "/webhooks/carrier", 422, loc=["body", "order_id"], json={**TRACKING, "order_id": "o" * 65}
    ),
    "tracking number of 65 characters": Bad(
        "POST",
        "/webhooks/carrier",
        422,
        loc=["body", "tracking_number"],
        json={**TRACKING, "tracking_number": "T" * 65},
    ),
    "unknown status": Bad(
        "POST", "/webhooks/carrier", 422, loc=["body", "status"], json={**TRACKING, "status": "teleported"}
    ),
    "unknown field": Bad(
        "POST", "/webhooks/carrier", 422, loc=["body", "signature"], json={**TRACKING, "signature": "trust me"}
    ),
    "event over the limit": Bad(
        "POST", "/webhooks/carrier", 413, says=f"limit of {LIMIT} bytes", json={**TRACKING, "event_id": "e" * LIMIT}
    ),
}

CASES = {
    **{f"POST /orders: {name}": bad for name, bad in ORDERS.items()},
    **{f"orders: {name}": bad for name, bad in ORDER_ACTIONS.items()},
    **{f"GET /orders: {name}": bad for name, bad in LISTING.items()},
    **{f"inventory: {name}": bad for name, bad in INVENTORY.items()},
    **{f"POST /webhooks/carrier: {name}": bad for name, bad in WEBHOOK.items()},
}


@pytest.mark.parametrize("case", CASES.keys())
async def test_bad_input_is_refused_naming_the_problem_and_nothing_is_started_or_stored(
    case: str, api: httpx.AsyncClient, temporal: Client, task_queue: str, sessionmaker: Sessions
) -> None:
    bad = CASES[case]

    response = await bad.send(api)

    assert response.status_code == bad.status, response.text
    detail = response.json()["detail"]
    if bad.status == 422:
        assert bad.loc in [error["loc"] for error in detail], detail
        assert all(error["msg"] and error["type"] for error in detail)
        if bad.says is not None:
            assert any(bad.says in error["msg"] for error in detail), detail
    else:
        assert isinstance(detail, str)
        assert bad.says is not None and bad.says in detail
    await assert_nothing_started_or_stored(temporal, task_queue, sessionmaker)


async def test_a_body_of_many_unknown_fields_gets_a_bounded_answer(api: httpx.AsyncClient) -> None:
    body = order_body(**{f"field{n}": 0 for n in range(3000)})

    response = await api.post("/orders", json=body)

    assert response.status_code == 422
    assert len(response.json()["detail"]) == 50
    assert len(response.content) < 10_000


async def test_a_refusal_does_not_echo_the_input(api: httpx.AsyncClient) -> None:
    secret = "4111 1111 1111 1111"
    body = order_with("customer.phone", secret + "\x00")

    response = await api.post("/orders", json=body)

    assert response.status_code == 422
    assert secret not in response.text


async def test_a_body_streamed_past_the_limit_is_a_413_and_nothing_is_started_or_stored(
    api: httpx.AsyncClient, temporal: Client, task_queue: str, sessionmaker: Sessions
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the body arrives chunked, and only counting it tells its size.
        yield b'{"customer": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    response = await api.post("/orders", content=chunks(), headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.json() == {"detail": f"the request body is larger than the limit of {LIMIT} bytes"}
    await assert_nothing_started_or_stored(temporal, task_queue, sessionmaker)


async def test_a_body_of_exactly_the_limit_is_read(api: httpx.AsyncClient) -> None:
    response = await api.post("/orders", content=order_of_size(LIMIT), headers={"Content-Type": "application/json"})

    assert response.status_code == 202


async def test_a_streamed_body_within_the_limit_is_read(api: httpx.AsyncClient) -> None:
    body = order_of_size(LIMIT)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    response = await api.post("/orders", content=chunks(), headers={"Content-Type": "application/json"})

    assert response.status_code == 202


async def test_a_method_a_path_does_not_have_is_a_405_listing_the_methods_it_has(api: httpx.AsyncClient) -> None:
    response = await api.delete(f"/inventory/{SKU}")

    assert response.status_code == 405
    assert response.json() == {"detail": "Method Not Allowed"}
    assert response.headers["allow"] == "GET, HEAD, PUT"
