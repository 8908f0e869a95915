"""The return workflow: one durable run per return (RMA), from the request to the refund.

run() reads as the returns desk's process: review, label, goods in, refund (or, for an exchange,
a replacement order), close. Operators and
the warehouse talk to it through updates whose validators refuse a wrong request before it
reaches history; the carrier's events for the return label come in as signals. Money moves
last: a refund that keeps failing flags the return for an operator and never undoes the restock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.returns import ReturnActivities
    from domain import returns as return_rules
    from models import names
    from models.returns import (
        CancelReturnCommand,
        LabelInput,
        ReceiptRecord,
        ReceiveCommand,
        ReceiveGoodsInput,
        RecordReturnInput,
        RefundInput,
        ReplacementInput,
        ReturnEvent,
        ReturnInput,
        ReturnState,
        ReturnStatus,
        ReturnTrackingEvent,
        ReviewReturnCommand,
        VoidLabelInput,
    )
    from workflows.options import DB_STEP, EXTERNAL_STEP, StepOptions

# Patches of this workflow, for runs started before the change (see tests/test_replay.py).
EXCHANGE_WITH_REPLACEMENT = "exchange-with-replacement"
STOP_REFUND_WHEN_CANCELLED = "stop-refund-when-cancelled"

# A refund is tried this often (backing off up to a minute) before an operator is asked to look.
REFUND_STEP: StepOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1), maximum_attempts=8
    ),
}
# Statuses in which the goods may still be cancelled, reviewed away or awaited.
BEFORE_GOODS = frozenset(
    {
        ReturnStatus.REQUESTED,
        ReturnStatus.PENDING_REVIEW,
        ReturnStatus.APPROVED,
        ReturnStatus.LABEL_ISSUED,
        ReturnStatus.IN_TRANSIT,
    }
)
RECEIVING = frozenset({ReturnStatus.LABEL_ISSUED, ReturnStatus.IN_TRANSIT, ReturnStatus.RECEIVED})


class ReturnEnded(Exception):
    """Leaves the process once the return has reached a final status before its refund."""


@workflow.defn(name=names.RETURN_WORKFLOW)
class ReturnWorkflow:
    @workflow.init
    def __init__(self, request: ReturnInput) -> None:
        self._input = request
        lines = [line.model_copy() for line in request.lines]
        self._state = ReturnState(
            return_id=request.return_id,
            workflow_id=workflow.info().workflow_id,
            order_id=request.order_id,
            customer_id=request.customer_id,
            client_id=request.client_id,
            status=ReturnStatus.REQUESTED,
            resolution=request.resolution,
            note=request.note,
            lines=lines,
            value=return_rules.return_value(lines),
            currency=request.invoice.currency,
            created_at=request.requested_at,
            updated_at=request.requested_at,
        )
        self._review: ReviewReturnCommand | None = None
        self._cancel: CancelReturnCommand | None = None
        self._retry_refund = False
        # Bumped by every message, so the process wakes to look at what changed.
        self._news = 0
        self._tracking_seen: set[str] = set()
        self._tracking_inbox: list[ReturnTrackingEvent] = []
        # One receipt at a time: each is booked, then counted, before the next is looked at.
        self._receiving = asyncio.Lock()
        # Until the process stops waiting for goods (all in, shipping time over, cancelled).
        self._taking_goods = True
        # The carrier has delivered the parcel back to the warehouse.
        self._parcel_arrived = False
        self._seq = 0

    @workflow.run
    async def run(self, request: ReturnInput) -> ReturnState:
        try:
            await self._set_status(ReturnStatus.REQUESTED, "return requested", actor=request.requested_by)
            if request.window_override is not None:
                await self._record(
                    "return window overridden", actor=request.requested_by, detail=request.window_override
                )
            await self._review_return()
            await self._issue_label()
            await self._await_goods()
            if self._state.resolution == "exchange" and workflow.patched(EXCHANGE_WITH_REPLACEMENT):
                await self._exchange()
            else:
                await self._refund()
            await self._set_status(ReturnStatus.CLOSED, "return closed")
        except ReturnEnded:
            pass
        except asyncio.CancelledError:
            # Cancelled from outside (an operator in the Temporal UI): the same cleanup as a customer's cancel.
            await asyncio.shield(asyncio.ensure_future(self._cancelled_from_outside()))
            raise
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    # ---- Operators, the warehouse, the customer and the carrier talk to the return through these. ----

    @workflow.query(name=names.QUERY_STATUS)
    def status(self) -> ReturnState:
        return self._state

    @workflow.update(name=names.UPDATE_REVIEW_RETURN)
    async def review(self, command: ReviewReturnCommand) -> ReturnState:
        self._review = command
        self._news += 1
        await workflow.wait_condition(lambda: self._state.status != ReturnStatus.PENDING_REVIEW)
        return self._state

    @review.validator
    def _validate_review(self, command: ReviewReturnCommand) -> None:
        if self._state.status != ReturnStatus.PENDING_REVIEW or self._review is not None:
            self._refuse(f"return is {self._state.status.value}, not waiting for review", "ReviewRefused")

    @workflow.update(name=names.UPDATE_RECEIVE_RETURN)
    async def receive(self, command: ReceiveCommand) -> ReturnState:
        async with self._receiving:
            # Checked again under the lock: another receipt may have been booked, or the return
            # cancelled or closed for goods, since the validator ran.
            self._refuse_unless_taking_goods(command)
            receipt_no = len(self._state.receipts) + 1
            await workflow.execute_activity_method(
                ReturnActivities.receive_return_goods,
                ReceiveGoodsInput(
                    return_id=self._state.return_id,
                    receipt_no=receipt_no,
                    warehouse=command.warehouse,
                    lines=command.lines,
                ),
                summary=f"Book receipt {receipt_no}: restock resellable units, write off damaged ones",
                **DB_STEP,
            )
            return_rules.apply_receipt(self._state.lines, command.lines)
            self._state.receipts.append(
                ReceiptRecord(
                    receipt_no=receipt_no,
                    warehouse=command.warehouse,
                    lines=command.lines,
                    received_by=command.actor,
                    at=workflow.now(),
                )
            )
            detail = ", ".join(f"{line.quantity} x {line.sku} {line.condition.value}" for line in command.lines)
            left = sum(return_rules.outstanding(self._state.lines).values())
            event = f"receipt {receipt_no} at {command.warehouse}" + (f", {left} units still expected" if left else "")
            await self._set_status(ReturnStatus.RECEIVED, event, actor=command.actor, detail=detail)
            self._news += 1
        return self._state

    @receive.validator
    def _validate_receive(self, command: ReceiveCommand) -> None:
        self._refuse_unless_taking_goods(command)

    def _refuse_unless_taking_goods(self, command: ReceiveCommand) -> None:
        if self._state.status not in RECEIVING or not self._taking_goods:
            self._refuse(f"return is {self._state.status.value}: no goods are expected", "ReceiptRefused")
        if self._cancel is not None:
            self._refuse("the return is being cancelled", "ReceiptRefused")
        try:
            return_rules.check_receipt(self._state.lines, command.lines)
        except return_rules.ReturnRefused as refusal:
            self._refuse(str(refusal), "ReceiptRefused")

    @workflow.update(name=names.UPDATE_CANCEL_RETURN)
    async def cancel(self, command: CancelReturnCommand) -> ReturnState:
        if self._cancel is None:
            self._cancel = command
            self._news += 1
        await workflow.wait_condition(lambda: self._state.status.is_terminal)
        return self._state

    @cancel.validator
    def _validate_cancel(self, command: CancelReturnCommand) -> None:
        if self._state.status not in BEFORE_GOODS or self._receiving.locked():
            self._refuse(
                f"return is {self._state.status.value}: it can be cancelled only before goods are received",
                "CancelRefused",
            )
        if self._parcel_arrived:
            self._refuse("the parcel has arrived at the warehouse: it can no longer be cancelled", "CancelRefused")

    @workflow.update(name=names.UPDATE_RETRY_REFUND)
    async def retry_refund(self, command: ReviewReturnCommand) -> ReturnState:
        self._retry_refund = True
        self._news += 1
        self._append_event("refund retried by operator", actor=command.actor, detail=command.note)
        await workflow.wait_condition(lambda: not self._retry_refund)
        return self._state

    @retry_refund.validator
    def _validate_retry_refund(self, command: ReviewReturnCommand) -> None:
        if self._state.refund is not None or self._state.needs_attention is None or self._retry_refund:
            self._refuse("no failed refund is waiting for an operator", "RetryRefused")

    @workflow.signal(name=names.SIGNAL_RETURN_TRACKING)
    def tracking_event(self, event: ReturnTrackingEvent) -> None:
        if event.event_id not in self._tracking_seen:
            self._tracking_seen.add(event.event_id)
            # The goods are ours from here on: the customer can no longer call the return off.
            self._parcel_arrived = self._parcel_arrived or event.status == "delivered"
            self._tracking_inbox.append(event)
            self._news += 1

    # ---- The process, step by step. ----

    async def _review_return(self) -> None:
        reasons = return_rules.review_reasons(self._state.lines, self._input.review_threshold)
        if not reasons:
            await self._set_status(ReturnStatus.APPROVED, "approved by the rules")
            return
        await self._set_status(ReturnStatus.PENDING_REVIEW, "sent to an operator", detail="; ".join(reasons))
        await workflow.wait_condition(lambda: self._review is not None or self._cancel is not None)
        await self._stop_if_cancelled()
        assert self._review is not None
        self._state.reviewed_by = self._review.actor
        self._state.review_note = self._review.note
        if not self._review.approve:
            await self._end(ReturnStatus.DECLINED, "declined by operator", actor=self._review.actor)
        await self._set_status(
            ReturnStatus.APPROVED, "approved by operator", actor=self._review.actor, detail=self._review.note
        )

    async def _issue_label(self) -> None:
        await self._stop_if_cancelled()
        items: dict[str, int] = {}
        for line in self._state.lines:
            items[line.sku] = items.get(line.sku, 0) + line.quantity
        self._state.label = await workflow.execute_activity_method(
            ReturnActivities.issue_return_label,
            LabelInput(return_id=self._state.return_id, order_id=self._state.order_id, items=sorted(items.items())),
            summary="Carrier: issue a return label",
            **EXTERNAL_STEP,
        )
        await self._set_status(
            ReturnStatus.LABEL_ISSUED, "return label issued", detail=self._state.label.tracking_number
        )
        await self._stop_if_cancelled()

    async def _await_goods(self) -> None:
        """Follow the parcel and take receipts until everything is in, or the customer's shipping time is up."""
        deadline = workflow.now() + self._input.shipping_window
        while sum(return_rules.outstanding(self._state.lines).values()) > 0:
            left = deadline - workflow.now()
            if left <= timedelta(0) or not await self._wait(self._news_since(self._news), left, "Goods deadline"):
                break
            while self._tracking_inbox:
                await self._apply_tracking(self._tracking_inbox.pop(0))
            await self._stop_if_cancelled()
        # No receipt is taken from here on; one being booked right now is counted before the process goes on.
        self._taking_goods = False
        await workflow.wait_condition(lambda: not self._receiving.locked())
        if not self._state.receipts:
            await self._end(ReturnStatus.EXPIRED, "no goods within the shipping time", actor="timer")
        if sum(return_rules.outstanding(self._state.lines).values()) > 0:
            self._append_event("shipping time over: refunding what was received", actor="timer")

    async def _apply_tracking(self, event: ReturnTrackingEvent) -> None:
        if event.status == "in_transit" and self._state.status == ReturnStatus.LABEL_ISSUED:
            await self._set_status(
                ReturnStatus.IN_TRANSIT, "parcel on its way back", actor="carrier", detail=event.tracking_number
            )
        else:
            await self._record(f"carrier: {event.status}", actor="carrier", detail=event.tracking_number)

    async def _refund(self) -> None:
        lines = return_rules.refund_lines(self._state.lines, self._input.invoice)
        amount = return_rules.refund_total(lines)
        # The key's number moves on only after finance refused: a refund that may have gone through keeps its key.
        number = 1
        while True:
            try:
                self._state.refund = await workflow.execute_activity_method(
                    ReturnActivities.refund_return,
                    RefundInput(
                        return_id=self._state.return_id,
                        order_id=self._state.order_id,
                        invoice_id=self._input.invoice.invoice_id,
                        attempt=number,
                        lines=lines,
                        amount=amount,
                        currency=self._input.invoice.currency,
                    ),
                    summary=f"Finance: refund {amount} {self._input.invoice.currency} with a credit note",
                    **REFUND_STEP,
                )
                break
            except ActivityError as error:
                if is_cancelled_exception(error) and workflow.patched(STOP_REFUND_WHEN_CANCELLED):
                    # The workflow itself was cancelled (the Temporal UI), not the refund refused: stop.
                    raise asyncio.CancelledError() from error
                cause = error.cause
                if isinstance(cause, ApplicationError) and cause.non_retryable:
                    number += 1
                await self._flag_refund(str(cause or error))
        self._state.needs_attention = None
        await self._set_status(
            ReturnStatus.REFUNDED,
            "refunded",
            detail=f"{self._state.refund.amount} {self._state.refund.currency}, "
            f"credit note {self._state.refund.credit_note}",
        )

    async def _exchange(self) -> None:
        """Place a replacement order for the units received, whatever their condition; no money moves."""
        items: dict[str, int] = {}
        for line in self._state.lines:
            if line.received:
                items[line.sku] = items.get(line.sku, 0) + line.received
        self._state.replacement_order_id = await workflow.execute_activity_method(
            ReturnActivities.place_replacement,
            ReplacementInput(
                return_id=self._state.return_id, order_id=self._state.order_id, items=sorted(items.items())
            ),
            summary=f"Place the replacement order: {sum(items.values())} units, no charge, review skipped",
            **EXTERNAL_STEP,
        )
        await self._set_status(
            ReturnStatus.EXCHANGED, "replacement order placed", detail=self._state.replacement_order_id
        )

    async def _flag_refund(self, problem: str) -> None:
        """Ask an operator to look; the goods stay restocked. Waits for the operator's retry."""
        self._state.needs_attention = f"refund failed: {problem}"
        await self._record("refund failed: flagged for an operator", detail=problem)
        await workflow.wait_condition(lambda: self._retry_refund)
        self._retry_refund = False

    # ---- Ending early: cancelled, declined, expired. ----

    async def _stop_if_cancelled(self) -> None:
        if self._cancel is not None:
            await self._end(
                ReturnStatus.CANCELLED, "return cancelled", actor=self._cancel.actor, detail=self._cancel.reason
            )

    async def _end(self, status: ReturnStatus, event: str, *, actor: str = "system", detail: str | None = None) -> None:
        label = self._state.label
        if label is not None and label.status != "void":
            try:
                await workflow.execute_activity_method(
                    ReturnActivities.void_return_label,
                    VoidLabelInput(return_id=self._state.return_id, label_id=label.label_id),
                    summary=f"Carrier: void return label {label.tracking_number}",
                    **EXTERNAL_STEP,
                )
                label.status = "void"
            except FailureError as error:
                self._state.needs_attention = f"return label not voided: {error}"
        await self._set_status(status, event, actor=actor, detail=detail)
        raise ReturnEnded()

    async def _cancelled_from_outside(self) -> None:
        if self._state.status.is_terminal:
            return
        if self._state.status not in BEFORE_GOODS:
            # Goods are back on the shelf: nothing to undo, but the money is now an operator's to move.
            self._state.needs_attention = "return workflow cancelled after the goods were received: refund by hand"
            await self._record("return workflow cancelled", actor="operator")
            return
        with contextlib.suppress(ReturnEnded):
            await self._end(ReturnStatus.CANCELLED, "return workflow cancelled", actor="operator")

    # ---- Status, timeline, search attributes, record. ----

    async def _set_status(
        self, status: ReturnStatus, event: str, *, actor: str = "system", detail: str | None = None
    ) -> None:
        self._state.status = status
        workflow.upsert_search_attributes(
            [
                names.SA_RETURN_STATUS.value_set(status.value),
                names.SA_ORDER_ID.value_set(self._state.order_id),
                names.SA_CUSTOMER_ID.value_set(self._state.customer_id),
            ]
        )
        workflow.set_current_details(f"**{status.value}**: {event}")
        await self._record(event, actor=actor, detail=detail)

    def _append_event(self, event: str, *, actor: str = "system", detail: str | None = None) -> None:
        now = workflow.now()
        self._state.timeline.append(
            ReturnEvent(
                seq=len(self._state.timeline) + 1,
                at=now,
                status=self._state.status,
                actor=actor,
                event=event,
                detail=detail,
            )
        )
        self._state.updated_at = now

    async def _record(self, event: str, *, actor: str = "system", detail: str | None = None) -> None:
        """Add a timeline entry and write the return as it now stands, before going on."""
        self._append_event(event, actor=actor, detail=detail)
        self._seq += 1
        await workflow.execute_local_activity_method(
            ReturnActivities.record_return,
            RecordReturnInput(state=self._state.model_copy(deep=True), seq=self._seq),
            summary=f"Record: {event}",
            **DB_STEP,
        )

    # ---- Small helpers. ----

    def _news_since(self, seen: int) -> Callable[[], bool]:
        return lambda: self._news != seen or bool(self._tracking_inbox) or self._cancel is not None

    def _refuse(self, reason: str, kind: str) -> None:
        raise ApplicationError(reason, type=kind, non_retryable=True)

    async def _wait(self, condition: Callable[[], bool], timeout: timedelta, summary: str) -> bool:
        try:
            await workflow.wait_condition(condition, timeout=timeout, timeout_summary=summary)
        except TimeoutError:
            return False
        return True
