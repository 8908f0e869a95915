"""The refund workflow on the time-skipping server, with finance faked and counted; the cap's rules as pure functions.

A refund without a return is claimed by the API before its workflow starts; the workflow moves the
money under one key for the refund's whole life.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain import refunds as refund_rules
from models import names
from models.refunds import OrderRefundInput, RefundFlag, RefundOutcome, RefundStatus
from models.returns import InvoiceShare, Refund, RefundLine
from tests.polling import NotYet, eventually
from workflows.refunds import RETRY_FLAGGED_REFUND_AFTER, RefundWorkflow


class FakeFinance:
    """Finance's refunds in memory: one per key, outages and refusals on demand, flags as the database keeps them."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.refunds: dict[str, Refund] = {}
        self.outages = 0
        self.refusal: ApplicationError | None = None
        self.flags: list[str | None] = []

    @activity.defn(name="refund_order")
    async def refund_order(self, request: OrderRefundInput) -> Refund:
        key = f"{request.refund_id}:refund"
        self.keys.append(key)
        if self.outages > 0:
            self.outages -= 1
            raise ApplicationError("finance answered 503", type="ProviderUnavailable")
        if self.refusal is not None:
            raise self.refusal
        return self.refunds.setdefault(
            key,
            Refund(
                refund_id=f"RF-{len(self.refunds) + 1}",
                amount=request.amount,
                currency=request.currency,
                credit_note=f"CN-{len(self.refunds) + 1}",
            ),
        )

    @activity.defn(name="flag_refund")
    async def flag_refund(self, request: RefundFlag) -> None:
        self.flags.append(request.problem)


@pytest.fixture
async def finance(time_skipping_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[FakeFinance]:
    fake = FakeFinance()
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[RefundWorkflow],
        activities=[fake.refund_order, fake.flag_refund],
    ):
        yield fake


async def start(env: WorkflowEnvironment, task_queue: str) -> WorkflowHandle[RefundWorkflow, RefundOutcome]:
    refund_id = str(uuid.uuid4())
    return await env.client.start_workflow(
        RefundWorkflow.run,
        OrderRefundInput(
            refund_id=refund_id,
            order_id="o-1",
            invoice_id="INV-1",
            amount=Decimal("12.00"),
            currency="EUR",
            lines=[RefundLine(sku="MUG-1", quantity=1, amount=Decimal("12.00"))],
            reason="arrived late",
        ),
        id=names.refund_workflow_id(refund_id),
        task_queue=task_queue,
    )


async def test_a_refund_failing_for_a_while_goes_through_once_under_one_key(
    finance: FakeFinance, time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    finance.outages = 3
    handle = await start(time_skipping_env, task_queue)

    outcome = await handle.result()

    assert outcome.status == RefundStatus.REFUNDED
    assert outcome.refund is not None and outcome.refund.credit_note == "CN-1"
    assert len(finance.keys) == 4 and set(finance.keys) == {f"{outcome.refund_id}:refund"}
    assert len(finance.refunds) == 1 and finance.flags == []


async def test_a_refund_failing_past_its_retries_is_flagged_then_tried_again_with_the_same_key(
    finance: FakeFinance, time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    # More outages than one round of retries takes (REFUND_STEP: 8 attempts).
    finance.outages = 10
    handle = await start(time_skipping_env, task_queue)

    outcome = await handle.result()

    assert outcome.status == RefundStatus.REFUNDED
    assert len(finance.flags) == 1 and "refund keeps failing" in (finance.flags[0] or "")
    assert set(finance.keys) == {f"{outcome.refund_id}:refund"} and len(finance.refunds) == 1
    history = await handle.fetch_history()
    timers = [event for event in history.events if event.HasField("timer_started_event_attributes")]
    assert [t.timer_started_event_attributes.start_to_fire_timeout.seconds for t in timers] == [
        int(RETRY_FLAGGED_REFUND_AFTER.total_seconds())
    ]


async def test_a_refund_finance_refuses_ends_failed_without_another_try(
    finance: FakeFinance, time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    finance.refusal = ApplicationError("12.00 asked, 0.00 left to refund", type="RefundRefused", non_retryable=True)
    handle = await start(time_skipping_env, task_queue)

    outcome = await handle.result()

    assert outcome.status == RefundStatus.FAILED and outcome.refund is None
    assert outcome.problem is not None and "0.00 left to refund" in outcome.problem
    assert len(finance.keys) == 1 and finance.flags == []


# ---- The cap and the lines, without Temporal. ----

INVOICE = InvoiceShare(
    invoice_id="INV-1", subtotal=Decimal("50.00"), tax=Decimal("10.00"), total=Decimal("60.00"), currency="EUR"
)


def test_a_refund_within_what_is_left_of_the_invoice_passes_and_one_beyond_is_refused_with_the_remainder() -> None:
    refund_rules.check_cap(Decimal("20.00"), Decimal("60.00"), [Decimal("30.00"), Decimal("10.00")], "EUR")

    with pytest.raises(refund_rules.RefundExceedsInvoice) as refused:
        refund_rules.check_cap(Decimal("20.01"), Decimal("60.00"), [Decimal("30.00"), Decimal("10.00")], "EUR")

    assert refused.value.remaining == Decimal("20.00")
    assert "remaining 20.00 EUR of the 60.00 EUR invoiced" in str(refused.value)


def test_a_refund_of_lines_pays_their_share_and_refuses_units_already_refunded() -> None:
    ordered = [("MUG-1", 2, Decimal("15.00")), ("TEE-2", 1, Decimal("20.00"))]

    lines = refund_rules.line_refund(ordered, {}, [("MUG-1", 1)], INVOICE)
    # 15.00 plus its share of the tax: 10.00 over a 50.00 base.
    assert lines == [RefundLine(sku="MUG-1", quantity=1, amount=Decimal("18.00"))]

    with pytest.raises(refund_rules.RefundRefused, match="line MUG-1: 2 asked, but only 1"):
        refund_rules.line_refund(ordered, {"MUG-1": 1}, [("MUG-1", 2)], INVOICE)
    with pytest.raises(refund_rules.RefundRefused, match="line LAMP-9: the order has no such SKU"):
        refund_rules.line_refund(ordered, {}, [("LAMP-9", 1)], INVOICE)


async def test_a_refund_workflow_cancelled_from_outside_flags_the_refund_for_an_operator(
    finance: FakeFinance, time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    finance.outages = 1_000
    handle = await start(time_skipping_env, task_queue)

    async def asked() -> None:
        if not finance.keys:
            raise NotYet("finance not asked yet")

    await eventually(asked, timeout=10, interval=0.02)

    await handle.cancel()

    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert finance.flags[-1] == "refund workflow cancelled: check with finance whether it was paid"
    assert finance.refunds == {}
