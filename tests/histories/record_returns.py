"""Record the after-sales workflows' kept histories: `python -m tests.histories.record_returns <generation>`.

As tests/histories/record.py does for orders: each scenario runs the real return workflow (or the
refund workflow of a refund without a return) on the time-skipping server against the workflow
tests' in-memory activities, and its history is written, unencrypted and without this machine's
paths, to returns/<generation>/ beside this file.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.refunds import RefundOutcome
from models.returns import (
    CancelReturnCommand,
    Condition,
    ReplacementInput,
    ReturnReason,
    ReturnStatus,
    ReturnTrackingEvent,
    ReviewReturnCommand,
)
from tests.histories.record import keep, recording_server
from tests.test_refund_workflow import FakeFinance, start
from tests.test_return_workflow import FakeReturnSystems, Handle, Returns, return_input
from workflows.refunds import RefundWorkflow
from workflows.returns import ReturnWorkflow

HERE = Path(__file__).parent / "returns"
TASK_QUEUE = "record-return-histories"
RESELLABLE, DAMAGED = Condition.RESELLABLE, Condition.DAMAGED
Scenario = Callable[[Returns], Awaitable[Handle]]
RefundHandle = WorkflowHandle[RefundWorkflow, RefundOutcome]
RefundScenario = Callable[[WorkflowEnvironment, FakeFinance], Awaitable[RefundHandle]]


@activity.defn(name="place_replacement")
async def place_replacement(request: ReplacementInput) -> str:
    return f"{request.return_id}-replacement"


async def refunded(returns: Returns) -> Handle:
    handle = await returns.start()
    state = await returns.until(handle, ReturnStatus.LABEL_ISSUED)
    assert state.label is not None
    await handle.signal(
        ReturnWorkflow.tracking_event,
        ReturnTrackingEvent(
            event_id="e-1", tracking_number=state.label.tracking_number, status="in_transit", at=datetime.now(UTC)
        ),
    )
    await returns.until(handle, ReturnStatus.IN_TRANSIT)
    await handle.signal(
        ReturnWorkflow.tracking_event,
        ReturnTrackingEvent(
            event_id="e-2", tracking_number=state.label.tracking_number, status="delivered", at=datetime.now(UTC)
        ),
    )
    await returns.receive(handle, ("MUG-1", 1, RESELLABLE))
    await returns.receive(handle, ("MUG-1", 1, DAMAGED), ("TEE-2", 1, RESELLABLE))
    await handle.result()
    return handle


async def approved_by_operator(returns: Returns) -> Handle:
    handle = await returns.start(return_input(reason=ReturnReason.OTHER))
    await returns.until(handle, ReturnStatus.PENDING_REVIEW)
    await handle.execute_update(ReturnWorkflow.review, ReviewReturnCommand(approve=True, note="ok"))
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)
    await returns.receive(handle, ("MUG-1", 2, RESELLABLE), ("TEE-2", 1, RESELLABLE))
    await handle.result()
    return handle


async def declined(returns: Returns) -> Handle:
    handle = await returns.start(return_input(threshold="10.00"))
    await returns.until(handle, ReturnStatus.PENDING_REVIEW)
    await handle.execute_update(ReturnWorkflow.review, ReviewReturnCommand(approve=False, note="worn"))
    await handle.result()
    return handle


async def cancelled(returns: Returns) -> Handle:
    handle = await returns.start()
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)
    await handle.execute_update(ReturnWorkflow.cancel, CancelReturnCommand(reason="kept it"))
    await handle.result()
    return handle


async def expired(returns: Returns) -> Handle:
    handle = await returns.start()
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)
    await handle.result()
    return handle


async def refund_refused_then_retried(returns: Returns) -> Handle:
    returns.fakes.refuse_refund = ApplicationError("above what was invoiced", type="RefundRefused", non_retryable=True)
    handle = await returns.start()
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)
    await returns.receive(handle, ("MUG-1", 2, RESELLABLE), ("TEE-2", 1, RESELLABLE))
    for _ in range(500):
        if (await handle.query(ReturnWorkflow.status)).needs_attention:
            break
        await asyncio.sleep(0.02)
    returns.fakes.refuse_refund = None
    await handle.execute_update(ReturnWorkflow.retry_refund, ReviewReturnCommand(approve=True))
    await handle.result()
    return handle


async def cancelled_while_refunding(returns: Returns) -> Handle:
    handle = await returns.refunding()
    await handle.cancel()
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    return handle


async def exchanged(returns: Returns) -> Handle:
    request = return_input()
    request.resolution = "exchange"
    handle = await returns.start(request)
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)
    await returns.receive(handle, ("MUG-1", 2, RESELLABLE), ("TEE-2", 1, DAMAGED))
    await handle.result()
    return handle


async def refund_refunded(env: WorkflowEnvironment, finance: FakeFinance) -> RefundHandle:
    finance.outages = 2
    handle = await start(env, TASK_QUEUE)
    await handle.result()
    return handle


async def refund_flagged_then_refunded(env: WorkflowEnvironment, finance: FakeFinance) -> RefundHandle:
    finance.outages = 9
    handle = await start(env, TASK_QUEUE)
    await handle.result()
    return handle


async def refund_refused(env: WorkflowEnvironment, finance: FakeFinance) -> RefundHandle:
    finance.refusal = ApplicationError("12.00 asked, 0.00 left", type="RefundRefused", non_retryable=True)
    handle = await start(env, TASK_QUEUE)
    await handle.result()
    return handle


REFUND_SCENARIOS: dict[str, RefundScenario] = {
    "refund_refunded": refund_refunded,
    "refund_flagged_then_refunded": refund_flagged_then_refunded,
    "refund_refused": refund_refused,
}

SCENARIOS: dict[str, Scenario] = {
    "return_refunded": refunded,
    "return_approved_by_operator": approved_by_operator,
    "return_declined": declined,
    "return_cancelled": cancelled,
    "return_expired": expired,
    "return_refund_refused_then_retried": refund_refused_then_retried,
    "return_exchanged": exchanged,
    "return_cancelled_while_refunding": cancelled_while_refunding,
}


async def main(generation: str) -> None:
    async with recording_server() as env:
        for name, scenario in SCENARIOS.items():
            fakes = FakeReturnSystems()
            async with Worker(
                env.client,
                task_queue=TASK_QUEUE,
                workflows=[ReturnWorkflow],
                activities=[*fakes.activities(), place_replacement],
            ):
                handle = await scenario(Returns(env, TASK_QUEUE, fakes))
                await keep(HERE / generation, name, handle)
        for name, refund_scenario in REFUND_SCENARIOS.items():
            finance = FakeFinance()
            async with Worker(
                env.client,
                task_queue=TASK_QUEUE,
                workflows=[RefundWorkflow],
                activities=[finance.refund_order, finance.flag_refund],
            ):
                refund_handle = await refund_scenario(env, finance)
                await keep(HERE / generation, name, refund_handle)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.histories.record_returns <generation>")
    asyncio.run(main(sys.argv[1]))
