"""The Temporal worker: runs the order, replenishment, return, bulk job, backup and demand forecast workflows and
every activity, and beside them the dispatcher of order events to webhook subscribers.

`python worker.py` registers the demand-forecast schedule, then runs until SIGINT or SIGTERM and
drains in-flight tasks. It serves the
Temporal SDK's metrics for Prometheus at OMS_WORKER_METRICS_ADDRESS.

`python worker.py --processes N` (or OMS_WORKER_PROCESSES=N) runs N such workers on the same task queue
under a supervisor (worker_supervisor.py), each started as `python worker.py --child-index I`.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.backup import BackupActivities
from activities.bulk import BulkActivities
from activities.carrier import CarrierActivities
from activities.combined import HandOverActivities, IntakeActivities
from activities.customers import CustomerActivities
from activities.finance import FinanceActivities
from activities.forecast import ForecastActivities
from activities.http import create_http_client
from activities.inventory import InventoryActivities
from activities.orders import OrderRecordActivities
from activities.purchasing import PurchasingActivities
from activities.refunds import RefundActivities
from activities.returns import ReturnActivities
from activities.review import ReviewActivities
from api.order_client import OrderClient
from db.engine import create_engine, create_sessionmaker
from forecast_schedule import ensure_forecast_schedule
from logging_config import configure_logging
from observability.interceptors import WorkerContextInterceptor
from security.keyring import Keyring, KeyringError, load_keyring
from settings import Settings, get_settings
from temporal_client import connect, metrics_runtime, workflow_runner
from webhook_dispatcher import WebhookDispatcher
from worker_supervisor import child_identity, child_metrics_address
from workflows.backup import BackupWorkflow
from workflows.bulk import BulkJobWorkflow
from workflows.forecast import DemandForecastWorkflow, PurchaseRequestWorkflow
from workflows.order import OrderWorkflow
from workflows.refunds import RefundWorkflow
from workflows.replenishment import ReplenishmentWorkflow
from workflows.returns import ReturnWorkflow

log = structlog.get_logger(__name__)


def build_worker(
    client: Client,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    task_queue: str | None = None,
    *,
    keyring: Keyring,
    identity: str | None = None,
) -> Worker:
    """The worker on `client`, whose data converter must encrypt with `keyring` too (temporal_client.connect).

    Its interceptor gives workflow and activity log lines their order and the request id they were started for.
    `identity` is how Temporal names it (the client's, pid@host, by default).
    """
    inventory = InventoryActivities(sessionmaker, settings.warehouse_priority)
    records = OrderRecordActivities(sessionmaker, keyring)
    review = ReviewActivities(sessionmaker, settings)
    intake = IntakeActivities(records, review)
    carrier = CarrierActivities(http, settings)
    hand_over = HandOverActivities(carrier, inventory)
    finance = FinanceActivities(http, settings)
    customers = CustomerActivities(http, settings)
    purchasing = PurchasingActivities(sessionmaker, http, client, settings)
    backups = BackupActivities(settings)
    returns = ReturnActivities(sessionmaker, http, client, settings, keyring)
    refunds = RefundActivities(sessionmaker, http, settings)
    forecasts = ForecastActivities(sessionmaker, http, settings)
    # Bulk jobs touch orders through the one order client the API uses.
    bulk = BulkActivities(OrderClient(client, sessionmaker, settings, keyring))
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[
            OrderWorkflow,
            ReplenishmentWorkflow,
            ReturnWorkflow,
            BulkJobWorkflow,
            RefundWorkflow,
            BackupWorkflow,
            DemandForecastWorkflow,
            PurchaseRequestWorkflow,
        ],
        activities=[
            records.record_order,
            records.record_status,
            records.record_change,
            review.review_order,
            intake.record_and_review,
            inventory.reserve_line,
            inventory.release_line,
            inventory.replace_lines,
            inventory.release_order,
            inventory.commit_order,
            hand_over.confirm_and_commit,
            inventory.available_stock,
            carrier.check_address,
            carrier.quote_rate,
            carrier.check_address_and_quote,
            carrier.draft_booking,
            carrier.confirm_booking,
            carrier.cancel_booking,
            finance.create_invoice,
            finance.void_invoice,
            customers.upsert_customer,
            customers.record_purchase,
            customers.notify_customer,
            customers.record_purchase_and_notify,
            purchasing.report_shortage,
            purchasing.record_shortage,
            purchasing.resolve_shortages,
            purchasing.notify_purchasing,
            returns.record_return,
            returns.issue_return_label,
            returns.void_return_label,
            returns.receive_return_goods,
            returns.refund_return,
            bulk.act_on_order,
            bulk.place_order,
            returns.place_replacement,
            refunds.refund_order,
            refunds.flag_refund,
            # The backup-periodic schedule's runs (backup/schedule.py).
            backups.take_backup,
            # The demand-forecast schedule's runs, and purchase requests of accepted suggestions.
            forecasts.demand_skus,
            forecasts.forecast_chunk,
            forecasts.send_purchase_request,
        ],
        interceptors=[WorkerContextInterceptor()],
        max_cached_workflows=settings.worker_max_cached_workflows,
        workflow_runner=workflow_runner(settings),
        identity=identity,
    )


@asynccontextmanager
async def running_worker(
    client: Client,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    task_queue: str | None = None,
    *,
    keyring: Keyring,
    identity: str | None = None,
) -> AsyncIterator[Worker]:
    """The Temporal worker and the webhook dispatcher, started together and stopped together."""
    worker = build_worker(client, settings, sessionmaker, http, task_queue, keyring=keyring, identity=identity)
    async with worker, WebhookDispatcher(sessionmaker, settings, keyring).running():
        yield worker


async def register_schedules(client: Client, settings: Settings) -> None:
    """The schedules the worker runs, created or brought up to date at every start (never doubled)."""
    if settings.forecast_interval is not None:
        try:
            outcome = await ensure_forecast_schedule(client, settings)
        except RPCError as error:
            # Orders go on without it; the next start registers it.
            log.warning("demand forecast schedule not registered", error=str(error))
            return
        log.info(f"demand forecast schedule {outcome}", every=str(settings.forecast_interval))


async def run(
    settings: Settings,
    keyring: Keyring,
    runtime: Runtime | None = None,
    stop: asyncio.Event | None = None,
    *,
    child_index: int | None = None,
) -> None:
    """Run the worker until SIGINT or SIGTERM, or until `stop` is set.

    With `child_index` it is one of a supervisor's children: named with its index, registering the
    schedules only as child 0, serving metrics at its own port, and stopping when its supervisor is gone.
    """
    client = await connect(settings, keyring, runtime=runtime)
    if child_index in (None, 0):
        await register_schedules(client, settings)
    engine = create_engine(settings.database_url, settings.db_pool_size)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    identity = None if child_index is None else child_identity(child_index)
    metrics_address = settings.worker_metrics_address
    if child_index is not None:
        metrics_address = child_metrics_address(metrics_address, child_index)
    orphan_watch = None if child_index is None else asyncio.create_task(_stop_when_orphaned(stop))
    sessionmaker = create_sessionmaker(engine)
    async with (
        create_http_client(settings) as http,
        running_worker(client, settings, sessionmaker, http, keyring=keyring, identity=identity),
    ):
        log.info(
            "worker started",
            task_queue=settings.task_queue,
            metrics=f"http://{metrics_address}/metrics" if metrics_address else None,
            **({} if child_index is None else {"index": child_index, "identity": identity}),
        )
        await stop.wait()
        log.info("worker stopping")
    if orphan_watch is not None:
        orphan_watch.cancel()
    await engine.dispose()


async def _stop_when_orphaned(stop: asyncio.Event, every_seconds: float = 1.0) -> None:
    """Set `stop` once the supervisor that started this process is gone (killed, it could pass no signal on)."""
    supervisor = os.getppid()
    while True:
        await asyncio.sleep(every_seconds)
        if os.getppid() != supervisor:
            break
    log.warning("worker supervisor gone; stopping", supervisor_pid=supervisor)
    stop.set()


def compile_workflow_modules() -> None:
    """Leave bytecode beside the workflow modules.

    The sandbox imports the workflow modules afresh for every workflow it starts. Where Python
    writes no bytecode caches (PYTHONDONTWRITEBYTECODE, as container images often set), each of
    those imports would compile the source again: several milliseconds of CPU per order.
    A read-only tree (an image compiled at build time) is left as it is.
    """
    compileall.compile_dir(Path(__file__).resolve().parent / "workflows", quiet=2)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="The Temporal worker of every workflow and activity, with the webhook dispatcher.",
        epilog=(
            "With N above 1 a supervisor runs N worker processes on the same task queue: a stop signal is passed "
            "to each, a dead one is started again (after a doubling wait when it keeps dying soon after its "
            "start), and child I serves its SDK metrics at OMS_WORKER_METRICS_ADDRESS's port + I "
            "(9464, 9465, ... by default)."
        ),
    )
    parser.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="worker processes to run under one supervisor (default: OMS_WORKER_PROCESSES, 1: no supervisor)",
    )
    # Given by the supervisor to each process it starts.
    parser.add_argument("--child-index", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.processes is not None and args.processes < 1:
        parser.error("--processes must be 1 or more")
    return args


def main() -> None:
    args = parse_arguments()
    settings = get_settings()
    configure_logging(settings.log_level)
    try:
        keyring = load_keyring(settings)
    except KeyringError as error:
        # Told in one line: a missing or broken key file is the operator's to fix, not a crash.
        log.error(str(error))
        sys.exit(1)
    processes = args.processes or settings.worker_processes
    if args.child_index is None and processes > 1:
        # The supervisor runs no worker: it starts afresh as its own small program rather than keep
        # this one's imports (about 75 MB), under the same pid, so signals and `docker stop` still reach it.
        supervisor = str(Path(__file__).resolve().with_name("worker_supervisor.py"))
        os.execv(sys.executable, [sys.executable, supervisor, "--processes", str(processes)])
    metrics_address = settings.worker_metrics_address
    if args.child_index is not None:
        metrics_address = child_metrics_address(metrics_address, args.child_index)
    try:
        runtime = metrics_runtime(metrics_address)
    except ValueError as error:
        # A port in use is told in one line too: another worker on this machine, most likely.
        log.error(f"cannot serve metrics at {metrics_address}: {error}")
        sys.exit(1)
    if settings.workflow_sandbox:
        # Several children may compile at once: each bytecode file is written whole or not at all.
        compile_workflow_modules()
    asyncio.run(run(settings, keyring, runtime, child_index=args.child_index))


if __name__ == "__main__":
    main()
