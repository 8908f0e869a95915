"""How the API (and the console) talk to bulk jobs: start one, read its progress, retry its failures, cancel it.

A job is one workflow, `bulk-<job_id>`, started with every item it is to work through: the orders a
bulk action names (by id, or by the filter of GET /orders, resolved here to at most 1,000 ids), or
the orders of an import, validated here first. While it runs, its progress query answers; once it
has closed, its result does. What leaves this module is the API's `BulkJobView` of either.

A job started by a client key (an import) belongs to that client: other clients find no such job.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.refusals import RETRY_AFTER_SECONDS, ActionRefused, ApiError, OrderUnavailable, temporal_unavailable
from db.orders import matching
from domain import bulk as bulk_rules
from models import names
from models.bulk import (
    MAX_JOB_ITEMS,
    BulkActionRequest,
    BulkItemView,
    BulkJobAccepted,
    BulkJobInput,
    BulkJobKind,
    BulkJobView,
    BulkProgress,
    CancelJobCommand,
    ErrorPolicy,
    ItemOutcome,
    JobItem,
    JobStatus,
    ProgressPage,
    RetryAccepted,
    RetryCommand,
)
from models.tables import OrderRow
from security.api_keys import Principal, Role
from settings import Settings, get_settings

log = structlog.get_logger(__name__)


class BulkJobNotFound(ApiError):
    status_code = 404

    def __init__(self, job_id: str) -> None:
        super().__init__(f"bulk job {job_id} not found")


class UnsupportedImport(ApiError):
    status_code = 415


class JobTooLarge(ApiError):
    status_code = 413


# A job's input is one Temporal payload, which the server refuses past 2 MB; this leaves room to spare.
MAX_JOB_INPUT_BYTES = 1_500_000


def _actor(principal: Principal) -> str:
    return principal.role.value


def _owner(principal: Principal) -> str | None:
    """The client a job belongs to: its client id for a client key, None for staff."""
    return principal.client_id if principal.role == Role.CLIENT else None


async def start_actions(
    client: Client,
    sessionmaker: async_sessionmaker[AsyncSession],
    request: BulkActionRequest,
    *,
    actor: Principal,
    settings: Settings | None = None,
) -> BulkJobAccepted:
    """Start a job approving, rejecting or cancelling the orders `request` names; TooManyOrders past 1,000."""
    settings = settings or get_settings()
    if request.order_ids is not None:
        order_ids = list(dict.fromkeys(request.order_ids))
    else:
        assert request.filter is not None, "the request names its orders one way or the other"
        async with sessionmaker.begin() as session:
            query = matching(select(OrderRow.order_id), request.filter)
            query = query.order_by(OrderRow.created_at.desc(), OrderRow.order_id.desc()).limit(MAX_JOB_ITEMS + 1)
            order_ids = list((await session.scalars(query)).all())
        if len(order_ids) > MAX_JOB_ITEMS:
            raise bulk_rules.TooManyOrders(f"the filter matches more than {MAX_JOB_ITEMS} orders; narrow it")
        if not order_ids:
            raise bulk_rules.TooManyOrders("the filter matches no order")
    items = [JobItem(ref=order_id, order_id=order_id) for order_id in order_ids]
    summary = (
        f"{request.action.value.capitalize()} {len(items)} order{'s' if len(items) != 1 else ''}: {request.reason}"
    )
    return await _start(
        client,
        settings,
        kind=BulkJobKind.ACTIONS,
        items=items,
        actor=actor,
        summary=summary[:200],
        action=request.action,
        reason=request.reason,
    )


async def start_import(
    client: Client,
    parsed: list[bulk_rules.Parsed],
    policy: ErrorPolicy,
    *,
    actor: Principal,
    settings: Settings | None = None,
) -> BulkJobAccepted:
    """Start a job placing the orders of an import; ImportRefused (starting nothing) when `policy` is
    reject_all and any order is bad. Under skip_invalid a bad order is an item refused with its reason."""
    settings = settings or get_settings()
    problems = bulk_rules.problems_of(parsed)
    if problems and policy == ErrorPolicy.REJECT_ALL:
        raise bulk_rules.ImportRefused(problems)
    items = []
    for one in parsed:
        if one.order is None:
            items.append(
                JobItem(ref=one.ref, outcome=ItemOutcome.REFUSED, reason=bulk_rules.refusal_reason(one.problems))
            )
        else:
            order = bulk_rules.without_ref(one.order)
            items.append(JobItem(ref=one.ref, order=order))
    placed = sum(1 for item in items if item.outcome == ItemOutcome.PENDING)
    return await _start(
        client,
        settings,
        kind=BulkJobKind.IMPORT,
        items=items,
        actor=actor,
        summary=f"Import {placed} order{'s' if placed != 1 else ''} ({len(items) - placed} refused)",
    )


async def _start(
    client: Client,
    settings: Settings,
    *,
    kind: BulkJobKind,
    items: list[JobItem],
    actor: Principal,
    summary: str,
    action: Any = None,
    reason: str | None = None,
) -> BulkJobAccepted:
    job_id = str(uuid.uuid4())
    owner = _owner(actor)
    job = BulkJobInput(
        job_id=job_id,
        kind=kind,
        action=action,
        reason=reason,
        actor=_actor(actor),
        client_id=owner,
        items=items,
        concurrency=settings.bulk_concurrency,
        max_history_events=settings.bulk_max_history_events,
        created_at=datetime.now(UTC),
    )
    size = len(job.model_dump_json())
    if size > MAX_JOB_INPUT_BYTES:
        raise JobTooLarge(
            f"the job's orders take {size} bytes, more than one job carries ({MAX_JOB_INPUT_BYTES}); split it"
        )
    try:
        await client.start_workflow(
            names.BULK_WORKFLOW,
            job,
            id=names.bulk_workflow_id(job_id),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=summary,
            memo={names.MEMO_JOB_CLIENT_ID: owner},
            rpc_timeout=timedelta(seconds=settings.api_workflow_timeout_seconds),
        )
    except RPCError as error:
        if not temporal_unavailable(error):
            raise
        # Nothing was confirmed: the caller sends the job again (an import's orders are placed once all the same).
        raise OrderUnavailable(
            f"bulk job {job_id} was not confirmed by Temporal in time; send it again", retry_after=RETRY_AFTER_SECONDS
        ) from error
    log.info("bulk job started", job_id=job_id, kind=kind.value, items=len(items))
    return BulkJobAccepted(job_id=job_id, status=JobStatus.RUNNING)


async def job_view(
    client: Client,
    job_id: str,
    *,
    cursor: str | None = None,
    limit: int = 100,
    client_id: str | None = None,
) -> BulkJobView:
    """The job's progress and a page of its items (`next_cursor` continues); BulkJobNotFound for an unknown job,
    or one of another client when `client_id` is given."""
    offset = bulk_rules.decode_page_cursor(cursor) if cursor else 0
    progress = await _progress(client, job_id, ProgressPage(offset=offset, limit=limit), client_id=client_id)
    shown = progress.items[offset - progress.offset : offset - progress.offset + limit]
    following = offset + len(shown)
    return BulkJobView(
        job_id=job_id,
        action=progress.action.value if progress.action is not None else "import",
        status=progress.status,
        total=progress.total,
        done=progress.done,
        refused=progress.refused,
        failed=progress.failed,
        items=[
            BulkItemView(ref=item.ref, order_id=item.order_id, outcome=item.outcome, reason=item.reason)
            for item in shown
        ],
        next_cursor=bulk_rules.encode_page_cursor(following) if following < progress.total else None,
    )


async def retry_failed(
    client: Client, job_id: str, *, actor: Principal, settings: Settings | None = None
) -> RetryAccepted:
    """Try the job's failed items again: in the running job, or in a new run of a job that has closed."""
    settings = settings or get_settings()
    handle, description = await _owned_handle(client, job_id, client_id=_owner(actor))
    if description.status != WorkflowExecutionStatus.RUNNING:
        final: BulkProgress = await handle.result()
        failed = [item for item in final.items if item.outcome == ItemOutcome.FAILED]
        if final.status == JobStatus.CANCELLED:
            raise ActionRefused("the job is cancelled")
        if not failed:
            raise ActionRefused("no item of the job has failed")
        if await _start_again(client, settings, handle, description, final, actor):
            return RetryAccepted(job_id=job_id, status=JobStatus.RUNNING, retried=len(failed))
    retried: int = await _update(handle, job_id, names.UPDATE_BULK_RETRY, RetryCommand(actor=_actor(actor)))
    return RetryAccepted(job_id=job_id, status=JobStatus.RUNNING, retried=retried)


async def cancel_job(client: Client, job_id: str, *, actor: Principal) -> BulkJobView:
    """Stop starting the job's items; those in flight finish, the rest end `cancelled`."""
    owner = _owner(actor)
    handle, description = await _owned_handle(client, job_id, client_id=owner)
    if description.status != WorkflowExecutionStatus.RUNNING:
        final: BulkProgress = await handle.result()
        raise ActionRefused(f"the job is {final.status.value}")
    await _update(handle, job_id, names.UPDATE_BULK_CANCEL, CancelJobCommand(actor=_actor(actor)))
    return await job_view(client, job_id, client_id=owner)


async def _start_again(
    client: Client,
    settings: Settings,
    handle: WorkflowHandle[Any, Any],
    description: WorkflowExecutionDescription,
    final: BulkProgress,
    actor: Principal,
) -> bool:
    """A new run of a closed job with its failed items pending again; False if another run started first."""
    items = [
        item.model_copy(update={"outcome": ItemOutcome.PENDING, "reason": None})
        if item.outcome == ItemOutcome.FAILED
        else item
        for item in final.items
    ]
    job = BulkJobInput(
        job_id=final.job_id,
        kind=final.kind,
        action=final.action,
        reason=None,
        actor=_actor(actor),
        client_id=final.client_id,
        items=items,
        concurrency=settings.bulk_concurrency,
        max_history_events=settings.bulk_max_history_events,
        created_at=description.start_time or datetime.now(UTC),
    )
    try:
        await client.start_workflow(
            names.BULK_WORKFLOW,
            job,
            id=handle.id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=f"Retry {sum(1 for item in items if item.outcome == ItemOutcome.PENDING)} failed items",
            memo={names.MEMO_JOB_CLIENT_ID: final.client_id},
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


async def _progress(client: Client, job_id: str, page: ProgressPage, *, client_id: str | None) -> BulkProgress:
    handle, description = await _owned_handle(client, job_id, client_id=client_id)
    if description.status == WorkflowExecutionStatus.RUNNING:
        try:
            answer: BulkProgress = await handle.query(
                names.QUERY_BULK_PROGRESS, page, result_type=BulkProgress, rpc_timeout=timedelta(seconds=10)
            )
            return answer
        except WorkflowQueryFailedError as error:
            raise OrderUnavailable(
                f"bulk job {job_id} did not answer: {error}", retry_after=RETRY_AFTER_SECONDS
            ) from error
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise OrderUnavailable(
                    f"bulk job {job_id} did not answer in time", retry_after=RETRY_AFTER_SECONDS
                ) from error
    if description.status in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.RUNNING):
        final: BulkProgress = await handle.result()
        return final
    # Terminated or timed out from outside (the Temporal UI): it has no outcomes to show.
    raise ActionRefused(f"bulk job {job_id} was {description.status.name.lower() if description.status else 'closed'}")


async def _owned_handle(
    client: Client, job_id: str, *, client_id: str | None
) -> tuple[WorkflowHandle[Any, Any], WorkflowExecutionDescription]:
    """The job's workflow and how it stands; BulkJobNotFound when there is none, or it is another client's."""
    handle = client.get_workflow_handle(names.bulk_workflow_id(job_id), result_type=BulkProgress)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise BulkJobNotFound(job_id) from error
        raise
    if description.workflow_type != names.BULK_WORKFLOW:
        raise BulkJobNotFound(job_id)
    if client_id is not None and await description.memo_value(names.MEMO_JOB_CLIENT_ID, None) != client_id:
        raise BulkJobNotFound(job_id)
    return handle, description


async def _update(handle: WorkflowHandle[Any, Any], job_id: str, update: str, command: Any) -> Any:
    try:
        return await handle.execute_update(update, command, rpc_timeout=timedelta(seconds=10))
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        raise ActionRefused(cause.message if isinstance(cause, ApplicationError) else str(cause)) from error
    except WorkflowUpdateRPCTimeoutOrCancelledError as error:
        raise OrderUnavailable(
            f"bulk job {job_id} did not answer in time; the request may still be applied",
            retry_after=RETRY_AFTER_SECONDS,
        ) from error
