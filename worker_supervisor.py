"""Several worker processes on one task queue under one supervisor: `python worker.py --processes N`.

The supervisor runs no worker itself. It starts N children (`python worker.py --child-index I`), each a
whole worker with its own Temporal connection, pollers, workflow cache, database pool and webhook
dispatcher; the dispatchers share the outbox safely, as each claims its rows with SKIP LOCKED and a lease
(db/webhooks.py). Child 0 alone registers the schedules. Child I serves its SDK metrics on the metrics
port + I and names itself `<pid>@<host>/<I>` to Temporal, so the Temporal UI tells which process ran a task.

SIGINT or SIGTERM is passed on to every child, which drains as a lone worker does; the supervisor exits
once all have, with 0, or 1 when a child had to be killed after the grace period or ended with an error.
A child that dies otherwise (a crash, SIGKILL, the OOM killer) is started again at once; one that dies
soon after its start time after time (a broken configuration, a server it cannot reach) is started again
after a wait that doubles each time, so a crash loop does not spin the CPU (`next_restart`).

This module stays light (no Temporal worker, no activities): `worker.py` hands over to it with exec, so
the supervisor does not keep the memory of a worker it never runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import structlog

from logging_config import configure_logging
from settings import get_settings

log = structlog.get_logger("oms.worker_supervisor")

WORKER_SCRIPT = Path(__file__).resolve().with_name("worker.py")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class RestartRule:
    """When a dead child is started again."""

    # A child that ran this long was at work: its death is not part of a crash loop.
    settled_seconds: float = 10.0
    # The wait after the first quick death in a row; it doubles with each further one, up to the maximum.
    first_wait_seconds: float = 1.0
    max_wait_seconds: float = 60.0


@dataclass(frozen=True)
class Restart:
    wait_seconds: float
    # Deaths in a row, each within `settled_seconds` of its start, this one included; 0 after a settled child.
    quick_deaths: int
    reason: str


def next_restart(rule: RestartRule, lived_seconds: float, quick_deaths_before: int) -> Restart:
    """How long to wait before starting again a child that died after `lived_seconds`, the previous
    `quick_deaths_before` deaths in a row of that child having each come soon after its start."""
    if lived_seconds >= rule.settled_seconds:
        return Restart(0.0, 0, f"it had run {lived_seconds:.0f} s: started again at once")
    quick = quick_deaths_before + 1
    # The exponent is capped so that a long loop never overflows a float.
    wait = min(rule.first_wait_seconds * 2 ** min(quick - 1, 32), rule.max_wait_seconds)
    return Restart(
        wait,
        quick,
        f"died {quick} time(s) in a row within {rule.settled_seconds:g} s of its start: "
        f"started again after {wait:g} s (the wait doubles with each such death, up to {rule.max_wait_seconds:g} s)",
    )


def child_metrics_address(address: str, index: int) -> str:
    """Where child `index` serves its SDK metrics: the configured port + index ("" when none is served)."""
    if not address:
        return ""
    host, _, port = address.rpartition(":")
    if int(port) + index > 65535:
        raise ValueError(f"metrics port {port} + {index} is beyond 65535")
    return f"{host}:{int(port) + index}"


def child_identity(index: int) -> str:
    """This child's worker identity: the SDK's default (pid@host) with the child's index."""
    return f"{os.getpid()}@{socket.gethostname()}/{index}"


def describe_exit(returncode: int) -> dict[str, object]:
    """A child's end as log fields: its exit code, or the signal that ended it."""
    if returncode < 0:
        with suppress(ValueError):
            return {"signal": signal.Signals(-returncode).name}
        return {"signal": -returncode}
    return {"exit_code": returncode}


def worker_command(index: int) -> list[str]:
    return [sys.executable, str(WORKER_SCRIPT), "--child-index", str(index)]


class Supervisor:
    """Keeps `processes` children running until told to stop, then stops them all."""

    def __init__(
        self,
        processes: int,
        command: Callable[[int], Sequence[str]] = worker_command,
        *,
        rule: RestartRule | None = None,
        grace_seconds: float = 30.0,
    ) -> None:
        self._processes = processes
        self._command = command
        self._rule = rule or RestartRule()
        self._grace_seconds = grace_seconds
        self._stopping = asyncio.Event()
        self._signal = signal.SIGTERM

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> None:
        """Pass `signum` to every child and start no more; the first request decides the signal."""
        if not self._stopping.is_set():
            self._signal = signum
            self._stopping.set()

    async def run(self) -> int:
        """Until stopped and every child has exited: 0, or 1 if one had to be killed or ended with an error."""
        log.info("worker supervisor started", processes=self._processes, pid=os.getpid())
        outcomes = await asyncio.gather(*(self._keep_running(index) for index in range(self._processes)))
        clean = all(outcomes)
        log.info("worker supervisor stopped", clean=clean)
        return 0 if clean else 1

    async def _keep_running(self, index: int) -> bool:
        """Child `index`, started again whenever it dies, until the stop; True when it then stopped cleanly."""
        loop = asyncio.get_running_loop()
        restarts = quick_deaths = 0
        while not self._stopping.is_set():
            process = await asyncio.create_subprocess_exec(*self._command(index))
            started = loop.time()
            log.info("worker process started", index=index, pid=process.pid, restarts=restarts)
            if not await self._exits_before_stop(process):
                return await self._stop_child(index, process)
            assert process.returncode is not None
            if self._stopping.is_set():
                # It went with the stop (a terminal's Ctrl-C reaches every process of its group).
                return process.returncode in (0, -self._signal)
            restart = next_restart(self._rule, loop.time() - started, quick_deaths)
            quick_deaths = restart.quick_deaths
            restarts += 1
            log.error(
                "worker process died; starting it again",
                index=index,
                pid=process.pid,
                **describe_exit(process.returncode),
                lived_seconds=round(loop.time() - started, 1),
                restarts=restarts,
                wait_seconds=restart.wait_seconds,
                reason=restart.reason,
            )
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=restart.wait_seconds)
        return True

    async def _exits_before_stop(self, process: asyncio.subprocess.Process) -> bool:
        exited = asyncio.create_task(process.wait())
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if exited.done():
            return True
        exited.cancel()
        return False

    async def _stop_child(self, index: int, process: asyncio.subprocess.Process) -> bool:
        with suppress(ProcessLookupError):
            process.send_signal(self._signal)
        try:
            await asyncio.wait_for(process.wait(), timeout=self._grace_seconds)
        except TimeoutError:
            log.error(
                f"worker process did not stop within {self._grace_seconds:g} s; killed",
                index=index,
                pid=process.pid,
            )
            with suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            return False
        assert process.returncode is not None
        log.info("worker process stopped", index=index, pid=process.pid, **describe_exit(process.returncode))
        # Ended by the signal itself, it was stopped before it had set its handler: before it took any work.
        return process.returncode in (0, -self._signal)


async def supervise(processes: int, grace_seconds: float) -> int:
    supervisor = Supervisor(processes, grace_seconds=grace_seconds)
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, supervisor.stop, signum)
    return await supervisor.run()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The worker supervisor; run it as `python worker.py --processes N`.")
    parser.add_argument("--processes", type=int, required=True)
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    try:
        child_metrics_address(settings.worker_metrics_address, args.processes - 1)
    except ValueError as error:
        log.error(f"cannot serve the metrics of {args.processes} worker processes: {error}")
        sys.exit(1)
    sys.exit(asyncio.run(supervise(args.processes, settings.worker_stop_grace_seconds)))


if __name__ == "__main__":
    main()
