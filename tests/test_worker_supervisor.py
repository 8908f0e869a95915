"""The worker supervisor's rules, with small stand-in children (plain Python processes) instead of workers.

The real workers under the supervisor, on the dev server and PostgreSQL, are in test_worker_processes.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from scripts.local_stack import LocalStack, StackConfig, StackError
from settings import Settings
from tests.conftest import capturing_logs
from tests.polling import until
from tests.servers import free_port
from worker_supervisor import RestartRule, Supervisor, child_metrics_address, next_restart

RULE = RestartRule(settled_seconds=10.0, first_wait_seconds=1.0, max_wait_seconds=60.0)


# When a dead child is started again.


def test_a_child_that_had_settled_is_started_again_at_once_and_its_crash_loop_count_starts_over() -> None:
    restart = next_restart(RULE, lived_seconds=600.0, quick_deaths_before=4)

    assert (restart.wait_seconds, restart.quick_deaths) == (0.0, 0)


def test_quick_deaths_in_a_row_double_the_wait_up_to_the_maximum() -> None:
    waits = []
    quick = 0
    for _ in range(9):
        restart = next_restart(RULE, lived_seconds=0.5, quick_deaths_before=quick)
        waits.append(restart.wait_seconds)
        quick = restart.quick_deaths

    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert quick == 9
    assert "9 time(s) in a row within 10 s of its start" in restart.reason
    assert "up to 60 s" in restart.reason


def test_a_crash_loop_of_any_length_waits_the_maximum() -> None:
    assert next_restart(RULE, lived_seconds=0.0, quick_deaths_before=100_000).wait_seconds == 60.0


# Where each child serves its metrics.


def test_each_child_serves_metrics_on_the_base_port_plus_its_index() -> None:
    assert [child_metrics_address("0.0.0.0:9464", index) for index in range(3)] == [
        "0.0.0.0:9464",
        "0.0.0.0:9465",
        "0.0.0.0:9466",
    ]
    assert child_metrics_address("", 2) == ""
    with pytest.raises(ValueError, match="beyond 65535"):
        child_metrics_address("127.0.0.1:65535", 1)


# The supervisor with stand-in children: each records its pid, and its own behaviour decides how it ends.


def stand_in(runs: Path, body: str, *, ignore_stop: bool = False) -> list[str]:
    """A child that exits 0 on SIGTERM (or ignores it), appends its pid to `runs`, then does `body`
    (its run number in `run`)."""
    handler = "signal.SIG_IGN" if ignore_stop else "lambda *_: sys.exit(0)"
    script = (
        "import os, signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, {handler})\n"
        f"runs = {str(runs)!r}\n"
        "run = sum(1 for _ in open(runs)) if os.path.exists(runs) else 0\n"
        "open(runs, 'a').write(f'{os.getpid()}\\n')\n"
        f"{body}\n"
    )
    return [sys.executable, "-c", script]


def started(runs: Path) -> list[int]:
    return [int(line) for line in runs.read_text().split()] if runs.exists() else []


async def run_until(supervisor: Supervisor, ready: Callable[[], Awaitable[object]]) -> tuple[int, str]:
    """Run `supervisor` until `ready()` is done, then stop it with SIGTERM: its exit status and its log lines."""
    with capturing_logs("INFO") as lines:
        running = asyncio.create_task(supervisor.run())
        await ready()
        supervisor.stop(signal.SIGTERM)
        status = await running
    return status, lines.getvalue()


def logged(lines: str, event: str) -> list[dict[str, object]]:
    return [entry for entry in map(json.loads, lines.splitlines()) if entry["event"].startswith(event)]


async def test_a_dead_child_is_started_again_and_the_log_says_which_how_and_how_often(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # The first run dies at once with code 3; the next keeps running.
    command = stand_in(runs, "sys.exit(3) if run == 0 else time.sleep(60)")
    supervisor = Supervisor(1, lambda index: command, rule=RestartRule(first_wait_seconds=0.1), grace_seconds=5)
    status, lines = await run_until(supervisor, lambda: until(lambda: len(started(runs)) == 2, timeout=10))

    assert status == 0
    [died] = logged(lines, "worker process died")
    first, second = started(runs)
    assert (died["index"], died["pid"], died["exit_code"], died["restarts"]) == (0, first, 3, 1)
    assert died["wait_seconds"] == 0.1
    assert "1 time(s) in a row" in str(died["reason"])
    [stopped] = logged(lines, "worker process stopped")
    assert (stopped["pid"], stopped["exit_code"]) == (second, 0)


async def test_a_child_that_keeps_dying_at_start_is_started_again_ever_more_slowly(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    command = stand_in(runs, "sys.exit(1)")
    rule = RestartRule(settled_seconds=10.0, first_wait_seconds=0.1, max_wait_seconds=0.4)
    supervisor = Supervisor(1, lambda index: command, rule=rule, grace_seconds=5)
    # The exit status is left aside: the stop may come as a child is dying with its own code 1.
    _, lines = await run_until(supervisor, lambda: asyncio.sleep(2.0))

    waits = [entry["wait_seconds"] for entry in logged(lines, "worker process died")]
    assert waits[:4] == [0.1, 0.2, 0.4, 0.4]
    # At full speed a child that dies at once would have been started dozens of times.
    assert len(started(runs)) <= 8


async def test_a_child_that_does_not_stop_within_the_grace_period_is_killed_and_the_status_says_so(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    stubborn = stand_in(runs, "time.sleep(60)", ignore_stop=True)
    draining = stand_in(runs, "time.sleep(60)")
    supervisor = Supervisor(2, lambda index: stubborn if index else draining, grace_seconds=0.5)
    status, lines = await run_until(supervisor, lambda: until(lambda: len(started(runs)) == 2, timeout=10))

    assert status == 1
    [killed] = logged(lines, "worker process did not stop within 0.5 s; killed")
    assert killed["index"] == 1
    [stopped] = logged(lines, "worker process stopped")
    assert (stopped["index"], stopped["exit_code"]) == (0, 0)


# `make run` with several worker processes.


def test_make_run_with_two_worker_processes_checks_and_prints_both_metrics_ports(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        # Process 1's port is taken: process 0's is the one before it.
        config = StackConfig(
            data_dir=tmp_path,
            temporal_port=free_port(),
            temporal_ui_port=free_port(),
            api_port=free_port(),
            standins_port=free_port(),
            worker_metrics_port=taken - 1,
        )
        stack = LocalStack(config, Settings(worker_processes=2))

        with pytest.raises(StackError, match=f"port {taken} for the worker metrics of process 1 is already in use"):
            stack._refuse_taken_ports()

    assert stack.worker_metrics_addresses() == [f"127.0.0.1:{taken - 1}", f"127.0.0.1:{taken}"]
    banner = stack.banner()
    assert f"http://127.0.0.1:{taken - 1}/metrics http://127.0.0.1:{taken}/metrics" in banner
    assert "one endpoint per worker process (2 under a supervisor)" in banner
