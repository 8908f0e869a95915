"""The API answers about an order with its own model, OrderView, never with the workflow's OrderState.

The view is made at the boundary from the workflow's state; what clients see is pinned here field by
field, so a change to the workflow's state cannot reach them unnoticed. The HTTP test reads a finished
order from its record over real HTTP and real PostgreSQL; such an order needs no Temporal at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.app import create_app
from models.order import (
    Allocation,
    Invoice,
    LineState,
    OrderRequest,
    OrderState,
    OrderStatus,
    ReviewDecision,
    ReviewOutcome,
    Shipment,
    TimelineEvent,
)
from models.views import OrderView
from settings import Settings
from tests.keys import Keys, bearer
from tests.servers import running_server
from tests.test_api import api_settings, order_body, stored_order

Sessions = async_sessionmaker[AsyncSession]

AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def shipped_order() -> OrderState:
    request = OrderRequest.model_validate(order_body())
    state = OrderState.received("o-1", "order-o-1", request, AT, client_id="shop-a")
    state.lines[0].allocations = [Allocation(warehouse="AMS", quantity=2)]
    return state.model_copy(
        update={
            "status": OrderStatus.SHIPPED,
            "review": ReviewOutcome(decision=ReviewDecision.APPROVED),
            "shipment": Shipment(
                carrier="acme", booking_id="B-1", rate=Decimal("4.90"), tracking_number="TRK-1", status="confirmed"
            ),
            "invoice": Invoice(
                invoice_id="INV-1",
                subtotal=Decimal("124.90"),
                tax=Decimal("24.98"),
                total=Decimal("149.88"),
                currency="EUR",
            ),
            "timeline": [
                TimelineEvent(seq=1, at=AT, status=OrderStatus.RECEIVED, actor="workflow", event="received"),
                TimelineEvent(
                    seq=2, at=AT, status=OrderStatus.SHIPPED, actor="workflow", event="shipped", detail="TRK-1"
                ),
            ],
        }
    )


def test_the_view_of_an_order_is_the_json_clients_know() -> None:
    view = OrderView.of(shipped_order())

    assert view.model_dump(mode="json") == {
        "order_id": "o-1",
        "workflow_id": "order-o-1",
        "client_id": "shop-a",
        "status": "shipped",
        "customer": {"id": "C-1", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000"},
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 St James's Sq",
            "line2": None,
            "city": "London",
            "postal_code": "SW1Y 4JH",
            "country": "GB",
        },
        "lines": [
            {
                "line_no": 1,
                "sku": "WIDGET-1",
                "quantity": 2,
                "unit_price": "50.00",
                "allocations": [{"warehouse": "AMS", "quantity": 2}],
                "delivered_quantity": 0,
                "returned_quantity": 0,
                "refunded_quantity": 0,
            },
            {
                "line_no": 2,
                "sku": "BOLT-7",
                "quantity": 4,
                "unit_price": "5.00",
                "allocations": [],
                "delivered_quantity": 0,
                "returned_quantity": 0,
                "refunded_quantity": 0,
            },
        ],
        "total": "120.00",
        "revision": 1,
        "currency": "EUR",
        "backorder_policy": "wait",
        "review": {"decision": "approved", "reasons": [], "reviewed_by": "rules", "note": None},
        "shipment": {
            "carrier": "acme",
            "booking_id": "B-1",
            "rate": "4.90",
            "tracking_number": "TRK-1",
            "status": "confirmed",
        },
        "invoice": {
            "invoice_id": "INV-1",
            "subtotal": "124.90",
            "tax": "24.98",
            "total": "149.88",
            "currency": "EUR",
            "status": "issued",
        },
        "needs_attention": None,
        "cancellation_reason": None,
        "timeline": [
            {
                "seq": 1,
                "at": "2026-03-01T09:30:00Z",
                "status": "received",
                "actor": "workflow",
                "event": "received",
                "detail": None,
            },
            {
                "seq": 2,
                "at": "2026-03-01T09:30:00Z",
                "status": "shipped",
                "actor": "workflow",
                "event": "shipped",
                "detail": "TRK-1",
            },
        ],
        "returns": [],
        "refunds": [],
        "refunded_total": "0.00",
        "replacement_for": None,
        "created_at": "2026-03-01T09:30:00Z",
        "updated_at": "2026-03-01T09:30:00Z",
    }


class LineStateWithMore(LineState):
    picking_batch: str = "batch-7"


class OrderStateWithMore(OrderState):
    """The workflow's state as a later version might keep it: fields the API has not chosen to show."""

    fraud_score: float = 0.93
    lines: list[LineStateWithMore]  # type: ignore[assignment]


def test_a_field_added_to_the_workflows_state_stays_out_of_the_api() -> None:
    state = shipped_order()
    evolved = OrderStateWithMore.model_validate(
        {**state.model_dump(), "lines": [{**line.model_dump(), "picking_batch": "b-1"} for line in state.lines]}
    )

    shown = OrderView.of(evolved).model_dump(mode="json")

    assert "fraud_score" not in shown
    assert all("picking_batch" not in line for line in shown["lines"])
    assert shown == OrderView.of(state).model_dump(mode="json")


# The schema


def order_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    openapi = create_app(Settings()).openapi()
    return openapi["paths"], openapi["components"]["schemas"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/orders/{order_id}"), ("post", "/orders/{order_id}/cancel"), ("post", "/orders/{order_id}/review")],
)
def test_every_route_answering_with_an_order_documents_the_view(method: str, path: str) -> None:
    paths, _ = order_schemas()

    answer = paths[path][method]["responses"]["200"]["content"]["application/json"]["schema"]

    assert answer == {"$ref": "#/components/schemas/OrderView"}


def test_the_workflows_models_are_not_in_the_api_schema() -> None:
    _, schemas = order_schemas()

    assert not {"OrderState", "LineState", "ReviewOutcome", "Shipment", "Invoice", "TimelineEvent"} & set(schemas)


def test_every_field_of_the_view_is_described_in_the_schema() -> None:
    _, schemas = order_schemas()
    views = {name: schema for name, schema in schemas.items() if name.endswith("View")}

    undescribed = [
        f"{name}.{field}"
        for name, schema in views.items()
        for field, definition in schema["properties"].items()
        if not definition.get("description")
    ]

    assert "OrderView" in views
    assert undescribed == []


# Over HTTP


@pytest.fixture
async def operator(
    database_url: str, task_queue: str, sessionmaker: Sessions, keys: Keys
) -> AsyncIterator[httpx.AsyncClient]:
    # A finished order is read from its record alone: a Temporal that is never reached will do.
    never_reached = await Client.connect("127.0.0.1:1", lazy=True)
    app = create_app(api_settings(database_url, task_queue), client=never_reached, sessionmaker=sessionmaker)
    async with (
        running_server(app) as base_url,
        httpx.AsyncClient(base_url=base_url, headers=bearer(keys.operator)) as http,
    ):
        yield http


async def test_an_order_read_over_http_has_exactly_the_fields_of_the_view(
    operator: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    stored = await stored_order(sessionmaker, OrderStatus.DELIVERED)

    response = await operator.get(f"/orders/{stored.order_id}")

    assert response.status_code == 200, response.text
    _, schemas = order_schemas()
    assert list(response.json()) == list(schemas["OrderView"]["properties"])
    assert response.json()["status"] == "delivered"
    assert [event["event"] for event in response.json()["timeline"]] == ["delivered"]
