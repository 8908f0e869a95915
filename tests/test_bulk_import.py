"""Bulk order imports through the HTTP API, on the dev server: CSV and JSON, both error policies, the same
file twice.

The worker runs the bulk job workflow and its real activities, which place each order through the API's
own order client; the orders' workflows are started on a task queue no worker serves, so each stays as
it was started: the test sees every order started once, under its external_ref, without running 250 orders.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.bulk import BulkActivities
from api.app import create_app
from api.order_client import OrderClient
from domain.bulk import CSV_COLUMNS
from models.names import order_workflow_id
from models.tables import IdempotencyKeyRow
from tests.builders import order_body
from tests.conftest import TEST_KEYRING
from tests.keys import CLIENT_ID, Keys, bearer
from tests.polling import NotYet, eventually
from tests.servers import running_server
from tests.test_api import api_settings
from workflows.bulk import BulkJobWorkflow

Sessions = async_sessionmaker[AsyncSession]
CSV = {"Content-Type": "text/csv"}


@dataclass
class Importing:
    shop: httpx.AsyncClient
    temporal: Client
    sessionmaker: Sessions

    async def finished(self, location: str) -> dict[str, Any]:
        async def done() -> None:
            # A page of one item while it runs: the counts are what is waited for.
            response = await self.shop.get(location, params={"limit": 1})
            assert response.status_code == 200, response.text
            job = response.json()
            if job["status"] == "running":
                raise NotYet(f"{job['done']} of {job['total']} done")

        await eventually(done, timeout=60, interval=0.2)
        response = await self.shop.get(location, params={"limit": 1000})
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def keys(self) -> dict[str, str]:
        """The shop's idempotency keys and the order each holds."""
        async with self.sessionmaker() as session:
            rows = await session.execute(
                select(IdempotencyKeyRow.key, IdempotencyKeyRow.order_id).where(IdempotencyKeyRow.owner == CLIENT_ID)
            )
            return {key: order_id for key, order_id in rows}

    async def first_runs(self, order_ids: list[str]) -> dict[str, str]:
        """Each order workflow's first run id: one started twice would have another."""

        async def run_of(order_id: str) -> str:
            description = await self.temporal.get_workflow_handle(order_workflow_id(order_id)).describe()
            return str(description.raw_description.workflow_execution_info.first_run_id)

        return dict(zip(order_ids, await asyncio.gather(*(run_of(order_id) for order_id in order_ids)), strict=True))


@pytest.fixture
async def importing(
    database_url: str, task_queue: str, dev_server_env: WorkflowEnvironment, sessionmaker: Sessions, keys: Keys
) -> AsyncIterator[Importing]:
    client: Client = dev_server_env.client
    # Placing an order is two quick calls: more of them in flight than by default keeps the test short.
    settings = api_settings(database_url, task_queue).model_copy(update={"bulk_concurrency": 50})
    # Orders are started where no worker runs them.
    parked = settings.model_copy(update={"task_queue": f"parked-{uuid.uuid4()}", "api_workflow_timeout_seconds": 10.0})
    bulk = BulkActivities(OrderClient(client, sessionmaker, parked, TEST_KEYRING))
    async with (
        Worker(
            client, task_queue=task_queue, workflows=[BulkJobWorkflow], activities=[bulk.act_on_order, bulk.place_order]
        ),
        running_server(create_app(settings, client=client, sessionmaker=sessionmaker)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=60, headers=bearer(keys.client)) as shop,
    ):
        yield Importing(shop, client, sessionmaker)


def csv_row(ref: str, sku: str, quantity: int = 1, *, country: str = "GB") -> str:
    cells = {
        "external_ref": ref,
        "customer_id": f"C-{ref}",
        "customer_name": "Ada Lovelace",
        "customer_email": "ada@example.com",
        "customer_phone": "+44 20 7946 0000",
        "ship_name": "Ada Lovelace",
        "ship_line1": "12 St James's Sq",
        "ship_city": "London",
        "ship_postal_code": "SW1Y 4JH",
        "ship_country": country,
        "sku": sku,
        "quantity": str(quantity),
        "unit_price": "12.50",
    }
    return ",".join(cells.get(column, "") for column in CSV_COLUMNS)


def csv_file(rows: list[str]) -> str:
    return "\n".join([",".join(CSV_COLUMNS), *rows]) + "\n"


async def test_a_thousand_row_file_starts_each_of_its_orders_once_and_sent_again_starts_none(
    importing: Importing,
) -> None:
    refs = [f"PO-{n:04d}" for n in range(250)]
    text = csv_file([csv_row(ref, f"SKU-{line}", line + 1) for ref in refs for line in range(4)])
    assert text.count("\n") == 1_001

    first = await importing.shop.post("/bulk/orders", content=text, headers=CSV)
    assert first.status_code == 202, first.text
    job = await importing.finished(first.headers["Location"])

    assert (job["action"], job["status"], job["total"], job["done"], job["refused"], job["failed"]) == (
        "import",
        "completed",
        250,
        250,
        0,
        0,
    )
    placed = {item["ref"]: item["order_id"] for item in job["items"]}
    assert await importing.keys() == placed
    assert list(placed) == refs
    runs = await importing.first_runs(list(placed.values()))

    again = await importing.shop.post("/bulk/orders", content=text, headers=CSV)
    assert again.status_code == 202, again.text
    second = await importing.finished(again.headers["Location"])

    assert second["job_id"] != job["job_id"]
    assert {item["ref"]: item["order_id"] for item in second["items"]} == placed
    assert await importing.keys() == placed
    assert await importing.first_runs(list(placed.values())) == runs


async def test_under_reject_all_a_bad_row_is_a_422_naming_each_problem_and_nothing_starts(
    importing: Importing,
) -> None:
    rows = [csv_row("PO-1", "MUG-1"), csv_row("PO-2", "MUG-1", 0), csv_row("PO-3", "MUG-1", country="Britain")]

    response = await importing.shop.post("/bulk/orders", content=csv_file(rows), headers=CSV)

    assert response.status_code == 422
    assert [(problem["row"], problem["field"]) for problem in response.json()["detail"]] == [
        (3, "quantity"),
        (4, "ship_country"),
    ]
    assert await importing.keys() == {}


async def test_under_skip_invalid_the_bad_orders_are_refused_with_the_reason_and_the_good_ones_start(
    importing: Importing,
) -> None:
    rows = [csv_row("PO-1", "MUG-1"), csv_row("PO-2", "MUG-1", 0), csv_row("PO-3", "MUG-1")]

    response = await importing.shop.post(
        "/bulk/orders", content=csv_file(rows), headers=CSV, params={"error_policy": "skip_invalid"}
    )
    assert response.status_code == 202, response.text
    job = await importing.finished(response.headers["Location"])

    outcomes = {item["ref"]: (item["outcome"], item["reason"]) for item in job["items"]}
    assert outcomes["PO-1"][0] == outcomes["PO-3"][0] == "done"
    assert outcomes["PO-2"] == ("refused", "row 3 quantity: Input should be greater than or equal to 1")
    assert set(await importing.keys()) == {"PO-1", "PO-3"}


async def test_a_json_import_refuses_an_external_ref_already_used_for_another_order(importing: Importing) -> None:
    first = {"orders": [{**order_body(), "external_ref": "PO-9"}]}
    accepted = await importing.shop.post("/bulk/orders", json=first)
    assert accepted.status_code == 202, accepted.text
    await importing.finished(accepted.headers["Location"])
    order_id = (await importing.keys())["PO-9"]
    changed = {**order_body(currency="USD"), "external_ref": "PO-9"}
    broken = {**order_body(customer={"id": ""}), "external_ref": "PO-10"}

    refused = await importing.shop.post("/bulk/orders", json={"orders": [changed, broken]})
    empty = await importing.shop.post("/bulk/orders", json={"orders": [], "error_policy": "skip_invalid"})
    skipped = await importing.shop.post(
        "/bulk/orders", json={"orders": [changed, broken], "error_policy": "skip_invalid"}
    )

    assert refused.status_code == 422
    assert refused.json()["detail"] == [
        {"row": 2, "field": "customer.id", "message": "String should have at least 1 character"}
    ]
    assert (empty.status_code, empty.json()["detail"]) == (
        422,
        [{"row": 0, "field": "orders", "message": "List should have at least 1 item after validation, not 0"}],
    )
    job = await importing.finished(skipped.headers["Location"])
    assert [(item["ref"], item["outcome"], item["reason"]) for item in job["items"]] == [
        ("PO-9", "refused", f"external_ref 'PO-9' was already used for a different order ({order_id})"),
        ("PO-10", "refused", "row 2 customer.id: String should have at least 1 character"),
    ]


async def test_only_clients_and_admins_import_and_a_job_is_its_clients_own(importing: Importing, keys: Keys) -> None:
    body = {"orders": [{**order_body(), "external_ref": "PO-1"}]}
    accepted = await importing.shop.post("/bulk/orders", json=body)
    assert accepted.status_code == 202, accepted.text
    location = accepted.headers["Location"]

    for key, status in ((keys.operator, 403), (keys.purchasing, 403)):
        async with httpx.AsyncClient(base_url=importing.shop.base_url, headers=bearer(key)) as caller:
            assert (await caller.post("/bulk/orders", json=body)).status_code == status
    async with httpx.AsyncClient(base_url=importing.shop.base_url, headers=bearer(keys.other_client)) as other:
        assert (await other.get(location)).status_code == 404
        assert (await other.post(f"{location}/cancel")).status_code == 404
    async with httpx.AsyncClient(base_url=importing.shop.base_url, headers=bearer(keys.operator)) as operator:
        assert (await operator.get(location)).status_code == 200
    unsupported = await importing.shop.post("/bulk/orders", content=b"<orders/>", headers={"Content-Type": "text/xml"})
    assert unsupported.status_code == 415


async def test_an_import_too_large_for_one_job_is_a_413_and_nothing_starts(importing: Importing) -> None:
    long = "x" * 200
    lines = [{"sku": f"{n}{'S' * 60}", "quantity": 1, "unit_price": "1.00"} for n in range(5)]
    order = {
        **order_body(
            lines=lines,
            customer={"name": long, "email": f"{'e' * 240}@example.com"},
            address={"name": long, "line1": long, "line2": long, "city": long},
        )
    }
    body = {"orders": [{**order, "external_ref": f"PO-{n}"} for n in range(1_000)]}

    response = await importing.shop.post("/bulk/orders", json=body)

    assert response.status_code == 413, response.text
    assert "split it" in response.json()["detail"]
    assert await importing.keys() == {}
