"""The refund workflow: one durable run per refund of an order without a return (goodwill, a claim).

The API claimed the refund against the order's invoice before starting this run, so the cap is
settled; what is left is moving the money. A delivered order's own workflow has ended, so the
refund has a run of its own, `refund-<refund_id>`, which the Temporal UI shows with the order's id.
Finance is asked under one key for the refund's whole life: an answer lost in a crash is found
again, never paid twice. A refusal ends the refund `failed`; an outage that outlasts the retries
flags the refund for an operator and the run tries again later, with the same key.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.refunds import RefundActivities
    from models import names
    from models.refunds import OrderRefundInput, RefundFlag, RefundOutcome, RefundStatus
    from workflows.options import DB_STEP
    from workflows.returns import REFUND_STEP

# How long a refund that kept failing waits (flagged) before finance is asked again.
RETRY_FLAGGED_REFUND_AFTER = timedelta(minutes=15)


@workflow.defn(name=names.REFUND_WORKFLOW)
class RefundWorkflow:
    @workflow.run
    async def run(self, request: OrderRefundInput) -> RefundOutcome:
        what = f"{request.amount} {request.currency} of order {request.order_id}"
        workflow.set_current_details(f"**requested**: refund of {what}")
        try:
            return await self._refund(request, what)
        except asyncio.CancelledError:
            # Cancelled from outside (the Temporal UI): whether finance paid is not known, so an operator looks.
            problem = "refund workflow cancelled: check with finance whether it was paid"
            await asyncio.shield(asyncio.ensure_future(self._flag(request.refund_id, problem)))
            raise

    async def _refund(self, request: OrderRefundInput, what: str) -> RefundOutcome:
        while True:
            try:
                refund = await workflow.execute_activity_method(
                    RefundActivities.refund_order,
                    request,
                    summary=f"Finance: refund {request.amount} {request.currency} with a credit note",
                    **REFUND_STEP,
                )
            except ActivityError as error:
                if is_cancelled_exception(error):
                    # The workflow itself was cancelled, and the step with it.
                    raise asyncio.CancelledError() from error
                cause = error.cause
                problem = str(cause or error)
                if isinstance(cause, ApplicationError) and cause.non_retryable:
                    # Finance refused: no money moved, and the refund's row says failed (its share is free).
                    workflow.set_current_details(f"**failed**: {problem}")
                    return RefundOutcome(refund_id=request.refund_id, status=RefundStatus.FAILED, problem=problem)
                await self._flag(request.refund_id, f"refund keeps failing, tried again later: {problem}")
                await workflow.sleep(RETRY_FLAGGED_REFUND_AFTER, summary="Ask finance again")
                continue
            # Writing the refund as refunded lifted any flag.
            workflow.set_current_details(f"**refunded**: {what}, credit note {refund.credit_note}")
            return RefundOutcome(refund_id=request.refund_id, status=RefundStatus.REFUNDED, refund=refund)

    async def _flag(self, refund_id: str, problem: str) -> None:
        workflow.set_current_details(f"**requested**: {problem}")
        await workflow.execute_local_activity_method(
            RefundActivities.flag_refund,
            RefundFlag(refund_id=refund_id, problem=problem),
            summary="Flag the refund for an operator",
            **DB_STEP,
        )
