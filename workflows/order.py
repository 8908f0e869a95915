"""The order workflow: one durable run per order, from receipt to delivery.

run() reads as the business process; each step is a small private method. Nothing
here does I/O: every side effect is an activity, and every undo step is registered
right after its do step succeeded, to be run in reverse if the order is undone.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.carrier import CarrierActivities
    from activities.combined import HandOverActivities, IntakeActivities
    from activities.customers import CustomerActivities
    from activities.finance import FinanceActivities
    from activities.inventory import InventoryActivities
    from activities.orders import OrderRecordActivities
    from activities.purchasing import PurchasingActivities
    from activities.review import ReviewActivities
    from domain import changes
    from models import names
    from models.changes import ChangeCommand
    from models.integrations import (
        BookingRef,
        ConfirmedBooking,
        CustomerUpsertInput,
        DraftBookingInput,
        InvoiceInput,
        InvoiceRef,
        NotificationInput,
        PrepareShipmentInput,
        PurchaseInput,
        RateQuote,
        ShippedNotice,
    )
    from models.inventory import (
        CommitOrderInput,
        LineKey,
        ReleaseOrderInput,
        ReplaceLinesInput,
        ReplaceLinesResult,
        ReserveLineInput,
        ReserveLineResult,
    )
    from models.order import (
        BackorderPolicy,
        CancelCommand,
        Invoice,
        LineState,
        OrderInput,
        OrderLine,
        OrderRequest,
        OrderState,
        OrderStatus,
        ResumedDelivery,
        ReviewCommand,
        ReviewDecision,
        ReviewOutcome,
        Shipment,
        TimelineEvent,
        TrackingEvent,
        TrackingStatus,
    )
    from models.purchasing import Allocated, ReportShortageInput, Withdrawal
    from models.records import RecordChangeInput, RecordOrderInput, ReviewInput, StatusChangeInput
    from workflows.options import BEST_EFFORT_STEP, DB_STEP, EXTERNAL_STEP, StepOptions
    from workflows.saga import Saga


# Patches of this workflow, for runs started before the change (see tests/test_replay.py).
RELEASE_HELD_STOCK_ON_CLOSE = "release-held-stock-on-close"
DECIDE_BEFORE_EFFECTS = "decide-before-effects"
CANCEL_FROM_TEMPORAL = "cancel-from-temporal"
CONTINUE_AS_NEW_WHILE_DELIVERING = "continue-as-new-while-delivering"
SKIP_REPEATED_TRACKING_STATUS = "skip-repeated-tracking-status"
SKIP_REVIEW_FOR_REPLACEMENT = "skip-review-for-replacement"

# What an order keeps in memory, whatever the carrier sends: the newest timeline entries (the
# database keeps them all) and the tracking event ids it last saw (a carrier repeats an event soon
# after, not thousands of events later). Its history it carries on in a new run (OrderInput.max_history_events).
KEPT_TIMELINE_ENTRIES = 100
KEPT_TRACKING_IDS = 1_000

# A cancellation requested from Temporal (the UI's "Request Cancellation", `temporal workflow cancel`).
TEMPORAL_ACTOR = "temporal"
TEMPORAL_CANCEL_REASON = "cancellation requested from the Temporal UI or CLI"

# Signalling a workflow that never ran or has closed fails with this type.
EXTERNAL_WORKFLOW_NOT_FOUND = "ExternalWorkflowExecutionNotFound"

# A backordered order keeps its place at the SKU's replenishment run until it has allocated: it reports
# its allocation round, tells the run once it has the stock, and reports again (in its place) when not.
KEEP_PLACE_UNTIL_ALLOCATED = "keep-place-until-allocated"

# An order can be changed before its invoice is issued (the `change` update). Runs started before
# this patch never open their door to a change, and refuse one.
ORDER_CHANGES = "order-changes"

# The order's first timeline entry (received) is written by the step that records the order, in its
# transaction, rather than by a status write of its own: one local activity fewer per order.
RECORD_WITH_FIRST_ENTRY = "record-with-first-entry"

# Steps that always run back to back are one local activity each: recording and reviewing the order,
# the carrier's address check and rate quote, the booking's confirmation and the stock's commit, the CRM's
# purchase and the customer's shipped notice; a status change upserts the status alone.
# A run started with this patch also takes every patch above as in effect, without asking (_patched).
MERGED_STEPS = "merged-steps"


class ProcessEnded(Exception):
    """Leaves the business process once the order has reached a final status before delivery."""


@workflow.defn(name=names.ORDER_WORKFLOW)
class OrderWorkflow:
    # Whether this run takes changes (patch ORDER_CHANGES); None until its process has started.
    _accepts_changes: bool | None

    @workflow.init
    def __init__(self, order: OrderInput) -> None:
        now = workflow.now()
        request = order.request
        self._input = order
        self._state = OrderState.received(
            order.order_id, workflow.info().workflow_id, request, now, client_id=order.client_id
        )
        if order.replacement_for is not None:
            self._state.replacement_for = order.replacement_for.order_id
        self._saga = Saga()
        self._background: list[asyncio.Task[Any]] = []
        self._operator_review: tuple[ReviewDecision, ReviewCommand] | None = None
        self._cancel: CancelCommand | None = None
        self._restocked = False
        self._past_point_of_no_return = False
        self._tracking_inbox: list[TrackingEvent] = []
        self._tracking_seen: set[str] = set()
        self._tracking_seen_order: deque[str] = deque()
        self._seq = 0
        # How many notices of each kind went out: a second backorder is a notice of its own.
        self._notices: Counter[str] = Counter()
        if order.resumed is not None:
            self._resume(order.resumed)
        # SKUs whose shortage this order may have reported and not yet withdrawn or been woken for.
        self._short_skus: set[str] = set()
        # Asked first, in the run's first workflow task: see _patched.
        self._merges_steps = workflow.patched(MERGED_STEPS)
        self._init_changes(order)

    @workflow.run
    async def run(self, order: OrderInput) -> OrderState:
        if not self._patched(CANCEL_FROM_TEMPORAL):
            return await self._process(order)
        # A cancellation requested from Temporal cancels this task, never the process, which runs in a
        # task of its own: no step in flight is cut off halfway, and the order is cancelled as the API
        # cancels it, with every undo step, or goes on if it is past the point of no return. Either way
        # the run completes with the order as its result, not as Canceled: the business outcome is the
        # order's status, and the API reads a completed run's result (a canceled run has none).
        process = asyncio.create_task(self._process(order))
        while True:
            try:
                return await asyncio.shield(process)
            except asyncio.CancelledError:
                if process.done():
                    return process.result()
                self._cancel_from_temporal()

    async def _process(self, order: OrderInput) -> OrderState:
        if order.resumed is not None:
            await self._await_delivery()
            return await self._finish()
        self._accepts_changes = self._patched(ORDER_CHANGES)
        try:
            reviewed = await self._record_order()
            self._best_effort(
                CustomerActivities.upsert_customer,
                CustomerUpsertInput(order_id=order.order_id, customer=order.request.customer),
                "Update customer in CRM",
            )
            await self._review(reviewed)
            await self._allocate_stock_and_prepare_shipping()
            while not await self._settle_and_ship():
                # A change sent the order back, before its invoice: to an operator's review, or for stock.
                await self._allocate_stock_and_prepare_shipping()
            await self._await_delivery()
        except ProcessEnded:
            pass
        return await self._finish()

    async def _finish(self) -> OrderState:
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._finish_background_steps()
        return self._state

    # ---- Operators, the API and the carrier talk to the order through these. ----

    @workflow.query(name=names.QUERY_STATUS)
    def status(self) -> OrderState:
        return self._state

    @workflow.update(name=names.UPDATE_APPROVE)
    async def approve(self, command: ReviewCommand) -> OrderState:
        return await self._decide(ReviewDecision.APPROVED, command)

    @approve.validator
    def _validate_approve(self, command: ReviewCommand) -> None:
        self._refuse_unless_waiting_for_review()

    @workflow.update(name=names.UPDATE_REJECT)
    async def reject(self, command: ReviewCommand) -> OrderState:
        return await self._decide(ReviewDecision.REJECTED, command)

    @reject.validator
    def _validate_reject(self, command: ReviewCommand) -> None:
        self._refuse_unless_waiting_for_review()

    @workflow.update(name=names.UPDATE_CANCEL)
    async def cancel(self, command: CancelCommand) -> OrderState:
        self._request_cancel(command)
        await workflow.wait_condition(lambda: self._state.status.is_terminal)
        return self._state

    @cancel.validator
    def _validate_cancel(self, command: CancelCommand) -> None:
        reason = self._why_not_cancellable()
        if reason:
            raise ApplicationError(reason, type="CancelRefused", non_retryable=True)

    @workflow.signal(name=names.SIGNAL_CANCEL)
    def cancel_signal(self, command: CancelCommand) -> None:
        reason = self._why_not_cancellable()
        if reason:
            workflow.logger.info("cancel signal ignored: %s", reason)
            return
        self._request_cancel(command)

    @workflow.signal(name=names.SIGNAL_RESTOCK)
    def restock(self) -> None:
        self._restocked = True

    @workflow.signal(name=names.SIGNAL_TRACKING)
    def tracking_event(self, event: TrackingEvent) -> None:
        if event.event_id not in self._tracking_seen:
            self._remember_tracking_id(event.event_id)
            self._tracking_inbox.append(event)

    def _remember_tracking_id(self, event_id: str) -> None:
        self._tracking_seen.add(event_id)
        self._tracking_seen_order.append(event_id)
        if len(self._tracking_seen_order) > KEPT_TRACKING_IDS:
            self._tracking_seen.discard(self._tracking_seen_order.popleft())

    # ---- The business process, step by step. ----

    async def _record_order(self) -> ReviewOutcome | None:
        """Record the order; with MERGED_STEPS, review it in the same step and return the outcome."""
        with_first_entry = self._patched(RECORD_WITH_FIRST_ENTRY)
        first_entry = (
            self._set_status(OrderStatus.RECEIVED, "order received", actor="client", write=False)
            if with_first_entry
            else None
        )
        record = RecordOrderInput(
            order_id=self._state.order_id,
            workflow_id=self._state.workflow_id,
            request=self._input.request,
            received_at=self._state.created_at,
            client_id=self._input.client_id,
            replacement_for=self._state.replacement_for,
            first_entry=first_entry,
        )
        outcome: ReviewOutcome | None = None
        if self._merges_steps and not self._skips_review:
            outcome = await workflow.execute_local_activity_method(
                IntakeActivities.record_and_review,
                record,
                summary="Record order and review it (automatic rules)",
                **DB_STEP,
            )
        else:
            await workflow.execute_local_activity_method(
                OrderRecordActivities.record_order, record, summary="Record order", **DB_STEP
            )
        if not with_first_entry:
            self._set_status(OrderStatus.RECEIVED, "order received", actor="client")
        return outcome

    @property
    def _skips_review(self) -> bool:
        return self._input.replacement_for is not None and self._patched(SKIP_REVIEW_FOR_REPLACEMENT)

    async def _review(self, outcome: ReviewOutcome | None) -> None:
        """Act on the automatic review's outcome, reviewing the order first unless its record step did."""
        replaces = self._input.replacement_for
        if replaces is not None and self._skips_review:
            # An exchange's replacement, at no charge: the original order was reviewed and paid.
            self._state.review = ReviewOutcome(
                decision=ReviewDecision.APPROVED, reasons=["replacement order of an exchange"], reviewed_by="exchange"
            )
            self._append_event(
                "review skipped: replacement order", detail=f"order {replaces.order_id}, return {replaces.return_id}"
            )
            return
        if outcome is None:
            outcome = await workflow.execute_local_activity_method(
                ReviewActivities.review_order,
                ReviewInput(order_id=self._state.order_id, request=self._input.request),
                summary="Review order (automatic rules)",
                **DB_STEP,
            )
        self._state.review = outcome
        if outcome.decision == ReviewDecision.REJECTED:
            await self._close(OrderStatus.REJECTED, "rejected by review rules", detail="; ".join(outcome.reasons))
        if outcome.decision == ReviewDecision.MANUAL:
            await self._manual_review(outcome)
        await self._stop_if_cancelled()

    async def _manual_review(self, automatic: ReviewOutcome) -> None:
        self._set_status(OrderStatus.PENDING_REVIEW, "sent to manual review", detail="; ".join(automatic.reasons))
        decided = await self._open_to_changes(
            self._wait(
                lambda: self._operator_review is not None or self._cancel is not None,
                self._input.review_timeout,
                "Manual review deadline",
            )
        )
        await self._stop_if_cancelled()
        if not decided or self._operator_review is None:
            await self._close(OrderStatus.CANCELLED, "manual review deadline passed", actor="timer")
            return
        decision, command = self._operator_review
        self._state.review = ReviewOutcome(
            decision=decision, reasons=automatic.reasons, reviewed_by=command.actor, note=command.note
        )
        if decision == ReviewDecision.REJECTED:
            await self._close(OrderStatus.REJECTED, "rejected by operator", actor=command.actor, detail=command.note)
        self._append_event("approved by operator", actor=command.actor, detail=command.note)

    async def _allocate_stock_and_prepare_shipping(self) -> None:
        attempt = 0
        while True:
            attempt += 1
            if self._sent_to_review is not None:
                await self._review_changed_order(self._sent_to_review)
            self._set_status(
                OrderStatus.ALLOCATING, "allocating stock and preparing shipping", detail=f"round {attempt}"
            )
            shortages = await self._reserve_lines_and_draft_booking(attempt)
            if self._keeps_place_until_allocated:
                await self._tell_replenishment_allocated(self._short_skus - set(shortages))
            if self._state.backorder_policy == BackorderPolicy.WAIT:
                self._short_skus |= set(shortages)
            await self._stop_if_cancelled()
            if not shortages:
                return
            await self._compensate()
            detail = ", ".join(f"{sku} short by {units}" for sku, units in sorted(shortages.items()))
            if self._state.backorder_policy == BackorderPolicy.CANCEL:
                await self._close(OrderStatus.CANCELLED, "stock shortage", detail=detail)
            await self._wait_for_restock(set(shortages), detail, attempt)

    async def _reserve_lines_and_draft_booking(self, attempt: int) -> dict[str, int]:
        """Reserve every line and prepare shipping at the same time; returns the units short per SKU."""
        reservations = [self._reserve_line(line, attempt) for line in self._state.lines]
        outcomes = await asyncio.gather(self._prepare_shipping(attempt), *reservations, return_exceptions=True)
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            await self._fail(failures[0])
        shortages: dict[str, int] = {}
        for result in outcomes[1:]:
            assert isinstance(result, ReserveLineResult)
            if result.shortage:
                shortages[result.sku] = shortages.get(result.sku, 0) + result.shortage
        return shortages

    async def _reserve_line(self, line: LineState, attempt: int) -> ReserveLineResult:
        key = LineKey(order_id=self._state.order_id, line_no=line.line_no, attempt=attempt)
        result: ReserveLineResult = await self._step_with_effect(
            InventoryActivities.reserve_line,
            ReserveLineInput(key=key, sku=line.sku, quantity=line.quantity),
            f"Reserve {line.quantity} x {line.sku} (line {line.line_no})",
            DB_STEP,
        )
        if result.allocations:
            line.allocations = result.allocations
            self._held[line.line_no] = key
            self._saga.register(f"release line {line.line_no}", lambda: self._release_line(line, key))
        return result

    async def _release_line(self, line: LineState, key: LineKey) -> None:
        await workflow.execute_local_activity_method(
            InventoryActivities.release_line,
            key,
            summary=f"Release {line.sku} (line {line.line_no})",
            **DB_STEP,
        )
        line.allocations = []
        if self._held.get(line.line_no) == key:
            del self._held[line.line_no]

    async def _prepare_shipping(self, attempt: int) -> None:
        """Address check and rate quote at once, then the draft booking; each step retried on its own."""
        request = PrepareShipmentInput(
            order_id=self._state.order_id,
            address=self._input.request.shipping_address,
            lines=self._input.request.lines,
            currency=self._state.currency,
            attempt=attempt,
        )
        shipment = await self._check_quote_and_draft(request)
        self._state.shipment = shipment
        self._saga.register("cancel carrier booking", lambda: self._cancel_booking(shipment))

    async def _check_quote_and_draft(self, request: PrepareShipmentInput, purpose: str = "") -> Shipment:
        quote: RateQuote
        if self._merges_steps:
            quote = await workflow.execute_local_activity_method(
                CarrierActivities.check_address_and_quote,
                request,
                summary="Carrier: check the address and quote a rate",
                **EXTERNAL_STEP,
            )
        else:
            _, quote = await asyncio.gather(
                workflow.execute_local_activity_method(
                    CarrierActivities.check_address, request, summary="Carrier: check the address", **EXTERNAL_STEP
                ),
                workflow.execute_local_activity_method(
                    CarrierActivities.quote_rate, request, summary="Carrier: quote a rate", **EXTERNAL_STEP
                ),
            )
        shipment: Shipment = await self._step_with_effect(
            CarrierActivities.draft_booking,
            DraftBookingInput(shipment=request, quote=quote),
            f"Carrier: draft booking{purpose} at {quote.rate} {quote.currency}",
            EXTERNAL_STEP,
        )
        return shipment

    async def _cancel_booking(self, shipment: Shipment) -> None:
        await workflow.execute_local_activity_method(
            CarrierActivities.cancel_booking,
            BookingRef(order_id=self._state.order_id, booking_id=shipment.booking_id),
            summary=f"Cancel carrier booking {shipment.booking_id}",
            **EXTERNAL_STEP,
        )
        shipment.status = "cancelled"

    async def _wait_for_restock(self, skus: set[str], detail: str, attempt: int) -> None:
        self._set_status(OrderStatus.BACKORDERED, "waiting for stock", detail=detail)
        self._notify("backordered", detail)
        self._restocked = False
        demand: dict[str, int] = {}
        for line in self._state.lines:
            if line.sku in skus:
                demand[line.sku] = demand.get(line.sku, 0) + line.quantity
        await asyncio.gather(
            *(
                workflow.execute_local_activity_method(
                    PurchasingActivities.report_shortage,
                    ReportShortageInput(
                        sku=sku,
                        order_id=self._state.order_id,
                        quantity=quantity,
                        round=attempt if self._keeps_place_until_allocated else None,
                    ),
                    summary=f"Tell purchasing: {sku} needed x {quantity}",
                    **EXTERNAL_STEP,
                )
                for sku, quantity in sorted(demand.items())
            )
        )
        restocked = await self._open_to_changes(
            self._wait(
                lambda: self._restocked or self._cancel is not None, self._input.backorder_timeout, "Backorder deadline"
            )
        )
        if self._cancel is not None or not restocked:
            await self._withdraw_from_replenishment(skus)
            self._short_skus -= skus
        elif not self._keeps_place_until_allocated:
            # Woken by the replenishment run, which forgot the order as it woke it.
            self._short_skus -= skus
        # Otherwise the order still waits in the SKUs' lists, whatever woke it (the run, or an operator's
        # restock signal), until the next round tells them it has allocated, or reports again.
        await self._stop_if_cancelled()
        if not restocked:
            await self._close(OrderStatus.CANCELLED, "backorder deadline passed", actor="timer", detail=detail)

    async def _withdraw_from_replenishment(self, skus: set[str]) -> None:
        await self._signal_replenishment(skus, names.SIGNAL_WITHDRAW, Withdrawal(order_id=self._state.order_id))

    async def _tell_replenishment_allocated(self, skus: set[str]) -> None:
        """Tell the runs of SKUs this order waited for that it has now allocated them, so they forget it."""
        await self._signal_replenishment(skus, names.SIGNAL_ALLOCATED, Allocated(order_id=self._state.order_id))
        self._short_skus -= skus

    async def _signal_replenishment(self, skus: set[str], signal: str, message: Withdrawal | Allocated) -> None:
        for sku in sorted(skus):
            handle = workflow.get_external_workflow_handle(names.replenishment_workflow_id(sku))
            try:
                await handle.signal(signal, message)
            except ApplicationError as error:
                if error.type != EXTERNAL_WORKFLOW_NOT_FOUND:
                    # Not a failure this order knows how to go on from: fail the workflow task, so the
                    # run waits, retried and visible, for a fix rather than ending the order half undone.
                    raise RuntimeError(f"signal {signal} to the replenishment of {sku} failed: {error}") from error
                # No replenishment run for the SKU (never started, or closed): none holds this order's demand.
                workflow.logger.info("no replenishment of %s for signal %s", sku, signal)

    async def _settle_and_ship(self) -> bool:
        """Invoice, book and hand over; False, before the invoice, when a change sent the order back."""
        self._set_status(OrderStatus.FULFILLING, "stock allocated, settling with finance")
        if not await self._let_changes_in_before_invoicing():
            return False
        self._notify("confirmed", None)
        try:
            invoice: Invoice = await self._step_with_effect(
                FinanceActivities.create_invoice,
                InvoiceInput(
                    order_id=self._state.order_id,
                    customer_id=self._state.customer.id,
                    lines=self._input.request.lines,
                    currency=self._state.currency,
                    shipping=self._shipment.rate,
                ),
                "Settle with finance: invoice with tax",
                EXTERNAL_STEP,
            )
            self._state.invoice = invoice
            self._saga.register("void invoice", self._void_invoice)
            self._append_event("invoiced", detail=f"{invoice.invoice_id}: {invoice.total} {invoice.currency}")
            await self._stop_if_cancelled()
            if self._decides_before_effects:
                # Handing the goods to the carrier starts here: cancelling is refused from now on.
                self._past_point_of_no_return = True
            if self._merges_steps:
                await self._hand_over()
            else:
                await self._confirm_then_commit()
        except FailureError as error:
            await self._fail(error)
        self._saga.clear()
        self._set_status(OrderStatus.SHIPPED, "handed to the carrier", detail=self._shipment.tracking_number)
        purchase = PurchaseInput(
            order_id=self._state.order_id,
            customer_id=self._state.customer.id,
            total=self._state.total,
            currency=self._state.currency,
            skus=self._input.request.skus,
        )
        if self._merges_steps:
            self._best_effort(
                CustomerActivities.record_purchase_and_notify,
                ShippedNotice(purchase=purchase, notification=self._notice("shipped", self._shipment.tracking_number)),
                "Record purchase in CRM; notify customer: shipped",
            )
        else:
            self._notify("shipped", self._shipment.tracking_number)
            self._best_effort(CustomerActivities.record_purchase, purchase, "Record purchase in CRM")
        return True

    async def _confirm_then_commit(self) -> None:
        """The booking confirmed, then the stock committed, each an activity of its own (runs before MERGED_STEPS)."""
        confirmed = await self._step_with_effect(
            CarrierActivities.confirm_booking,
            BookingRef(order_id=self._state.order_id, booking_id=self._shipment.booking_id),
            "Book with the carrier: tracking number",
            EXTERNAL_STEP,
        )
        self._shipment.tracking_number = confirmed.tracking_number
        self._shipment.status = "confirmed"
        await self._stop_if_cancelled()
        # From here on the goods leave: cancelling is refused and nothing is undone.
        self._past_point_of_no_return = True
        await self._step_with_effect(
            InventoryActivities.commit_order,
            CommitOrderInput(order_id=self._state.order_id),
            "Commit reservations: stock leaves the warehouse",
            DB_STEP,
        )

    async def _hand_over(self) -> None:
        """The booking confirmed and the stock committed in one activity: past the point of no return, nothing
        comes between them (no cancellation is taken), and a failure of either is the order's failure, undone."""
        confirmed: ConfirmedBooking = await self._step_with_effect(
            HandOverActivities.confirm_and_commit,
            BookingRef(order_id=self._state.order_id, booking_id=self._shipment.booking_id),
            "Book with the carrier: tracking number; commit reservations: stock leaves the warehouse",
            EXTERNAL_STEP,
        )
        self._shipment.tracking_number = confirmed.tracking_number
        self._shipment.status = "confirmed"

    async def _void_invoice(self) -> None:
        invoice = self._state.invoice
        assert invoice is not None
        await workflow.execute_local_activity_method(
            FinanceActivities.void_invoice,
            InvoiceRef(order_id=self._state.order_id, invoice_id=invoice.invoice_id),
            summary=f"Void invoice {invoice.invoice_id}",
            **EXTERNAL_STEP,
        )
        invoice.status = "void"

    async def _await_delivery(self) -> None:
        while self._state.status != OrderStatus.DELIVERED:
            arrived = await self._wait(
                lambda: bool(self._tracking_inbox), self._input.delivery_timeout, "Delivery deadline"
            )
            if not arrived and self._state.needs_attention is None:
                self._state.needs_attention = "no delivery confirmation from the carrier in time"
                self._append_event("flagged for an operator", actor="timer", detail=self._state.needs_attention)
            while self._tracking_inbox:
                self._apply_tracking(self._tracking_inbox.pop(0))
            if self._state.status != OrderStatus.DELIVERED and self._history_is_long():
                await self._continue_as_new()

    def _history_is_long(self) -> bool:
        info = workflow.info()
        long = (
            info.get_current_history_length() >= self._input.max_history_events or info.is_continue_as_new_suggested()
        )
        return long and self._patched(CONTINUE_AS_NEW_WHILE_DELIVERING)

    async def _continue_as_new(self) -> None:
        """Carry on waiting for the carrier in a new run, with a short history, the order as it stands."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._finish_background_steps()
        resumed = ResumedDelivery(
            state=self._state,
            seq=self._seq,
            tracking_seen=list(self._tracking_seen_order),
            tracking_inbox=self._tracking_inbox,
            notices=dict(self._notices),
        )
        workflow.continue_as_new(self._input.model_copy(update={"resumed": resumed}))

    def _resume(self, resumed: ResumedDelivery) -> None:
        """Take over from the run that continued as new: the order is with the carrier."""
        self._state = resumed.state
        self._seq = resumed.seq
        for event_id in resumed.tracking_seen:
            self._remember_tracking_id(event_id)
        self._tracking_inbox = list(resumed.tracking_inbox)
        self._notices.update(resumed.notices)
        self._past_point_of_no_return = True

    def _apply_tracking(self, event: TrackingEvent) -> None:
        if event.status.value == self._shipment.status and self._patched(SKIP_REPEATED_TRACKING_STATUS):
            # Another scan on the way changes nothing: the timeline keeps the carrier's changes only.
            return
        self._shipment.status = event.status.value
        if event.status == TrackingStatus.DELIVERED:
            self._state.needs_attention = None
            self._set_status(OrderStatus.DELIVERED, "delivered", actor="carrier", detail=event.tracking_number)
            self._notify("delivered", None)
        else:
            self._append_event(f"carrier: {event.status.value}", actor="carrier", detail=event.tracking_number)

    # ---- Changing the order before its invoice is issued (PATCH /orders/{id}). ----
    #
    # A change runs only while the process waits (for an operator, for stock, or before invoicing
    # once stock is allocated), one change at a time, and the process goes on only once it is done:
    # stock is never reserved or released by a change and by an allocation round at once.

    def _init_changes(self, order: OrderInput) -> None:
        # A change arriving before the process starts waits to learn whether the run takes changes.
        self._accepts_changes = None
        self._change_lock = asyncio.Lock()
        # The process waits where a change may act; a change is acting; changes accepted and not yet done.
        self._open_for_changes = False
        self._changing = False
        self._changes_waiting = 0
        self._invoicing = False
        # The highest line number the order ever had: numbers name reservations and are never reused.
        self._last_line_no = len(order.request.lines)
        # The reservation key that holds each line's stock.
        self._held: dict[int, LineKey] = {}
        # What a change asks of the process: an operator's review first, or a new allocation round.
        self._sent_to_review: ReviewOutcome | None = None
        self._reallocate = False

    @workflow.update(name=names.UPDATE_CHANGE)
    async def change(self, command: ChangeCommand) -> OrderState:
        self._changes_waiting += 1
        try:
            async with self._change_lock:
                while not (self._open_for_changes or self._why_not_changeable()):
                    await workflow.wait_condition(lambda: self._open_for_changes or bool(self._why_not_changeable()))
                self._refuse_unfit_change(command)
                self._changing = True
                try:
                    await self._apply_change(command)
                finally:
                    self._changing = False
        finally:
            self._changes_waiting -= 1
        return self._state

    @change.validator
    def _validate_change(self, command: ChangeCommand) -> None:
        self._refuse_unfit_change(command)

    def _why_not_changeable(self) -> str | None:
        if self._accepts_changes is False and not self._state.status.is_terminal:
            return "order was placed before orders could be changed"
        invoicing = self._invoicing or self._state.invoice is not None or self._past_point_of_no_return
        return changes.why_not_changeable(self._state.status, invoicing=invoicing, cancelling=self._cancel is not None)

    def _refuse_unfit_change(self, command: ChangeCommand) -> None:
        """Refuse from the order's state alone, so that a refused change leaves nothing in the history."""
        reason = self._why_not_changeable()
        if reason:
            raise ApplicationError(reason, type="ChangeRefused", non_retryable=True)
        revision = self._state.revision
        if command.expected_revision is not None and command.expected_revision != revision:
            raise ApplicationError(
                f"order is at revision {revision}, not {command.expected_revision}",
                revision,
                type="RevisionMismatch",
                non_retryable=True,
            )
        if changes.changes_nothing(
            self._state.lines, self._state.shipping_address, command.lines, command.shipping_address
        ):
            raise ApplicationError("the change asks for the order as it stands", type="EmptyChange", non_retryable=True)

    async def _open_to_changes(self, waiting: Any) -> Any:
        """Wait as `waiting` does, letting changes act meanwhile; go on only once none is acting."""
        self._open_for_changes = self._accepts_changes is True
        try:
            return await waiting
        finally:
            self._open_for_changes = False
            if self._changing:
                await workflow.wait_condition(lambda: not self._changing)

    async def _let_changes_in_before_invoicing(self) -> bool:
        """Let the changes accepted so far act, then close the door: the invoice is next. False when sent back."""
        if self._changes_waiting:
            await self._open_to_changes(workflow.wait_condition(lambda: self._changes_waiting == 0))
        if self._sent_to_review is not None or self._reallocate:
            self._reallocate = False
            # Stock and booking are let go while the order waits again, as when it was placed.
            await self._compensate()
            return False
        self._invoicing = True
        return True

    async def _review_changed_order(self, outcome: ReviewOutcome) -> None:
        self._sent_to_review = None
        self._operator_review = None
        self._state.review = outcome
        await self._manual_review(outcome)

    async def _apply_change(self, command: ChangeCommand) -> None:
        request = self._input.request
        new_lines = command.lines if command.lines is not None else self._order_lines()
        diff = changes.diff_lines(self._state.lines, new_lines, self._last_line_no)
        address = command.shipping_address or request.shipping_address
        address_changed = address != request.shipping_address
        changed = request.model_copy(update={"lines": list(new_lines), "shipping_address": address})
        revision = self._state.revision + 1
        status = self._state.status

        outcome: ReviewOutcome = await workflow.execute_local_activity_method(
            ReviewActivities.review_order,
            ReviewInput(order_id=self._state.order_id, request=changed),
            summary=f"Review change to revision {revision} (automatic rules)",
            **DB_STEP,
        )
        verdict = changes.after_review(outcome, status)
        if verdict == changes.ReviewVerdict.REFUSE:
            self._refuse_change(
                command, "rejected by the review rules: " + "; ".join(outcome.reasons), "ChangeRejected"
            )

        undo = Saga()
        shipment: Shipment | None = None
        stock: ReplaceLinesResult | None = None
        # Stock and booking are adjusted only where the order holds them and goes on to its invoice.
        adjusts = bool(self._held) and verdict == changes.ReviewVerdict.GO_ON
        try:
            if adjusts and self._state.shipment is not None:
                drafted = shipment = await self._redraft_booking(changed, revision)
                undo.register("cancel the new draft booking", lambda: self._cancel_booking(drafted))
            elif address_changed:
                await workflow.execute_local_activity_method(
                    CarrierActivities.check_address,
                    self._shipment_request(changed, revision),
                    summary="Carrier: check the new address",
                    **EXTERNAL_STEP,
                )
            if adjusts:
                stock = await self._replace_stock(diff, revision)
        except FailureError as error:
            await undo.compensate()
            cause = error.cause if isinstance(error, ActivityError) and error.cause else error
            self._refuse_change(command, str(cause), "ChangeRefused")
        if stock is not None and stock.short:
            await undo.compensate()
            detail = ", ".join(f"{line.sku} short by {line.shortage}" for line in stock.lines if line.shortage)
            if self._state.backorder_policy == BackorderPolicy.CANCEL:
                self._refuse_change(command, f"not enough stock: {detail}", "ChangeRefused")
            # Waiting for stock: the order takes the change and goes back to allocation, to be backordered.
            self._reallocate, shipment, stock = True, None, None

        old_shipment = self._state.shipment
        self._commit_change(changed, diff, revision, stock, shipment)
        await workflow.execute_local_activity_method(
            OrderRecordActivities.record_change,
            # The record keeps the timeline in rows of its own: the change carries none of it.
            RecordChangeInput(state=self._state.model_copy(update={"timeline": []})),
            summary=f"Record the order at revision {revision}",
            **DB_STEP,
        )
        detail = changes.describe(diff, address_changed, revision)
        self._append_event(
            "order changed", actor=command.actor, detail=f"{detail} ({command.note})" if command.note else detail
        )
        self._upsert_search_attributes()
        if shipment is not None and old_shipment is not None:
            try:
                await self._cancel_booking(old_shipment)
            except FailureError:
                self._state.needs_attention = f"draft booking {old_shipment.booking_id} replaced but not cancelled"
                self._append_event("flagged for an operator", detail=self._state.needs_attention)
        if verdict == changes.ReviewVerdict.SEND_TO_REVIEW:
            self._sent_to_review = outcome
        if status == OrderStatus.BACKORDERED:
            # A new allocation round with the lines as they now stand, rather than waiting for the old ones.
            self._restocked = True

    def _refuse_change(self, command: ChangeCommand, reason: str, kind: str) -> None:
        self._append_event("change refused", actor=command.actor, detail=reason)
        raise ApplicationError(f"change refused: {reason}", type=kind, non_retryable=True)

    def _releaser(self, line: LineState, key: LineKey) -> Callable[[], Awaitable[None]]:
        return lambda: self._release_line(line, key)

    def _order_lines(self) -> list[OrderLine]:
        return [
            OrderLine(sku=line.sku, quantity=line.quantity, unit_price=line.unit_price) for line in self._state.lines
        ]

    def _shipment_request(self, request: OrderRequest, revision: int) -> PrepareShipmentInput:
        return PrepareShipmentInput(
            order_id=self._state.order_id,
            address=request.shipping_address,
            lines=request.lines,
            currency=self._state.currency,
            revision=revision,
        )

    async def _redraft_booking(self, request: OrderRequest, revision: int) -> Shipment:
        """Check the address and quote again, then draft the booking that replaces the order's."""
        return await self._check_quote_and_draft(self._shipment_request(request, revision), f" for revision {revision}")

    async def _replace_stock(self, diff: changes.LineDiff, revision: int) -> ReplaceLinesResult:
        """Release what changed lines hold and reserve them anew, at once, under the revision's own keys."""
        moved = [change for change in diff.changes if change.moves_stock]
        round_ = changes.change_round(revision)
        request = ReplaceLinesInput(
            order_id=self._state.order_id,
            round=round_,
            release=[self._held[change.line_no] for change in moved if change.line_no in self._held],
            reserve=[
                ReserveLineInput(
                    key=LineKey(order_id=self._state.order_id, line_no=change.line_no, attempt=round_),
                    sku=change.sku,
                    quantity=change.after,
                )
                for change in moved
                if change.after
            ],
        )
        if not request.release and not request.reserve:
            return ReplaceLinesResult()
        result: ReplaceLinesResult = await self._step_with_effect(
            InventoryActivities.replace_lines,
            request,
            f"Stock for revision {revision}: " + "; ".join(change.describe() for change in moved),
            DB_STEP,
        )
        return result

    def _commit_change(
        self,
        request: OrderRequest,
        diff: changes.LineDiff,
        revision: int,
        stock: ReplaceLinesResult | None,
        shipment: Shipment | None,
    ) -> None:
        """The order as the change leaves it; the undo steps of its stock and booking follow it."""
        current = {line.line_no: line for line in self._state.lines}
        lines: list[LineState] = []
        for wanted in diff.lines:
            line = current.get(wanted.line_no)
            if line is None:
                line = wanted
            else:
                line.quantity, line.unit_price = wanted.quantity, wanted.unit_price
            lines.append(line)
        reserved = {result.line_no: result for result in (stock.lines if stock else [])}
        round_ = changes.change_round(revision)
        for change in diff.changes:
            if stock is None or not change.moves_stock:
                continue
            self._held.pop(change.line_no, None)
            result = reserved.get(change.line_no)
            kept = next((line for line in lines if line.line_no == change.line_no), None)
            if kept is None or result is None:
                self._saga.replace(f"release line {change.line_no}", None)
                continue
            key = LineKey(order_id=self._state.order_id, line_no=change.line_no, attempt=round_)
            kept.allocations = result.allocations
            self._held[change.line_no] = key
            self._saga.replace(f"release line {change.line_no}", self._releaser(kept, key))
        if shipment is not None:
            self._state.shipment = shipment
            self._saga.replace("cancel carrier booking", lambda: self._cancel_booking(shipment))
        self._input = self._input.model_copy(update={"request": request})
        self._state.lines = lines
        self._state.total = request.total
        self._state.shipping_address = request.shipping_address
        self._state.revision = revision
        self._last_line_no = max([self._last_line_no, *(line.line_no for line in lines)])

    # ---- Undoing: cancellation, failure, compensation. ----

    async def _compensate(self) -> None:
        for description in await self._saga.compensate():
            self._append_event("compensation failed", detail=description)
            self._state.needs_attention = f"compensation failed: {description}"

    async def _release_held_stock(self) -> None:
        # The saga undoes what this run knows it did. A worker that died before its workflow task was
        # recorded may have reserved stock this run never learnt of: when the order was cancelled before
        # the next worker reserved again, only the database knows, so an order that ends gives back by order id.
        await workflow.execute_local_activity_method(
            InventoryActivities.release_order,
            ReleaseOrderInput(order_id=self._state.order_id),
            summary="Release any stock still held",
            **DB_STEP,
        )

    async def _stop_if_cancelled(self) -> None:
        if self._cancel is not None:
            await self._close(
                OrderStatus.CANCELLED, "order cancelled", actor=self._cancel.actor, detail=self._cancel.reason
            )

    def _cancel_from_temporal(self) -> None:
        """A cancellation requested from Temporal: as the API's, or refused past the point of no return."""
        refusal = self._why_not_cancellable()
        if refusal is None:
            self._request_cancel(CancelCommand(reason=TEMPORAL_CANCEL_REASON, actor=TEMPORAL_ACTOR))
        elif not self._state.status.is_terminal and self._cancel is None:
            self._append_event(
                "cancellation refused", actor=TEMPORAL_ACTOR, detail=f"{TEMPORAL_CANCEL_REASON}: {refusal}"
            )
        else:
            workflow.logger.info("cancellation from Temporal ignored: %s", refusal or "the order is being cancelled")

    def _request_cancel(self, command: CancelCommand) -> None:
        if self._cancel is None:
            self._cancel = command
            self._append_event("cancellation requested", actor=command.actor, detail=command.reason)
            self._state.cancellation_reason = command.reason

    def _why_not_cancellable(self) -> str | None:
        status = self._state.status
        if status.is_terminal:
            return f"order is {status.value}"
        if self._past_point_of_no_return:
            return "order is handed to the carrier: cancellation is no longer possible, start a return instead"
        return None

    async def _close(
        self, status: OrderStatus, event: str, *, actor: str = "system", detail: str | None = None
    ) -> None:
        """Undo what was done, record the final status and leave the process."""
        await self._compensate()
        if self._patched(RELEASE_HELD_STOCK_ON_CLOSE):
            await self._release_held_stock()
        if self._short_skus and self._decides_before_effects:
            # A lost workflow task may have reported a shortage this run never reached: purchasing
            # must not keep demand, ahead of other orders, for an order that has ended.
            await self._withdraw_from_replenishment(self._short_skus)
            self._short_skus.clear()
        self._set_status(status, event, actor=actor, detail=detail)
        if status == OrderStatus.CANCELLED:
            self._notify("cancelled", detail)
        await self._finish_background_steps()
        raise ProcessEnded()

    async def _fail(self, error: BaseException) -> None:
        cause = error.cause if isinstance(error, ActivityError) and error.cause else error
        await self._close(OrderStatus.FAILED, "order failed", detail=str(cause))

    # ---- Status, timeline, search attributes. ----

    def _set_status(
        self, status: OrderStatus, event: str, *, actor: str = "system", detail: str | None = None, write: bool = True
    ) -> StatusChangeInput:
        self._state.status = status
        if not self._merges_steps:
            self._upsert_search_attributes()
        elif status != OrderStatus.RECEIVED:
            # The order was started with the attributes of a received order (api/order_client.py);
            # only its status changes here (a change of its lines upserts them all).
            workflow.upsert_search_attributes([names.SA_ORDER_STATUS.value_set(status.value)])
        workflow.set_current_details(f"**{status.value}**: {event}")
        return self._append_event(event, actor=actor, detail=detail, write=write)

    def _append_event(
        self, event: str, *, actor: str = "system", detail: str | None = None, write: bool = True
    ) -> StatusChangeInput:
        """Add a timeline entry and write it, with the facts of the order as it now stands, to the database.

        With `write` false the entry's write is returned for a step of the caller's to make.
        """
        now = workflow.now()
        self._seq += 1
        entry = TimelineEvent(seq=self._seq, at=now, status=self._state.status, actor=actor, event=event, detail=detail)
        timeline = self._state.timeline
        timeline.append(entry)
        # The database keeps the whole timeline; the order keeps its newest entries.
        del timeline[:-KEPT_TIMELINE_ENTRIES]
        self._state.updated_at = now
        change = StatusChangeInput.of(self._state, entry, version=workflow.info().get_current_history_length())
        if write:
            # Writes are ordered by (version, seq) in the database, so they need not hold up the process.
            self._in_background(
                workflow.execute_local_activity_method(
                    OrderRecordActivities.record_status, change, summary=f"Record: {event}", **DB_STEP
                )
            )
        return change

    def _in_background(self, step: Any) -> None:
        # Steps that have finished are let go, so an order that lives long holds only those under way.
        self._background = [task for task in self._background if not task.done()]
        self._background.append(asyncio.create_task(step))

    async def _finish_background_steps(self) -> None:
        await asyncio.gather(*self._background, return_exceptions=True)

    def _upsert_search_attributes(self) -> None:
        workflow.upsert_search_attributes(
            [
                names.SA_ORDER_STATUS.value_set(self._state.status.value),
                names.SA_CUSTOMER_ID.value_set(self._state.customer.id),
                names.SA_ORDER_TOTAL.value_set(float(self._state.total)),
                names.SA_SKUS.value_set(self._input.request.skus),
            ]
        )

    # ---- Small helpers. ----

    @property
    def _shipment(self) -> Shipment:
        assert self._state.shipment is not None, "shipping is prepared before settlement"
        return self._state.shipment

    def _refuse_unless_waiting_for_review(self) -> None:
        if self._state.status != OrderStatus.PENDING_REVIEW or self._operator_review is not None:
            raise ApplicationError(
                f"order is {self._state.status.value}, not waiting for review", type="ReviewRefused", non_retryable=True
            )

    async def _decide(self, decision: ReviewDecision, command: ReviewCommand) -> OrderState:
        self._operator_review = (decision, command)
        await workflow.wait_condition(lambda: self._state.status != OrderStatus.PENDING_REVIEW)
        return self._state

    async def _step_with_effect(self, activity: Any, arg: Any, summary: str, options: StepOptions) -> Any:
        """Run a step whose effect compensation may have to undo, as an activity of its own.

        A local activity runs inside the workflow task that decided on it and is written to history
        only when that task completes. If the task is lost (its worker killed, the server restarted,
        the task timed out), the step's effect stays in the outside system, and the task that replaces
        it may see a cancellation that arrived meanwhile and take a path that never undoes it. An
        activity runs only once the task that scheduled it is recorded, so every effect is in history
        before the order next looks at cancellation. Steps with nothing to undo stay local.
        """
        if self._decides_before_effects:
            return await workflow.execute_activity_method(activity, arg, summary=summary, **options)
        return await workflow.execute_local_activity_method(activity, arg, summary=summary, **options)

    def _patched(self, patch_id: str) -> bool:
        """Whether a patch older than MERGED_STEPS is in effect for this run.

        A run started with MERGED_STEPS has them all, and records no marker for any: a patch first asked
        for right after a local activity may be recorded in the next workflow task, yet asked for in the
        earlier one when the history is replayed (its marker is then not found, and the replay fails).
        Older runs ask as they always did. Fewer markers also make a shorter history.
        """
        return self._merges_steps or workflow.patched(patch_id)

    @property
    def _decides_before_effects(self) -> bool:
        return self._patched(DECIDE_BEFORE_EFFECTS)

    @property
    def _keeps_place_until_allocated(self) -> bool:
        # Only with DECIDE_BEFORE_EFFECTS, whose close withdraws the SKUs a woken order still waits for.
        return self._decides_before_effects and self._patched(KEEP_PLACE_UNTIL_ALLOCATED)

    async def _wait(self, condition: Callable[[], bool], timeout: timedelta | None, summary: str) -> bool:
        try:
            await workflow.wait_condition(condition, timeout=timeout, timeout_summary=summary)
        except TimeoutError:
            return False
        return True

    def _notify(self, event: str, detail: str | None) -> None:
        self._best_effort(CustomerActivities.notify_customer, self._notice(event, detail), f"Notify customer: {event}")

    def _notice(self, event: str, detail: str | None) -> NotificationInput:
        # The n-th notice of a kind is that of the n-th round: an order backordered again, after a
        # restock that fell short, is told again (an order's allocation rounds all end short but its last).
        self._notices[event] += 1
        return NotificationInput(
            order_id=self._state.order_id,
            customer_id=self._state.customer.id,
            event=event,
            detail=detail,
            round=self._notices[event],
        )

    def _best_effort(self, activity: Any, arg: Any, summary: str) -> None:
        async def attempt() -> None:
            try:
                await workflow.execute_local_activity_method(activity, arg, summary=summary, **BEST_EFFORT_STEP)
            except FailureError:
                workflow.logger.warning("best-effort step failed and was left: %s", summary)

        self._in_background(attempt())
