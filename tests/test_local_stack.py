"""`make run`: the demo catalogue, the local admin key, and a real start and stop of the whole stack beside
another, with encryption keys of its own made on the first run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.names import SEARCH_ATTRIBUTES
from models.tables import CustomerFlagRow, SkuRow, StockRow, WarehouseRow
from scripts.demo_catalogue import FLAGGED_CUSTOMER_ID, seed
from scripts.local_stack import ADMIN_KEY_FILE, DEMO_ORDER, StackError, local_admin_key
from security.api_keys import split_key
from tests.keys import bearer
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 180
STOP_SECONDS = 60


# The demo catalogue, on PostgreSQL.


async def test_demo_catalogue_has_skus_over_two_warehouses_a_scarce_one_and_a_flagged_customer(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await seed(sessionmaker)

    async with sessionmaker() as session:
        skus = (await session.scalars(select(SkuRow.sku))).all()
        warehouses = (await session.scalars(select(WarehouseRow.code))).all()
        totals = dict(
            (await session.execute(select(StockRow.sku, func.sum(StockRow.on_hand)).group_by(StockRow.sku))).all()
        )
        flagged = await session.get(CustomerFlagRow, FLAGGED_CUSTOMER_ID)

    assert len(skus) >= 6
    assert sorted(warehouses) == ["WH-EAST", "WH-WEST"]
    assert set(totals) == set(skus)
    assert min(totals.values()) <= 3
    assert flagged is not None


async def test_seeding_again_keeps_the_stock_that_orders_changed(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await seed(sessionmaker)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(StockRow)
            .where(StockRow.sku == "MUG-001", StockRow.warehouse == "WH-EAST")
            .values(on_hand=7, reserved=5)
        )
        await session.execute(
            update(CustomerFlagRow).where(CustomerFlagRow.customer_id == FLAGGED_CUSTOMER_ID).values(reason="edited")
        )

    await seed(sessionmaker)

    async with sessionmaker() as session:
        mug = await session.get(StockRow, ("MUG-001", "WH-EAST"))
        flagged = await session.get(CustomerFlagRow, FLAGGED_CUSTOMER_ID)
        rows = await session.scalar(select(func.count()).select_from(StockRow))
    assert mug is not None
    assert (mug.on_hand, mug.reserved) == (7, 5)
    assert flagged is not None
    assert flagged.reason == "edited"
    assert rows == 9


# The local admin key.


def test_the_local_admin_key_is_made_once_readable_by_its_owner_only_and_reused(tmp_path: Path) -> None:
    first = local_admin_key(tmp_path)
    again = local_admin_key(tmp_path)

    assert first == again
    split_key(first)
    assert (tmp_path / ADMIN_KEY_FILE).stat().st_mode & 0o777 == 0o600


def test_a_damaged_admin_key_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / ADMIN_KEY_FILE).write_text("not a key\n")

    with pytest.raises(StackError, match="delete it"):
        local_admin_key(tmp_path)


# The whole stack, in a subprocess, on ports and a data folder of its own.


def stack_environment(data_dir: Path) -> dict[str, str]:
    # Only the stack's own variables: a DATABASE_URL or OMS_* of the caller must
    # not leak in, so the default (SQLite under the data folder) is what runs.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OMS_", "STANDINS_")) and key != "DATABASE_URL"
    }
    env.update(
        OMS_STACK_DATA_DIR=str(data_dir),
        OMS_STACK_TEMPORAL_PORT=str(free_port()),
        OMS_STACK_TEMPORAL_UI_PORT=str(free_port()),
        OMS_API_PORT=str(free_port()),
        OMS_STACK_WORKER_METRICS_PORT=str(free_port()),
        STANDINS_PORT=str(free_port()),
        OMS_LOG_LEVEL="WARNING",
    )
    return env


def start_stack(env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    with output.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "scripts.local_stack"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces; the parent pid is the second field after it.
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until_ready(stack: subprocess.Popen[bytes], env: dict[str, str], output: Path) -> None:
    """Until /readyz is 200, the Temporal UI and the worker's metrics answer and the banner is out.

    The banner comes once the API is ready; the worker, connecting to Temporal on its own, may come later.
    """
    api = f"http://127.0.0.1:{env['OMS_API_PORT']}/readyz"
    ui = f"http://127.0.0.1:{env['OMS_STACK_TEMPORAL_UI_PORT']}/"
    deadline = time.monotonic() + START_SECONDS
    pending = [api, ui]
    if env.get("OMS_STACK_WORKER_METRICS_PORT"):
        pending.append(f"http://127.0.0.1:{env['OMS_STACK_WORKER_METRICS_PORT']}/metrics")
    while pending or "Order management is running" not in output.read_text():
        assert stack.poll() is None, f"the stack exited with {stack.returncode}:\n{output.read_text()}"
        assert time.monotonic() < deadline, f"not ready: {pending}\n{output.read_text()}"
        try:
            if pending and httpx.get(pending[0], timeout=2).status_code == 200:
                pending.pop(0)
                continue
        except httpx.TransportError:
            pass
        time.sleep(0.5)


def registered_search_attributes(env: dict[str, str]) -> dict[str, str]:
    address = f"127.0.0.1:{env['OMS_STACK_TEMPORAL_PORT']}"
    listing = subprocess.run(
        [
            str(Path(sys.executable).parent / "temporal"),
            "operator",
            "search-attribute",
            "list",
            "-o",
            "json",
            "--address",
            address,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    # "INDEXED_VALUE_TYPE_KEYWORD_LIST" is what `--search-attribute Skus=KeywordList` registered.
    custom: dict[str, str] = json.loads(listing.stdout).get("customAttributes", {})
    return {
        name: "".join(word.title() for word in kind.removeprefix("INDEXED_VALUE_TYPE_").split("_"))
        for name, kind in custom.items()
    }


def started_for(folder: Path) -> set[int]:
    """The processes running with a stack data folder under `folder`: a stack and every child it started."""
    marker = f"OMS_STACK_DATA_DIR={folder}".encode()
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            try:
                if any(variable.startswith(marker) for variable in (entry / "environ").read_bytes().split(b"\0")):
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def stack_guard(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Stops what a failed test left running: its stacks, and the children of a stack that ended without them."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for stack in started:
        if stack.poll() is None:
            stack.kill()
            stack.wait()
    for pid in started_for(tmp_path):
        # Each child leads a process group of its own: what it started goes too.
        for end in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError):
                end(pid, signal.SIGKILL)


# Ctrl-C in a terminal, SIGTERM from a supervisor (systemd, docker stop), SIGHUP from a terminal closing.
@pytest.mark.system
@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "terminal-closed"]
)
def test_make_run_serves_the_api_and_temporal_ui_and_a_stop_signal_stops_every_child(
    tmp_path: Path, stack_guard: list[subprocess.Popen[bytes]], signum: signal.Signals
) -> None:
    env = stack_environment(tmp_path / "data")
    output = tmp_path / "stack.log"
    stack = start_stack(env, output)
    stack_guard.append(stack)

    wait_until_ready(stack, env, output)
    children = descendants(stack.pid)
    assert len(children) >= 4, output.read_text()
    banner = output.read_text()
    assert f"http://127.0.0.1:{env['OMS_API_PORT']}/docs" in banner
    assert f"http://127.0.0.1:{env['OMS_API_PORT']}/console " in banner
    assert f"http://127.0.0.1:{env['OMS_STACK_TEMPORAL_UI_PORT']}" in banner
    key = (tmp_path / "data" / ADMIN_KEY_FILE).read_text().strip()
    assert (tmp_path / "data" / ADMIN_KEY_FILE).stat().st_mode & 0o777 == 0o600
    [curl] = [line.strip() for line in banner.splitlines() if line.strip().startswith("curl")]
    assert f"-H 'Authorization: Bearer {key}'" in curl
    api = f"http://127.0.0.1:{env['OMS_API_PORT']}"
    assert httpx.get(f"{api}/orders", headers=bearer(key), timeout=10).status_code == 200
    assert httpx.get(f"{api}/orders", timeout=10).status_code == 401
    assert registered_search_attributes(env) == SEARCH_ATTRIBUTES
    worker_metrics = f"http://127.0.0.1:{env['OMS_STACK_WORKER_METRICS_PORT']}/metrics"
    assert f"{api}/metrics" in banner
    assert worker_metrics in banner
    api_metrics = httpx.get(f"{api}/metrics", headers=bearer(key), timeout=10)
    assert api_metrics.status_code == 200
    assert 'oms_orders{status="delivered"}' in api_metrics.text
    assert "temporal_" in httpx.get(worker_metrics, timeout=10).text

    stack.send_signal(signum)
    assert stack.wait(timeout=STOP_SECONDS) == 0, output.read_text()
    assert [pid for pid in children if alive(pid)] == []
    assert "Traceback" not in output.read_text()

    with sqlite3.connect(tmp_path / "data" / "oms.sqlite3") as database:
        (skus,) = database.execute("SELECT count(*) FROM skus").fetchone()
    assert skus >= 6
    assert (tmp_path / "data" / "temporal.sqlite3").exists()


def stop(stack: subprocess.Popen[bytes], output: Path) -> None:
    children = descendants(stack.pid)
    stack.send_signal(signal.SIGINT)
    assert stack.wait(timeout=STOP_SECONDS) == 0, output.read_text()
    assert [pid for pid in children if alive(pid)] == []


def admin_headers(env: dict[str, str]) -> dict[str, str]:
    """The local admin key the stack made in its data folder, as a header."""
    return bearer((Path(env["OMS_STACK_DATA_DIR"]) / ADMIN_KEY_FILE).read_text().strip())


def read_order(env: dict[str, str], order_id: str, *statuses: str) -> dict[str, Any]:
    """GET /orders/{id} as the local admin, waiting for the worker to have recorded the order (in one of `statuses`)."""
    deadline = time.monotonic() + 60
    while True:
        response = httpx.get(
            f"http://127.0.0.1:{env['OMS_API_PORT']}/orders/{order_id}", timeout=10, headers=admin_headers(env)
        )
        if response.status_code == 200 and (not statuses or response.json()["status"] in statuses):
            return dict(response.json())
        assert time.monotonic() < deadline, f"{response.status_code} {response.text}"
        time.sleep(0.5)


@pytest.mark.system
def test_the_first_run_makes_an_encryption_key_file_and_later_runs_reuse_it(
    tmp_path: Path, stack_guard: list[subprocess.Popen[bytes]]
) -> None:
    data_dir = tmp_path / "data"
    key_file = data_dir / "encryption-keys.json"
    env = stack_environment(data_dir)
    output = tmp_path / "first.log"
    first = start_stack(env, output)
    stack_guard.append(first)
    wait_until_ready(first, env, output)

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    keys = key_file.read_bytes()
    ui_settings = httpx.get(f"http://127.0.0.1:{env['OMS_STACK_TEMPORAL_UI_PORT']}/api/v1/settings", timeout=10)
    assert ui_settings.json()["Codec"]["Endpoint"] == f"http://127.0.0.1:{env['OMS_API_PORT']}/codec"
    placed = httpx.post(
        f"http://127.0.0.1:{env['OMS_API_PORT']}/orders",
        content=DEMO_ORDER,
        timeout=10,
        headers={"Content-Type": "application/json", **admin_headers(env)},
    )
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["order_id"]
    # Handed to the carrier before the stop: the stand-ins keep their bookings in memory only, so an
    # order still being booked would find its draft booking gone after the restart.
    assert read_order(env, order_id, "shipped", "delivered")["customer"]["email"] == "ada@example.com"
    stop(first, output)

    env = stack_environment(data_dir)
    output = tmp_path / "second.log"
    second = start_stack(env, output)
    stack_guard.append(second)
    wait_until_ready(second, env, output)

    assert key_file.read_bytes() == keys
    assert read_order(env, order_id)["customer"]["email"] == "ada@example.com"
    stop(second, output)
    assert "Traceback" not in (tmp_path / "first.log").read_text() + output.read_text()


@pytest.mark.system
def test_a_dying_child_stops_the_stack_and_is_named(tmp_path: Path, stack_guard: list[subprocess.Popen[bytes]]) -> None:
    env = stack_environment(tmp_path / "data")
    output = tmp_path / "stack.log"
    stack = start_stack(env, output)
    stack_guard.append(stack)
    wait_until_ready(stack, env, output)
    children = descendants(stack.pid)
    worker = next(pid for pid in children if b"worker.py" in Path(f"/proc/{pid}/cmdline").read_bytes())

    os.kill(worker, signal.SIGKILL)

    assert stack.wait(timeout=STOP_SECONDS) == 1
    assert [pid for pid in children if alive(pid)] == []
    assert "the worker exited with code -9; stopping the stack" in output.read_text()


def test_a_taken_port_is_refused_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    env = stack_environment(tmp_path / "data")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        env["OMS_API_PORT"] = str(taken)

        result = subprocess.run(
            [sys.executable, "-m", "scripts.local_stack"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    assert f"port {taken} for the API is already in use" in result.stdout
    assert "OMS_API_PORT" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
