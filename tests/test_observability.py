"""What operators see: the API's and the worker's Prometheus metrics, and log lines that name their order and the
API request they were written for, in the API, in workflows and in activities.

Real PostgreSQL, the real Temporal dev server, the real worker (in this process, or as `python worker.py`
where its stdout and its metrics endpoint are what is checked) and the API over HTTP.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.common import HeaderCodecBehavior
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.names import HEADER_REQUEST_ID, QUERY_STATUS, order_workflow_id
from models.order import OrderState, OrderStatus
from observability import request_id
from observability.interceptors import WorkerContextInterceptor
from security.codec import ENCODING
from settings import Settings
from tests.conftest import TEST_KEYRING, capturing_logs
from tests.servers import free_port
from tests.stack import NotYet, Stack, eventually, running_stack
from tests.test_crash_recovery import worker_environment
from tests.test_end_to_end import line, new_sku, order_body

Sessions = async_sessionmaker[AsyncSession]
ROOT = Path(__file__).resolve().parent.parent
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(exposition: str) -> Samples:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(scraped: Samples, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


# The API's metrics.


async def scrape_api(stack: Stack) -> tuple[str, Samples]:
    response = await stack.operator.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text, samples(response.text)


async def test_the_api_counts_requests_by_route_template_and_reports_orders_and_shortages(stack: Stack) -> None:
    sku, scarce = new_sku("METRIC"), new_sku("SCARCE")
    await stack.count_stock(sku, 10)
    await stack.count_stock(scarce, 0)
    _, before = await scrape_api(stack)

    delivered = [await stack.place_order(order_body([line(sku, 1, "5.00")])) for _ in range(2)]
    backordered = await stack.place_order(order_body([line(scarce, 3, "5.00")]))
    for order_id in delivered:
        await stack.wait_for_status(order_id, "delivered")
    await stack.wait_for_status(backordered, "backordered")
    await stack.order(delivered[0])
    assert (await stack.api.get("/no/such/path")).status_code == 404
    async with stack.http(None) as anonymous:
        assert (await anonymous.get("/metrics")).status_code == 401

    async def shortage_recorded() -> tuple[str, Samples]:
        text, scraped = await scrape_api(stack)
        if value(scraped, "oms_open_shortages") < 1:
            raise NotYet("the shortage is not recorded yet")
        return text, scraped

    text, after = await eventually(shortage_recorded, timeout=30)

    placed = {"method": "POST", "route": "/orders", "status": "202"}
    assert value(before, "oms_http_requests_total", **placed) == 0
    assert value(after, "oms_http_requests_total", **placed) == 3
    assert value(after, "oms_http_request_duration_seconds_count", method="POST", route="/orders") == 3
    assert value(after, "oms_http_requests_total", method="GET", route="/orders/{order_id}", status="200") >= 1
    assert value(after, "oms_http_requests_total", method="GET", route="unmatched", status="404") == 1
    # Refused at the door, and counted all the same.
    assert value(after, "oms_http_requests_total", method="GET", route="/metrics", status="401") == 1
    # Routes are named by their template only: no order id, no path sent, in any label.
    assert delivered[0] not in text
    assert "/no/such/path" not in text

    orders = {status.value: value(after, "oms_orders", status=status.value) for status in OrderStatus}
    assert orders == {status.value: 0 for status in OrderStatus} | {"delivered": 2, "backordered": 1}
    assert value(after, "oms_open_shortages") == 1
    assert value(after, "oms_open_shortage_units") == 3
    oldest = datetime.fromtimestamp(value(after, "oms_oldest_open_shortage_timestamp_seconds"), UTC)
    assert datetime.now(UTC) - timedelta(minutes=1) < oldest <= datetime.now(UTC)
    assert value(after, "process_resident_memory_bytes") > 0


# Request log lines.


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    with capturing_logs("INFO") as lines:
        yield lines


async def test_api_lines_carry_the_request_id_and_the_order_the_request_is_about(
    captured_logs: io.StringIO, stack: Stack
) -> None:
    sku = new_sku("REQ")
    await stack.count_stock(sku, 5)
    body = order_body([line(sku, 1, "5.00")])
    placed = await stack.api.post("/orders", json=body, headers={"X-Request-ID": "obs-place-1"})
    order_id = str(placed.json()["order_id"])
    # Purchasing may not read orders: the guard's warning is a line written while serving that request.
    denied = await stack.purchasing.get(f"/orders/{order_id}", headers={"X-Request-ID": "obs-read-2"})
    assert (placed.status_code, denied.status_code) == (202, 403)

    lines = [json.loads(text) for text in captured_logs.getvalue().splitlines()]
    [accepted] = [entry for entry in lines if entry["event"] == "order accepted"]
    [refused] = [
        entry for entry in lines if entry["event"] == "access_denied" and entry.get("request_id") == "obs-read-2"
    ]
    for entry, request in ((accepted, "obs-place-1"), (refused, "obs-read-2")):
        assert (entry["request_id"], entry["order_id"], entry["workflow_id"]) == (
            request,
            order_id,
            order_workflow_id(order_id),
        )


# The request id, carried by Temporal headers.


@activity.defn(name="seen_request_id")
async def seen_request_id() -> str | None:
    return request_id.current()


@workflow.defn(name="RequestIdProbe", sandboxed=False)
class RequestIdProbe:
    """Reports the request id it sees: in its run, in an activity, in a local activity and in a signal."""

    def __init__(self) -> None:
        self._signalled: list[str | None] = []

    @workflow.run
    async def run(self) -> list[str | None]:
        started = request_id.current()
        timeout = timedelta(seconds=10)
        in_activity = await workflow.execute_activity(seen_request_id, start_to_close_timeout=timeout)
        in_local_activity = await workflow.execute_local_activity(seen_request_id, start_to_close_timeout=timeout)
        await workflow.wait_condition(lambda: bool(self._signalled))
        return [started, in_activity, in_local_activity, *self._signalled]

    @workflow.signal
    def note(self) -> None:
        self._signalled.append(request_id.current())


def with_headers_through_codec(client: Client, behaviour: HeaderCodecBehavior) -> Client:
    return Client(**{**client.config(), "header_codec_behavior": behaviour})


SEEN_EVERYWHERE = ["req-start", "req-start", "req-start", "req-sig"]


@pytest.mark.parametrize(
    ("sender", "worker", "expected"),
    [
        (HeaderCodecBehavior.NO_CODEC, HeaderCodecBehavior.NO_CODEC, SEEN_EVERYWHERE),
        (HeaderCodecBehavior.CODEC, HeaderCodecBehavior.CODEC, SEEN_EVERYWHERE),
        # A header the worker cannot read (still encrypted) is no request id, never a failed workflow.
        (HeaderCodecBehavior.CODEC, HeaderCodecBehavior.NO_CODEC, [None, None, None, None]),
    ],
    ids=["plain-headers", "encrypted-headers", "unreadable-headers"],
)
async def test_the_request_id_reaches_the_workflow_its_activities_and_its_signals(
    dev_server_env: WorkflowEnvironment,
    task_queue: str,
    sender: HeaderCodecBehavior,
    worker: HeaderCodecBehavior,
    expected: list[str | None],
) -> None:
    client = with_headers_through_codec(dev_server_env.client, sender)
    worker_client = with_headers_through_codec(dev_server_env.client, worker)
    async with Worker(
        worker_client,
        task_queue=task_queue,
        workflows=[RequestIdProbe],
        activities=[seen_request_id],
        interceptors=[WorkerContextInterceptor()],
    ):
        with request_id.bound("req-start"):
            handle = await client.start_workflow(RequestIdProbe.run, id=f"probe-{uuid.uuid4()}", task_queue=task_queue)
        with request_id.bound("req-sig"):
            await handle.signal(RequestIdProbe.note)
        seen = await handle.result()
        history = await handle.fetch_history()

    assert seen == expected
    started = next(e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    header = started.workflow_execution_started_event_attributes.header.fields[HEADER_REQUEST_ID]
    # Through the codec the header is encrypted like any payload; without it, a plain JSON string.
    assert header.metadata["encoding"] == (ENCODING if sender == HeaderCodecBehavior.CODEC else b"json/plain")


# The worker as production runs it: its log lines and its metrics endpoint.


@asynccontextmanager
async def worker_process(env: dict[str, str], stdout: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python worker.py` writing its log lines to `stdout`; stopped with SIGTERM, so it drains and exits, on exit."""
    with stdout.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(sys.executable, "worker.py", cwd=ROOT, env=env, stdout=sink)
        try:
            yield process
        finally:
            if process.returncode is None:
                process.terminate()
                await asyncio.wait_for(process.wait(), timeout=30)


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text().splitlines() if text.startswith("{")]


async def scrape_worker(port: int) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200, response.text
    return response.text


def total(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples named `name`, exactly as exposed, whose labels include `labels`."""
    wanted = [f'{label}="{value}"' for label, value in labels.items()]
    return sum(
        float(sample.rsplit(" ", 1)[1])
        for sample in exposition.splitlines()
        if sample.startswith(name + "{") and all(label in sample for label in wanted)
    )


async def test_a_request_id_reaches_the_worker_log_lines_of_its_order_and_the_worker_serves_sdk_metrics(
    dev_server_env: WorkflowEnvironment, database_url: str, sessionmaker: Sessions, task_queue: str, tmp_path: Path
) -> None:
    request = f"obs-{uuid.uuid4().hex[:12]}"
    metrics_port = free_port()
    async with running_stack(dev_server_env.client, database_url, sessionmaker, task_queue, with_worker=False) as stack:
        env = worker_environment(stack) | {
            "OMS_LOG_LEVEL": "INFO",
            "OMS_WORKER_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
        }
        sku = new_sku("LOGS")
        await stack.count_stock(sku, 5)
        # The carrier refuses at first, so that an activity attempt fails and the SDK logs it.
        await stack.set_fault("carrier", failure_rate=1.0)
        async with worker_process(env, tmp_path / "worker.jsonl"):
            response = await stack.api.post(
                "/orders", json=order_body([line(sku, 1, "5.00")]), headers={"X-Request-ID": request}
            )
            assert response.status_code == 202, response.text
            assert response.headers["x-request-id"] == request
            order_id = str(response.json()["order_id"])

            async def carrier_refused() -> None:
                assert stack.standin_answers.count("carrier", 503) >= 1

            await eventually(carrier_refused, timeout=30)
            await stack.clear_faults()
            await stack.wait_for_status(order_id, "delivered")

            async def workflow_completed() -> str:
                scraped = await scrape_worker(metrics_port)
                if total(scraped, "temporal_workflow_completed", workflow_type="OrderWorkflow") < 1:
                    raise NotYet("no order workflow counted as completed yet")
                return scraped

            scraped = await eventually(workflow_completed, timeout=30)

        # A new worker answers a query of the closed workflow by replaying its whole history.
        async with worker_process(env, tmp_path / "replaying-worker.jsonl"):
            handle = dev_server_env.client.get_workflow_handle(order_workflow_id(order_id))
            state = await handle.query(QUERY_STATUS, result_type=OrderState)
            assert state.status == OrderStatus.DELIVERED

    # The carrier's address check and rate quote are one local activity (the order workflow's merged steps).
    merged = "check_address_and_quote"
    assert total(scraped, "temporal_local_activity_execution_failed", activity_type=merged) >= 1
    assert total(scraped, "temporal_local_activity_execution_latency_count", activity_type=merged) >= 1

    workflow_id = order_workflow_id(order_id)
    of_order = [entry for entry in json_lines(tmp_path / "worker.jsonl") if entry.get("order_id") == order_id]
    workflow_lines = [entry for entry in of_order if entry["logger"] == "temporalio.workflow"]
    assert [entry["event"] for entry in workflow_lines] == ["workflow started", "workflow completed"]
    activity_lines = [entry for entry in of_order if "activity_type" in entry]
    failed_attempts = [entry for entry in activity_lines if entry["event"] == "Completing activity as failed"]
    assert activity_lines
    assert failed_attempts
    for entry in [*workflow_lines, *activity_lines]:
        assert (entry.get("request_id"), entry.get("workflow_id")) == (request, workflow_id), entry
    # Replaying writes no workflow line again.
    replayed = json_lines(tmp_path / "replaying-worker.jsonl")
    assert [entry for entry in replayed if entry.get("workflow_id") == workflow_id] == []


def test_the_worker_metrics_address_is_host_and_port_or_nothing() -> None:
    assert Settings(worker_metrics_address=" 0.0.0.0:9464 ").worker_metrics_address == "0.0.0.0:9464"
    assert Settings(worker_metrics_address="0").worker_metrics_address == ""
    assert Settings(worker_metrics_address="").worker_metrics_address == ""
    for wrong in ("9464", "localhost", "localhost:http", "127.0.0.1:70000"):
        with pytest.raises(ValueError, match="must be host:port"):
            Settings(worker_metrics_address=wrong)


def test_a_worker_whose_metrics_port_is_taken_says_so_in_one_line_and_exits() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        env = {name: value for name, value in os.environ.items() if not name.startswith("OMS_")}
        env |= {"OMS_ENCRYPTION_KEYS": TEST_KEYRING.to_json(), "OMS_WORKER_METRICS_ADDRESS": address}
        result = subprocess.run(
            [sys.executable, "worker.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    assert result.returncode == 1
    assert f"cannot serve metrics at {address}" in result.stdout
    assert "Address already in use" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
