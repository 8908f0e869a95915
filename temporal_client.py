"""The one way this project connects to Temporal: encrypted pydantic payloads on every client, API and worker
alike, and the request id of the API request being served on every call (observability.interceptors).

Also the one way code outside workflows reaches a SKU's replenishment workflow (`signal_replenishment`):
the API when stock arrives, the order's activity when it is short; and the one way a periodic job
(backups, the demand forecast) is registered as a Temporal schedule (`ensure_periodic_schedule`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.converter import DataConverter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import GrpcCompression
from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from models.names import REPLENISHMENT_WORKFLOW, SIGNAL_SHORTAGE, SIGNAL_STOCK_RECEIVED, replenishment_workflow_id
from models.purchasing import ReplenishmentInput, ShortageReport, StockReceived
from observability.interceptors import RequestIdClientInterceptor
from security.codec import data_converter
from security.keyring import Keyring, load_keyring
from settings import Settings


async def connect(settings: Settings, keyring: Keyring | None = None, *, runtime: Runtime | None = None) -> Client:
    """A client whose payloads are encrypted under `keyring`, by default the ring the settings name.

    With payload encryption switched off (development only, to measure its cost) payloads go as JSON.
    `runtime` is the SDK's default unless given, e.g. one serving metrics (`metrics_runtime`).
    """
    encrypting = (keyring or load_keyring(settings)) if settings.payload_encryption else None
    converter = data_converter(encrypting)
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=converter,
        interceptors=client_interceptors(converter),
        runtime=runtime,
        grpc_compression=GrpcCompression.NONE if settings.temporal_grpc_compression == "none" else GrpcCompression.GZIP,
    )


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """How a worker runs workflows: in the sandbox or not (Settings.workflow_sandbox)."""
    return SandboxedWorkflowRunner() if settings.workflow_sandbox else UnsandboxedWorkflowRunner()


def client_interceptors(converter: DataConverter) -> list[RequestIdClientInterceptor]:
    """What every client of the service carries: the request id on its calls, encoded by its own converter."""
    return [RequestIdClientInterceptor(converter.payload_converter)]


def metrics_runtime(bind_address: str) -> Runtime | None:
    """A Temporal runtime whose SDK metrics Prometheus scrapes at http://<bind_address>/metrics; None for no address.

    The server starts with the runtime; an address in use or malformed raises ValueError saying so.
    """
    if not bind_address:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))


# How long one call waits for Temporal to take a replenishment signal; past it the call fails
# (RPCError, see api.errors.temporal_unavailable) and the caller tries again: the API answers 503,
# an activity is retried.
REPLENISHMENT_RPC_TIMEOUT = timedelta(seconds=10)


async def signal_replenishment(
    client: Client,
    sku: str,
    message: ShortageReport | StockReceived,
    *,
    task_queue: str,
    rpc_timeout: timedelta = REPLENISHMENT_RPC_TIMEOUT,
) -> None:
    """Hand `message` to replenish-<sku>, starting that workflow with it when it is not running (signal-with-start).

    Safe to repeat: the workflow keys waiting orders by order id, and a receipt only makes it look at the
    stock again, so a message delivered twice (a retry after a call that timed out but went through) changes nothing.
    """
    signal = SIGNAL_SHORTAGE if isinstance(message, ShortageReport) else SIGNAL_STOCK_RECEIVED
    await client.start_workflow(
        REPLENISHMENT_WORKFLOW,
        ReplenishmentInput(sku=sku),
        id=replenishment_workflow_id(sku),
        task_queue=task_queue,
        start_signal=signal,
        start_signal_args=[message],
        rpc_timeout=rpc_timeout,
    )


async def ensure_periodic_schedule(
    client: Client,
    schedule_id: str,
    *,
    workflow: str,
    arg: Any,
    workflow_id: str,
    task_queue: str,
    every: timedelta,
    note: str,
) -> str:
    """Create the schedule that starts `workflow` every `every`, or update it in place: "created" or "updated".

    So whatever starts it (each start of a worker or of the stack) may register it again: there is one.
    A run still going when the next is due makes the schedule skip the next, never stack them.
    """
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(workflow, arg, id=workflow_id, task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=note),
    )
    try:
        await client.create_schedule(schedule_id, schedule)
        return "created"
    except ScheduleAlreadyRunningError:

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(update)
        return "updated"
