"""The bulk job workflow: one durable run per job (`bulk-<job_id>`), many orders approved, rejected,
cancelled or imported, a bounded number at a time.

run() reads as the job: work through the items, hand over to a new run before the history grows
large, close what was never tried, answer with every item's outcome. Each item is one activity
(activities/bulk.py): transient errors are retried there; the order's refusal is recorded as
`refused` with its reason and never retried; an item still failing after its retries is `failed`,
and the retry update tries those again. The cancel update (or a cancellation from the Temporal UI)
stops starting items; those in flight finish, the rest are closed `cancelled`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.bulk import ITEM_REFUSED, BulkActivities
    from domain import bulk as bulk_rules
    from models import names
    from models.bulk import (
        BulkJobInput,
        BulkJobKind,
        BulkProgress,
        CancelJobCommand,
        ItemInput,
        ItemOutcome,
        ItemResult,
        JobItem,
        JobStatus,
        ProgressPage,
        RetryCommand,
    )

# One item: a Temporal call and a database write or two; retried a few times, then left `failed`.
# It heartbeats each second: one whose worker died is tried again after a few seconds.
ITEM_STEP_TIMEOUT = timedelta(seconds=60)
ITEM_HEARTBEAT_TIMEOUT = timedelta(seconds=5)
ITEM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=5
)
CANCELLED_IN_FLIGHT = "the job was cancelled while this item was in flight; look at the order itself"


@workflow.defn(name=names.BULK_WORKFLOW)
class BulkJobWorkflow:
    @workflow.init
    def __init__(self, job: BulkJobInput) -> None:
        self._job = job
        self._items = [item.model_copy() for item in job.items]
        self._cancelled = job.cancelled
        self._queue: deque[int] = deque(
            index for index, item in enumerate(self._items) if item.outcome == ItemOutcome.PENDING
        )
        self._in_flight: set[int] = set()
        # The items' tasks, held so none is collected mid-flight.
        self._tasks: set[asyncio.Task[None]] = set()

    @workflow.run
    async def run(self, job: BulkJobInput) -> BulkProgress:
        try:
            while True:
                await self._work_through_items()
                # A retry may have queued failed items as the last ones finished.
                if self._cancelled or self._history_long() or not self._queue:
                    break
        except asyncio.CancelledError:
            # Cancelled from the Temporal UI: the same end as the cancel update.
            self._cancelled = True
            await workflow.wait_condition(lambda: not self._in_flight)
        if self._queue and not self._cancelled:
            await self._hand_over()
        self._close_untried()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._progress(0, len(self._items), finished=True, keep_orders=True)

    # ---- Operators and the API talk to the job through these. ----

    @workflow.query(name=names.QUERY_BULK_PROGRESS)
    def progress(self, page: ProgressPage) -> BulkProgress:
        return self._progress(page.offset, page.limit, finished=False, keep_orders=False)

    @workflow.update(name=names.UPDATE_BULK_RETRY)
    def retry_failed(self, command: RetryCommand) -> int:
        """Queue every failed item again; answers how many."""
        failed = [index for index, item in enumerate(self._items) if item.outcome == ItemOutcome.FAILED]
        for index in failed:
            self._items[index].outcome = ItemOutcome.PENDING
            self._items[index].reason = None
            self._queue.append(index)
        workflow.logger.info("%d failed items queued again by %s", len(failed), command.actor)
        return len(failed)

    @retry_failed.validator
    def _validate_retry(self, command: RetryCommand) -> None:
        if self._cancelled:
            raise ApplicationError("the job is cancelled", type="RetryRefused", non_retryable=True)
        if not any(item.outcome == ItemOutcome.FAILED for item in self._items):
            raise ApplicationError("no item of the job has failed", type="RetryRefused", non_retryable=True)

    @workflow.update(name=names.UPDATE_BULK_CANCEL)
    def cancel_job(self, command: CancelJobCommand) -> int:
        """Start no more items; answers how many were still to be tried."""
        self._cancelled = True
        workflow.logger.info("job cancelled by %s with %d items untried", command.actor, len(self._queue))
        return len(self._queue)

    @cancel_job.validator
    def _validate_cancel(self, command: CancelJobCommand) -> None:
        if self._cancelled:
            raise ApplicationError("the job is already cancelled", type="CancelRefused", non_retryable=True)

    # ---- The steps. ----

    async def _work_through_items(self) -> None:
        """Start queued items while fewer than `concurrency` are in flight; return once none is left or the
        job stops (cancelled, or its history due to be handed over), with nothing in flight."""
        limit = max(1, self._job.concurrency)
        while True:
            await workflow.wait_condition(
                lambda: (
                    self._cancelled
                    or self._history_long()
                    or (bool(self._queue) and len(self._in_flight) < limit)
                    or (not self._queue and not self._in_flight)
                )
            )
            if self._cancelled or self._history_long() or not self._queue:
                break
            index = self._queue.popleft()
            self._in_flight.add(index)
            self._tasks.add(asyncio.create_task(self._process(index)))
        await workflow.wait_condition(lambda: not self._in_flight)

    async def _process(self, index: int) -> None:
        item = self._items[index]
        try:
            result = await self._run_item(item)
        except ActivityError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type == ITEM_REFUSED:
                self._settle(item, ItemOutcome.REFUSED, cause.message)
            else:
                message = cause.message if isinstance(cause, FailureError) else str(error)
                self._settle(item, ItemOutcome.FAILED, message or "the item failed")
        except asyncio.CancelledError:
            self._settle(item, ItemOutcome.FAILED, CANCELLED_IN_FLIGHT)
        else:
            item.order_id = result.order_id
            self._settle(item, ItemOutcome.DONE, None)
        finally:
            self._in_flight.discard(index)
            self._tasks = {task for task in self._tasks if not task.done()}

    async def _run_item(self, item: JobItem) -> ItemResult:
        job = self._job
        request = ItemInput(
            job_id=job.job_id,
            ref=item.ref,
            action=job.action,
            order_id=item.order_id,
            order=item.order,
            reason=job.reason,
            actor=job.actor,
            client_id=job.client_id,
        )
        if job.kind == BulkJobKind.IMPORT:
            return await workflow.execute_activity_method(
                BulkActivities.place_order,
                request,
                summary=f"Place order {item.ref}",
                start_to_close_timeout=ITEM_STEP_TIMEOUT,
                heartbeat_timeout=ITEM_HEARTBEAT_TIMEOUT,
                retry_policy=ITEM_RETRY,
            )
        return await workflow.execute_activity_method(
            BulkActivities.act_on_order,
            request,
            summary=f"{str(job.action).capitalize()} order {item.ref}",
            start_to_close_timeout=ITEM_STEP_TIMEOUT,
            heartbeat_timeout=ITEM_HEARTBEAT_TIMEOUT,
            retry_policy=ITEM_RETRY,
        )

    async def _hand_over(self) -> None:
        """Carry on in a new run with the outcomes so far: this run's history has grown long."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._job.model_copy(update={"items": self._items, "cancelled": self._cancelled}))

    def _close_untried(self) -> None:
        for index in self._queue:
            self._settle(self._items[index], ItemOutcome.CANCELLED, "the job was cancelled before this item")
        self._queue.clear()

    # ---- Helpers. ----

    @staticmethod
    def _settle(item: JobItem, outcome: ItemOutcome, reason: str | None) -> None:
        item.outcome = outcome
        item.reason = reason
        if outcome != ItemOutcome.FAILED:
            # Placed or refused: the order's body is needed no more; a failed one is kept for a retry.
            item.order = None

    def _history_long(self) -> bool:
        info = workflow.info()
        return info.get_current_history_length() >= self._job.max_history_events or info.is_continue_as_new_suggested()

    def _progress(self, offset: int, limit: int, *, finished: bool, keep_orders: bool) -> BulkProgress:
        counts = bulk_rules.tally(self._items)
        status = JobStatus.RUNNING
        if finished:
            status = JobStatus.CANCELLED if self._cancelled else JobStatus.COMPLETED
        page = self._items[offset : offset + limit]
        return BulkProgress(
            job_id=self._job.job_id,
            kind=self._job.kind,
            action=self._job.action,
            client_id=self._job.client_id,
            status=status,
            total=counts.total,
            done=counts.done,
            refused=counts.refused,
            failed=counts.failed,
            offset=offset,
            items=page if keep_orders else [item.model_copy(update={"order": None}) for item in page],
        )
