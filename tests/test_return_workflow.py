"""The return workflow's behaviour on the time-skipping server, with its outside steps faked and counted,
and the rules of returns as pure functions."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain import returns as return_rules
from models import names
from models.returns import (
    CancelReturnCommand,
    Condition,
    InvoiceShare,
    Label,
    LabelInput,
    ReceiptLine,
    ReceiveCommand,
    ReceiveGoodsInput,
    RecordReturnInput,
    Refund,
    RefundInput,
    ReturnInput,
    ReturnLine,
    ReturnReason,
    ReturnState,
    ReturnStatus,
    ReturnTrackingEvent,
    ReviewReturnCommand,
    VoidLabelInput,
)
from workflows.returns import ReturnWorkflow

INVOICE = InvoiceShare(
    invoice_id="INV-1", subtotal=Decimal("45.00"), tax=Decimal("9.00"), total=Decimal("54.00"), currency="EUR"
)


class FakeReturnSystems:
    """The return's outside steps in memory: carrier labels, the warehouse's stock and write-offs, finance."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.recorded: list[str] = []
        self.labels: dict[str, str] = {}
        self.restocked: Counter[str] = Counter()
        self.written_off: Counter[str] = Counter()
        self.receipts: set[tuple[str, int]] = set()
        self.refunds: dict[str, Refund] = {}
        self.refund_keys: list[str] = []
        # Refund calls failing as an outage before one goes through, or refused outright.
        self.refund_outages = 0
        self.refuse_refund: ApplicationError | None = None

    def activities(self) -> list[object]:
        return [
            self.record_return,
            self.issue_return_label,
            self.void_return_label,
            self.receive_return_goods,
            self.refund_return,
        ]

    @activity.defn(name="record_return")
    async def record_return(self, request: RecordReturnInput) -> None:
        self.recorded.append(request.state.status.value)

    @activity.defn(name="issue_return_label")
    async def issue_return_label(self, request: LabelInput) -> Label:
        self.calls["issue_return_label"] += 1
        self.labels[request.return_id] = "issued"
        return Label(label_id=f"L-{request.return_id}", carrier="test", tracking_number=f"RT-{request.return_id}")

    @activity.defn(name="void_return_label")
    async def void_return_label(self, request: VoidLabelInput) -> None:
        self.calls["void_return_label"] += 1
        self.labels[request.return_id] = "void"

    @activity.defn(name="receive_return_goods")
    async def receive_return_goods(self, request: ReceiveGoodsInput) -> None:
        self.calls["receive_return_goods"] += 1
        if (request.return_id, request.receipt_no) in self.receipts:
            return
        self.receipts.add((request.return_id, request.receipt_no))
        for line in request.lines:
            target = self.restocked if line.condition == Condition.RESELLABLE else self.written_off
            target[line.sku] += line.quantity

    @activity.defn(name="refund_return")
    async def refund_return(self, request: RefundInput) -> Refund:
        self.calls["refund_return"] += 1
        key = f"{request.return_id}:refund:{request.attempt}"
        self.refund_keys.append(key)
        if self.refund_outages > 0:
            self.refund_outages -= 1
            raise ApplicationError("finance answered 503", type="ProviderUnavailable")
        if self.refuse_refund is not None:
            raise self.refuse_refund
        refund = self.refunds.setdefault(
            key,
            Refund(refund_id=f"RF-{len(self.refunds) + 1}", amount=request.amount, currency="EUR", credit_note="CN-1"),
        )
        return refund


def return_input(threshold: str = "1000.00", reason: ReturnReason = ReturnReason.DAMAGED, **lines: int) -> ReturnInput:
    return_id = str(uuid.uuid4())
    wanted = lines or {"MUG-1": 2, "TEE-2": 1}
    return ReturnInput(
        return_id=return_id,
        order_id="o-1",
        customer_id="C-1",
        lines=[
            ReturnLine(line_no=no, sku=sku, quantity=quantity, reason=reason, unit_price=Decimal("15.00"))
            for no, (sku, quantity) in enumerate(wanted.items(), start=1)
        ],
        invoice=INVOICE,
        review_threshold=Decimal(threshold),
        shipping_window=timedelta(days=30),
        requested_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


Handle = WorkflowHandle[ReturnWorkflow, ReturnState]


class Returns:
    def __init__(self, env: WorkflowEnvironment, task_queue: str, fakes: FakeReturnSystems) -> None:
        self.env = env
        self.task_queue = task_queue
        self.fakes = fakes
        self.started: list[Handle] = []

    async def start(self, request: ReturnInput | None = None) -> Handle:
        request = request or return_input()
        handle = await self.env.client.start_workflow(
            ReturnWorkflow.run,
            request,
            id=names.return_workflow_id(request.return_id),
            task_queue=self.task_queue,
        )
        self.started.append(handle)
        return handle

    async def stop_leftovers(self) -> None:
        """Returns a test leaves running would hold up time skipping for the next tests once their worker is gone."""
        for handle in self.started:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test finished")

    async def until(self, handle: Handle, status: ReturnStatus) -> ReturnState:
        for _ in range(500):
            state = await handle.query(ReturnWorkflow.status)
            if state.status == status:
                return state
            if state.status.is_terminal:
                raise AssertionError(f"return ended {state.status}, not {status}")
            await asyncio.sleep(0.02)
        raise AssertionError(f"return never reached {status}")

    async def refunding(self) -> Handle:
        """A return whose goods are all in and whose refund finance keeps failing, being tried now."""
        self.fakes.refund_outages = 1_000
        handle = await self.start()
        await self.until(handle, ReturnStatus.LABEL_ISSUED)
        await self.receive(handle, ("MUG-1", 2, Condition.RESELLABLE), ("TEE-2", 1, Condition.RESELLABLE))
        for _ in range(500):
            if self.fakes.calls["refund_return"]:
                break
            await asyncio.sleep(0.02)
        return handle

    async def receive(self, handle: Handle, *lines: tuple[str, int, Condition], warehouse: str = "AMS") -> ReturnState:
        command = ReceiveCommand(
            warehouse=warehouse,
            lines=[ReceiptLine(sku=sku, quantity=quantity, condition=condition) for sku, quantity, condition in lines],
        )
        return await handle.execute_update(ReturnWorkflow.receive, command)


@pytest.fixture
async def returns(time_skipping_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Returns]:
    fakes = FakeReturnSystems()
    async with Worker(
        time_skipping_env.client, task_queue=task_queue, workflows=[ReturnWorkflow], activities=fakes.activities()
    ):
        running = Returns(time_skipping_env, task_queue, fakes)
        yield running
        await running.stop_leftovers()


RESELLABLE, DAMAGED = Condition.RESELLABLE, Condition.DAMAGED


async def test_a_return_is_approved_labelled_received_and_refunded(returns: Returns) -> None:
    handle = await returns.start()
    state = await returns.until(handle, ReturnStatus.LABEL_ISSUED)
    assert state.label is not None and state.label.tracking_number.startswith("RT-")

    await handle.signal(
        ReturnWorkflow.tracking_event,
        ReturnTrackingEvent(
            event_id="e-1", tracking_number=state.label.tracking_number, status="in_transit", at=datetime.now(UTC)
        ),
    )
    await returns.until(handle, ReturnStatus.IN_TRANSIT)
    await returns.receive(handle, ("MUG-1", 2, RESELLABLE), ("TEE-2", 1, RESELLABLE))
    final = await handle.result()

    assert final.status == ReturnStatus.CLOSED
    assert final.refund is not None and final.refund.amount == Decimal("54.00")
    assert returns.fakes.restocked == {"MUG-1": 2, "TEE-2": 1}
    assert returns.fakes.refund_keys == [f"{final.return_id}:refund:1"]
    statuses = ["requested", "approved", "label_issued", "in_transit", "received", "refunded", "closed"]
    assert [status for i, status in enumerate(returns.fakes.recorded) if status not in returns.fakes.recorded[:i]] == (
        statuses
    )


async def test_a_return_above_the_threshold_waits_for_an_operator_who_approves(returns: Returns) -> None:
    handle = await returns.start(return_input(threshold="10.00"))
    await returns.until(handle, ReturnStatus.PENDING_REVIEW)

    state = await handle.execute_update(ReturnWorkflow.review, ReviewReturnCommand(approve=True, note="fine"))

    assert state.status in (ReturnStatus.APPROVED, ReturnStatus.LABEL_ISSUED)
    assert state.reviewed_by == "operator" and state.review_note == "fine"
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)


async def test_reason_other_goes_to_review_and_a_decline_ends_the_return_without_a_label(returns: Returns) -> None:
    handle = await returns.start(return_input(reason=ReturnReason.OTHER))
    await returns.until(handle, ReturnStatus.PENDING_REVIEW)

    await handle.execute_update(ReturnWorkflow.review, ReviewReturnCommand(approve=False, note="used"))
    final = await handle.result()

    assert final.status == ReturnStatus.DECLINED
    assert returns.fakes.calls["issue_return_label"] == 0


async def test_a_review_is_refused_when_the_return_is_not_waiting_for_one(returns: Returns) -> None:
    handle = await returns.start()
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(ReturnWorkflow.review, ReviewReturnCommand(approve=True))

    assert "not waiting for review" in str(refused.value.cause)


async def test_a_partial_receipt_keeps_the_return_open_for_the_rest(returns: Returns) -> None:
    handle = await returns.start()
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)

    first = await returns.receive(handle, ("MUG-1", 1, RESELLABLE))
    assert first.status == ReturnStatus.RECEIVED
    assert returns.fakes.calls["refund_return"] == 0
    await returns.receive(handle, ("MUG-1", 1, RESELLABLE), ("TEE-2", 1, RESELLABLE))
    final = await handle.result()

    assert final.status == ReturnStatus.CLOSED
    assert [receipt.receipt_no for receipt in final.receipts] == [1, 2]
    assert returns.fakes.restocked == {"MUG-1": 2, "TEE-2": 1}
    assert returns.fakes.calls["refund_return"] == 1


async def test_a_receipt_of_more_than_is_expected_is_refused_and_books_nothing(returns: Returns) -> None:
    handle = await returns.start()
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await returns.receive(handle, ("MUG-1", 3, RESELLABLE))

    assert "line MUG-1" in str(refused.value.cause)
    assert returns.fakes.calls["receive_return_goods"] == 0


async def test_damaged_units_are_written_off_and_not_restocked_but_still_refunded(returns: Returns) -> None:
    handle = await returns.start()
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)

    await returns.receive(handle, ("MUG-1", 2, DAMAGED), ("TEE-2", 1, RESELLABLE))
    final = await handle.result()

    assert returns.fakes.written_off == {"MUG-1": 2}
    assert returns.fakes.restocked == {"TEE-2": 1}
    assert [(line.sku, line.resellable, line.damaged) for line in final.lines] == [("MUG-1", 0, 2), ("TEE-2", 1, 0)]
    assert final.refund is not None and final.refund.amount == Decimal("54.00")


async def test_no_goods_within_the_shipping_time_expires_the_return_and_voids_the_label(returns: Returns) -> None:
    handle = await returns.start()
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)

    final = await handle.result()

    assert final.status == ReturnStatus.EXPIRED
    assert returns.fakes.labels[final.return_id] == "void"
    assert returns.fakes.calls["refund_return"] == 0


async def test_the_customer_cancels_before_the_goods_arrive_and_the_label_is_voided(returns: Returns) -> None:
    handle = await returns.start()
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)

    state = await handle.execute_update(ReturnWorkflow.cancel, CancelReturnCommand(reason="kept it"))

    assert state.status == ReturnStatus.CANCELLED
    assert returns.fakes.labels[state.return_id] == "void"


async def test_a_return_workflow_cancelled_from_outside_voids_its_label_and_records_the_cancellation(
    returns: Returns,
) -> None:
    handle = await returns.start()
    state = await returns.until(handle, ReturnStatus.LABEL_ISSUED)

    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()

    assert returns.fakes.labels[state.return_id] == "void"
    assert returns.fakes.recorded[-1] == "cancelled"


async def test_a_return_workflow_cancelled_from_outside_while_refunding_stops_and_asks_for_a_refund_by_hand(
    returns: Returns,
) -> None:
    handle = await returns.refunding()

    await handle.cancel()

    with pytest.raises(WorkflowFailureError):
        await handle.result()
    state = await handle.query(ReturnWorkflow.status)
    assert state.needs_attention == "return workflow cancelled after the goods were received: refund by hand"
    assert state.refund is None and returns.fakes.restocked == {"MUG-1": 2, "TEE-2": 1}


async def test_a_cancel_after_goods_were_received_is_refused(returns: Returns) -> None:
    handle = await returns.start()
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)
    await returns.receive(handle, ("MUG-1", 1, RESELLABLE))

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(ReturnWorkflow.cancel, CancelReturnCommand(reason="too late"))

    assert "only before goods are received" in str(refused.value.cause)


async def test_a_cancel_after_the_carrier_delivered_the_parcel_to_the_warehouse_is_refused(returns: Returns) -> None:
    handle = await returns.start()
    state = await returns.until(handle, ReturnStatus.LABEL_ISSUED)
    assert state.label is not None
    await handle.signal(
        ReturnWorkflow.tracking_event,
        ReturnTrackingEvent(
            event_id="e-9", tracking_number=state.label.tracking_number, status="delivered", at=datetime.now(UTC)
        ),
    )

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(ReturnWorkflow.cancel, CancelReturnCommand(reason="changed my mind"))

    assert "arrived at the warehouse" in str(refused.value.cause)
    assert returns.fakes.labels[state.return_id] == "issued"


async def test_a_refund_failing_for_a_while_is_retried_with_the_same_key_until_it_goes_through(
    returns: Returns,
) -> None:
    returns.fakes.refund_outages = 3
    handle = await returns.start()
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)

    await returns.receive(handle, ("MUG-1", 2, RESELLABLE), ("TEE-2", 1, RESELLABLE))
    final = await handle.result()

    assert final.status == ReturnStatus.CLOSED
    assert set(returns.fakes.refund_keys) == {f"{final.return_id}:refund:1"}
    assert len(returns.fakes.refund_keys) == 4
    assert len(returns.fakes.refunds) == 1


async def test_a_refused_refund_flags_the_return_keeps_the_restock_and_an_operator_retries_it(
    returns: Returns,
) -> None:
    returns.fakes.refuse_refund = ApplicationError("above what was invoiced", type="RefundRefused", non_retryable=True)
    handle = await returns.start()
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)
    await returns.receive(handle, ("MUG-1", 2, RESELLABLE), ("TEE-2", 1, RESELLABLE))

    for _ in range(200):
        flagged = await handle.query(ReturnWorkflow.status)
        if flagged.needs_attention:
            break
        await asyncio.sleep(0.02)
    assert flagged.needs_attention is not None and "above what was invoiced" in flagged.needs_attention
    assert flagged.status == ReturnStatus.RECEIVED and flagged.refund is None
    assert returns.fakes.restocked == {"MUG-1": 2, "TEE-2": 1}

    returns.fakes.refuse_refund = None
    await handle.execute_update(ReturnWorkflow.retry_refund, ReviewReturnCommand(approve=True, note="cap raised"))
    final = await handle.result()

    assert final.status == ReturnStatus.CLOSED and final.needs_attention is None
    # A refused refund went nowhere: the retry is a new refund with a key of its own.
    assert returns.fakes.refund_keys == [f"{final.return_id}:refund:1", f"{final.return_id}:refund:2"]
    assert returns.fakes.restocked == {"MUG-1": 2, "TEE-2": 1}


# ---- The rules, without Temporal. ----


def test_more_than_was_delivered_minus_other_returns_is_refused_naming_the_line() -> None:
    with pytest.raises(return_rules.ReturnRefused, match="line MUG-1: 2 asked, but only 1"):
        return_rules.returnable({"MUG-1": 3}, {"MUG-1": 2}, [("MUG-1", 2)])
    return_rules.returnable({"MUG-1": 3}, {"MUG-1": 2}, [("MUG-1", 1)])


def test_the_refund_is_the_unit_price_plus_its_share_of_the_invoice_tax() -> None:
    lines = return_input(MUG=1).lines
    lines[0].received = 1
    # 15.00 of a 45.00 taxed base (incl. shipping) carrying 9.00 tax: 3.00 of it.
    refund = return_rules.refund_lines(lines, INVOICE)
    assert [(line.sku, line.quantity, line.amount) for line in refund] == [("MUG", 1, Decimal("18.00"))]


def test_the_tax_shares_of_a_refund_add_up_to_no_more_than_was_invoiced() -> None:
    # Two lines of 0.03 invoiced with 0.01 tax (20 % of 0.06, rounded): a share of 0.005 each, rounded
    # line by line, would refund 0.08 of the 0.07 invoiced.
    invoice = InvoiceShare(
        invoice_id="INV-2", subtotal=Decimal("0.06"), tax=Decimal("0.01"), total=Decimal("0.07"), currency="EUR"
    )
    lines = return_input(A=1, B=1).lines
    for line in lines:
        line.unit_price, line.received = Decimal("0.03"), 1

    refund = return_rules.refund_lines(lines, invoice)

    assert [line.amount for line in refund] == [Decimal("0.04"), Decimal("0.03")]
    assert return_rules.refund_total(refund) == invoice.total


def test_review_is_needed_above_the_threshold_or_for_reason_other() -> None:
    assert return_rules.review_reasons(return_input().lines, Decimal("1000")) == []
    assert return_rules.review_reasons(return_input().lines, Decimal("10")) == ["value 45.00 above 10.00"]
    assert return_rules.review_reasons(return_input(reason=ReturnReason.OTHER).lines, Decimal("1000")) == [
        "reason 'other'"
    ]
