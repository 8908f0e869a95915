"""In-memory stand-ins for every activity, registered under the real activity names.

Workflow tests run the real workflows on the time-skipping server against these,
so they can count each step and each compensation and make any step fail.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.customers import notification_key
from activities.http import all_of
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
    PurchasingNotice,
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
from models.names import REPLENISHMENT_WORKFLOW, SIGNAL_SHORTAGE, replenishment_workflow_id
from models.order import Allocation, Invoice, ReviewDecision, ReviewOutcome, Shipment
from models.purchasing import (
    ReplenishmentInput,
    ReportShortageInput,
    ShortageRecordInput,
    ShortageReport,
    ShortageResolvedInput,
)
from models.records import RecordChangeInput, RecordOrderInput, ReviewInput, StatusChangeInput


class FakeSystems:
    def __init__(self, stock: dict[str, int] | None = None) -> None:
        self.stock: dict[str, int] = dict(stock or {})
        self.held: dict[tuple[str, int, int], tuple[str, int]] = {}
        self.calls: Counter[str] = Counter()
        self.statuses: list[str] = []
        self.review = ReviewOutcome(decision=ReviewDecision.APPROVED)
        self.fail: dict[str, ApplicationError] = {}
        # Steps that wait until the test lets them go, to act while they are in flight.
        self.gates: dict[str, asyncio.Event] = {}
        self.reported: list[ReportShortageInput] = []
        self.notifications: list[str] = []
        # The receiver's view: one notice per idempotency key, as the real step would send it.
        self.notices: dict[str, str] = {}
        # Size in bytes of each status write's payload, as JSON, and the timeline entries written.
        self.status_bytes: list[int] = []
        self.status_seqs: set[int] = set()
        # Shortage reports go to the real replenishment workflow (signal-with-start), as the real activity does.
        self.forward_shortages = False
        # Open shortages as recorded: (sku, order_id) -> the record.
        self.open_shortages: dict[tuple[str, str], ShortageRecordInput] = {}
        self.delivered_notices: list[PurchasingNotice] = []
        # The carrier's view: every draft booking by id, and those cancelled.
        self.bookings: dict[str, DraftBookingInput] = {}
        self.cancelled_bookings: set[str] = set()
        # The order record as each accepted change wrote it.
        self.recorded_changes: list[RecordChangeInput] = []
        # The review's answer to a change (review_order's input with more than one revision), when not `review`.
        self.change_review: ReviewOutcome | None = None

    def activities(self) -> list[object]:
        return [
            self.record_order,
            self.record_status,
            self.review_order,
            self.record_and_review,
            self.reserve_line,
            self.release_line,
            self.release_order,
            self.replace_lines,
            self.record_change,
            self.commit_order,
            self.confirm_and_commit,
            self.available_stock,
            self.check_address,
            self.quote_rate,
            self.check_address_and_quote,
            self.draft_booking,
            self.confirm_booking,
            self.cancel_booking,
            self.create_invoice,
            self.void_invoice,
            self.upsert_customer,
            self.record_purchase,
            self.notify_customer,
            self.record_purchase_and_notify,
            self.report_shortage,
            self.record_shortage,
            self.resolve_shortages,
            self.notify_purchasing,
        ]

    async def _step(self, name: str) -> None:
        self.calls[name] += 1
        gate = self.gates.get(name)
        if gate is not None:
            await gate.wait()
        if name in self.fail:
            raise self.fail[name]

    @activity.defn(name="record_order")
    async def record_order(self, request: RecordOrderInput) -> None:
        await self._step("record_order")
        if request.first_entry is not None:
            self._write_status(request.first_entry)

    @activity.defn(name="record_status")
    async def record_status(self, change: StatusChangeInput) -> None:
        self.calls["record_status"] += 1
        self._write_status(change)

    def _write_status(self, change: StatusChangeInput) -> None:
        self.statuses.append(change.event.status.value)
        self.status_bytes.append(len(change.model_dump_json()))
        self.status_seqs.add(change.event.seq)

    @activity.defn(name="review_order")
    async def review_order(self, request: ReviewInput) -> ReviewOutcome:
        await self._step("review_order")
        if self.change_review is not None and self.calls["review_order"] > 1:
            return self.change_review
        return self.review

    @activity.defn(name="record_and_review")
    async def record_and_review(self, request: RecordOrderInput) -> ReviewOutcome:
        await self.record_order(request)
        return await self.review_order(ReviewInput(order_id=request.order_id, request=request.request))

    @activity.defn(name="record_change")
    async def record_change(self, change: RecordChangeInput) -> None:
        await self._step("record_change")
        if all(done.state.revision != change.state.revision for done in self.recorded_changes):
            self.recorded_changes.append(change)

    @activity.defn(name="reserve_line")
    async def reserve_line(self, request: ReserveLineInput) -> ReserveLineResult:
        await self._step("reserve_line")
        # A gate of one order's reservations, e.g. to let another order take the stock first.
        order_gate = self.gates.get(f"reserve_line:{request.key.order_id}")
        if order_gate is not None:
            await order_gate.wait()
        key = (request.key.order_id, request.key.line_no, request.key.attempt)
        if key not in self.held:
            available = self.stock.get(request.sku, 0)
            if available < request.quantity:
                return ReserveLineResult(
                    line_no=request.key.line_no, sku=request.sku, shortage=request.quantity - available
                )
            self.stock[request.sku] = available - request.quantity
            self.held[key] = (request.sku, request.quantity)
        sku, quantity = self.held[key]
        return ReserveLineResult(
            line_no=request.key.line_no, sku=sku, allocations=[Allocation(warehouse="WH-1", quantity=quantity)]
        )

    @activity.defn(name="release_line")
    async def release_line(self, key: LineKey) -> None:
        await self._step("release_line")
        held = self.held.pop((key.order_id, key.line_no, key.attempt), None)
        if held:
            self.stock[held[0]] = self.stock.get(held[0], 0) + held[1]

    @activity.defn(name="release_order")
    async def release_order(self, request: ReleaseOrderInput) -> None:
        await self._step("release_order")
        for key in [key for key in self.held if key[0] == request.order_id]:
            sku, quantity = self.held.pop(key)
            self.stock[sku] = self.stock.get(sku, 0) + quantity

    @activity.defn(name="replace_lines")
    async def replace_lines(self, request: ReplaceLinesInput) -> ReplaceLinesResult:
        """All at once, or nothing when a line is short, as the real step."""
        await self._step("replace_lines")
        keys = {(line.key.order_id, line.key.line_no, line.key.attempt) for line in request.reserve}
        if keys & set(self.held):
            return ReplaceLinesResult(
                lines=[
                    ReserveLineResult(
                        line_no=line.key.line_no,
                        sku=line.sku,
                        allocations=[Allocation(warehouse="WH-1", quantity=line.quantity)],
                    )
                    for line in request.reserve
                ]
            )
        stock = dict(self.stock)
        held = dict(self.held)
        for key in request.release:
            released = held.pop((key.order_id, key.line_no, key.attempt), None)
            if released:
                stock[released[0]] = stock.get(released[0], 0) + released[1]
        results = []
        for line in request.reserve:
            if stock.get(line.sku, 0) < line.quantity:
                results.append(ReserveLineResult(line_no=line.key.line_no, sku=line.sku, shortage=line.quantity))
                continue
            stock[line.sku] -= line.quantity
            held[(line.key.order_id, line.key.line_no, line.key.attempt)] = (line.sku, line.quantity)
            results.append(
                ReserveLineResult(
                    line_no=line.key.line_no,
                    sku=line.sku,
                    allocations=[Allocation(warehouse="WH-1", quantity=line.quantity)],
                )
            )
        if any(result.shortage for result in results):
            return ReplaceLinesResult(
                lines=[
                    result if result.shortage else result.model_copy(update={"allocations": []}) for result in results
                ]
            )
        self.stock, self.held = stock, held
        return ReplaceLinesResult(lines=results)

    @activity.defn(name="commit_order")
    async def commit_order(self, request: CommitOrderInput) -> None:
        await self._step("commit_order")

    @activity.defn(name="available_stock")
    async def available_stock(self, sku: str) -> int:
        self.calls["available_stock"] += 1
        return self.stock.get(sku, 0)

    @activity.defn(name="check_address")
    async def check_address(self, request: PrepareShipmentInput) -> None:
        await self._step("check_address")

    @activity.defn(name="quote_rate")
    async def quote_rate(self, request: PrepareShipmentInput) -> RateQuote:
        await self._step("quote_rate")
        return RateQuote(service="standard", rate=Decimal("5.00"), currency=request.currency)

    # The merged steps (workflows.order.MERGED_STEPS) run the fakes of the steps they merge, as the service's do.
    @activity.defn(name="check_address_and_quote")
    async def check_address_and_quote(self, request: PrepareShipmentInput) -> RateQuote:
        _, quote = await all_of(self.check_address(request), self.quote_rate(request))
        assert isinstance(quote, RateQuote)
        return quote

    @activity.defn(name="draft_booking")
    async def draft_booking(self, request: DraftBookingInput) -> Shipment:
        await self._step("draft_booking")
        order_id, attempt, revision = request.shipment.order_id, request.shipment.attempt, request.shipment.revision
        booking_id = f"B-{order_id}-{attempt}" if revision is None else f"B-{order_id}-r{revision}"
        self.bookings[booking_id] = request
        return Shipment(carrier="test-carrier", booking_id=booking_id, rate=request.quote.rate)

    @activity.defn(name="confirm_booking")
    async def confirm_booking(self, ref: BookingRef) -> ConfirmedBooking:
        await self._step("confirm_booking")
        return ConfirmedBooking(booking_id=ref.booking_id, tracking_number=f"TRK-{ref.order_id}")

    @activity.defn(name="confirm_and_commit")
    async def confirm_and_commit(self, ref: BookingRef) -> ConfirmedBooking:
        confirmed = await self.confirm_booking(ref)
        await self.commit_order(CommitOrderInput(order_id=ref.order_id))
        return confirmed

    @activity.defn(name="cancel_booking")
    async def cancel_booking(self, ref: BookingRef) -> None:
        await self._step("cancel_booking")
        self.cancelled_bookings.add(ref.booking_id)

    @activity.defn(name="create_invoice")
    async def create_invoice(self, request: InvoiceInput) -> Invoice:
        await self._step("create_invoice")
        subtotal = sum((line.unit_price * line.quantity for line in request.lines), Decimal("0")) + request.shipping
        tax = (subtotal * Decimal("0.20")).quantize(Decimal("0.01"))
        return Invoice(
            invoice_id=f"INV-{request.order_id}", subtotal=subtotal, tax=tax, total=subtotal + tax, currency="EUR"
        )

    @activity.defn(name="void_invoice")
    async def void_invoice(self, ref: InvoiceRef) -> None:
        await self._step("void_invoice")

    @activity.defn(name="upsert_customer")
    async def upsert_customer(self, request: CustomerUpsertInput) -> None:
        await self._step("upsert_customer")

    @activity.defn(name="record_purchase")
    async def record_purchase(self, request: PurchaseInput) -> None:
        await self._step("record_purchase")

    @activity.defn(name="notify_customer")
    async def notify_customer(self, request: NotificationInput) -> None:
        await self._step("notify_customer")
        self.notifications.append(request.event)
        self.notices.setdefault(notification_key(request), request.event)

    @activity.defn(name="record_purchase_and_notify")
    async def record_purchase_and_notify(self, notice: ShippedNotice) -> None:
        await all_of(self.record_purchase(notice.purchase), self.notify_customer(notice.notification))

    @activity.defn(name="report_shortage")
    async def report_shortage(self, request: ReportShortageInput) -> None:
        await self._step("report_shortage")
        self.reported.append(request)
        if self.forward_shortages:
            await activity.client().start_workflow(
                REPLENISHMENT_WORKFLOW,
                ReplenishmentInput(sku=request.sku),
                id=replenishment_workflow_id(request.sku),
                task_queue=activity.info().task_queue,
                start_signal=SIGNAL_SHORTAGE,
                start_signal_args=[ShortageReport(**request.model_dump(exclude={"sku"}))],
            )

    @activity.defn(name="record_shortage")
    async def record_shortage(self, request: ShortageRecordInput) -> None:
        await self._step("record_shortage")
        self.open_shortages[(request.sku, request.order_id)] = request

    @activity.defn(name="resolve_shortages")
    async def resolve_shortages(self, request: ShortageResolvedInput) -> None:
        await self._step("resolve_shortages")
        for order_id in request.order_ids:
            self.open_shortages.pop((request.sku, order_id), None)

    @activity.defn(name="notify_purchasing")
    async def notify_purchasing(self, notice: PurchasingNotice) -> None:
        await self._step("notify_purchasing")
        self.delivered_notices.append(notice)


def refusal(kind: str) -> ApplicationError:
    return ApplicationError(f"{kind} (test)", type=kind, non_retryable=True)
