"""`python worker.py --processes 2`: two real worker processes under one supervisor, on the dev server and
PostgreSQL, sharing the orders of one task queue; a killed one started again; a stop signal ends them all.

The supervisor's rules with stand-in children are in test_worker_supervisor.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.testing import WorkflowEnvironment

from db.engine import create_sessionmaker
from models.names import order_workflow_id
from models.tables import Base
from tests import builders
from tests.builders import line
from tests.polling import NotYet, eventually
from tests.stack import Stack, running_stack
from tests.test_crash_recovery import worker_environment

ROOT = Path(__file__).resolve().parent.parent
SKU = "SCALE-1"
START_SECONDS = 60
STOP_SECONDS = 40


@pytest.fixture(scope="module")
async def stack(dev_server_env: WorkflowEnvironment, database_url: str, engine: AsyncEngine) -> AsyncIterator[Stack]:
    """One stack for the module (its own task queue), without a worker: the supervisor's children are its workers."""
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    task_queue = f"test-processes-{uuid.uuid4()}"
    async with running_stack(
        dev_server_env.client,
        database_url,
        create_sessionmaker(engine),
        task_queue,
        tracking_delay_seconds=0.1,
        with_worker=False,
    ) as running:
        await running.count_stock(SKU, 1_000)
        yield running


def two_free_ports() -> int:
    """A port that is free, and the next one too: the metrics ports of children 0 and 1."""
    while True:
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Supervised:
    process: asyncio.subprocess.Process
    log: Path
    metrics_port: int

    def children(self) -> set[int]:
        """The live processes whose parent is the supervisor."""
        found = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and parent_of(int(entry.name)) == self.process.pid and alive(int(entry.name)):
                found.add(int(entry.name))
        return found


@pytest.fixture(scope="module")
async def running(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Supervised]:
    """`python worker.py --processes 2` joined to the stack, for the whole module (starting one takes seconds);
    stopped with SIGTERM at the end unless a test stopped it, and anything left of it killed."""
    metrics_port = two_free_ports()
    env = {
        **worker_environment(stack),
        "OMS_WORKER_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
        # Each process's start and the schedules' registration are told at INFO.
        "OMS_LOG_LEVEL": "INFO",
    }
    log = tmp_path_factory.mktemp("supervisor") / "worker.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "worker.py", "--processes", "2", cwd=ROOT, env=env, stdout=sink, stderr=sink
        )
    supervised = Supervised(process, log, metrics_port)
    started: set[int] = set()
    try:
        started |= {pid_of(identity) for identity in await both_children_polling(stack, supervised)}
        yield supervised
    finally:
        started |= supervised.children()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            # Awaited, not blocked on: the stand-ins serving the children's last calls run in this event loop.
            await asyncio.wait_for(process.wait(), timeout=STOP_SECONDS)
        for pid in started:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def polling_identities(stack: Stack) -> set[str]:
    """The identities that have polled the stack's task queue for workflow tasks lately."""
    client = stack.temporal
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=stack.settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return {poller.identity for poller in response.pollers}


def pid_of(identity: str) -> int:
    return int(identity.split("@", 1)[0])


async def both_children_polling(stack: Stack, running: Supervised, *, besides: Collection[str] = ()) -> list[str]:
    """The identities of children 0 and 1 once each polls, both live children of the supervisor, none in `besides`."""

    async def polling() -> list[str]:
        identities = await polling_identities(stack)
        children = running.children()
        current = sorted(
            (identity for identity in identities if pid_of(identity) in children and identity not in besides),
            key=lambda identity: identity.rsplit("/", 1)[1],
        )
        if len(current) != 2:
            raise NotYet(f"polling: {identities}, children: {children}\n{running.log.read_text()}")
        return current

    return await eventually(polling, timeout=START_SECONDS, interval=0.5)


def order_body(number: int) -> dict[str, object]:
    return builders.order_body(lines=[line(SKU, 1, "9.50")], customer={"id": f"scale-{number}"})


async def place_and_deliver(stack: Stack, orders: int) -> list[str]:
    order_ids = await asyncio.gather(*(stack.place_order(order_body(number)) for number in range(orders)))
    await asyncio.gather(*(stack.wait_for_status(order_id, "delivered", timeout=90) for order_id in order_ids))
    return list(order_ids)


async def workflow_task_identities(stack: Stack, order_ids: list[str]) -> set[str]:
    """Every identity that completed a workflow task of these orders."""
    found: set[str] = set()
    for order_id in order_ids:
        history = await stack.temporal.get_workflow_handle(order_workflow_id(order_id)).fetch_history()
        found |= {
            event.workflow_task_completed_event_attributes.identity
            for event in history.events
            if event.HasField("workflow_task_completed_event_attributes")
        }
    return found


async def test_two_worker_processes_share_the_orders_and_the_histories_name_each(
    stack: Stack, running: Supervised
) -> None:
    identities = await both_children_polling(stack, running)

    order_ids = await place_and_deliver(stack, 12)

    assert [identity.rsplit("/", 1)[1] for identity in identities] == ["0", "1"]
    assert await workflow_task_identities(stack, order_ids) == set(identities)
    async with httpx.AsyncClient(timeout=10) as http:
        for port in (running.metrics_port, running.metrics_port + 1):
            metrics = await http.get(f"http://127.0.0.1:{port}/metrics")
            assert "temporal_workflow_completed" in metrics.text, port


async def test_the_schedules_are_registered_once_not_by_every_worker_process(running: Supervised) -> None:
    def lines() -> list[dict[str, object]]:
        return [json.loads(line) for line in running.log.read_text().splitlines() if line.startswith("{")]

    def both_started() -> list[int]:
        # Each says so just after it begins to poll.
        started = sorted(int(str(line["index"])) for line in lines() if line["event"] == "worker started")
        assert started == [0, 1], started
        return started

    await eventually(both_started, timeout=10)
    registered = [line for line in lines() if str(line["event"]).startswith("demand forecast schedule")]
    assert len(registered) == 1, registered


async def test_a_killed_worker_process_is_started_again_and_orders_placed_after_complete(
    stack: Stack, running: Supervised
) -> None:
    before = await both_children_polling(stack, running)
    killed = pid_of(before[1])

    os.kill(killed, signal.SIGKILL)

    after = await both_children_polling(stack, running, besides={before[1]})
    assert after[0] == before[0]
    assert after[1].endswith("/1") and pid_of(after[1]) != killed
    [died] = [line for line in running.log.read_text().splitlines() if "worker process died" in line]
    assert f'"pid": {killed}' in died and '"signal": "SIGKILL"' in died and '"restarts": 1' in died
    await place_and_deliver(stack, 6)


# Last: it ends the module's supervisor.
async def test_sigterm_to_the_supervisor_stops_every_worker_process_and_the_supervisor(
    stack: Stack, running: Supervised
) -> None:
    children = {pid_of(identity) for identity in await both_children_polling(stack, running)}

    running.process.send_signal(signal.SIGTERM)

    assert await asyncio.wait_for(running.process.wait(), timeout=STOP_SECONDS) == 0, running.log.read_text()
    assert [pid for pid in children if alive(pid)] == []
    assert running.children() == set()
    assert "Traceback" not in running.log.read_text()
