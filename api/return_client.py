"""How the API talks to returns: claim one against its order, start its workflow, read it, send it updates.

A return is claimed in the database first, with its order's row locked, so that two returns asked at
once never cover the same delivered units; its workflow is started after the commit. Reads come from
the record the workflow writes; updates go to the workflow, and Temporal's refusals become the API's
errors here, as for orders (api/order_client.py).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.refusals import (
    RETRY_AFTER_SECONDS,
    ActionRefused,
    ApiError,
    OrderNotFound,
    OrderUnavailable,
    temporal_unavailable,
)
from db import refunds as refund_records
from db import returns as records
from db.orders import get_order
from domain import refunds as refund_rules
from domain import returns as return_rules
from models import names
from models.order import OrderState, OrderStatus, TrackingEvent
from models.refunds import RefundStatus
from models.returns import (
    InvoiceShare,
    ReturnAccepted,
    ReturnInput,
    ReturnLine,
    ReturnRequest,
    ReturnState,
    ReturnStatus,
    ReturnTrackingEvent,
)
from models.views import OrderView, RefundView, ReturnRefView
from security.keyring import Keyring
from settings import Settings

log = structlog.get_logger(__name__)


class ReturnNotFound(ApiError):
    status_code = 404

    def __init__(self, return_id: str) -> None:
        super().__init__(f"return {return_id} not found")


def _hash(order_id: str, request: ReturnRequest) -> str:
    return hashlib.sha256(f"{order_id}:{request.model_dump_json()}".encode()).hexdigest()


def delivered_at(order: OrderState) -> datetime | None:
    for event in reversed(order.timeline):
        if event.status == OrderStatus.DELIVERED:
            return event.at
    return None


def return_summary(state: ReturnState) -> str:
    """The line the Temporal UI shows for the return; business facts only."""
    units = sum(line.quantity for line in state.lines)
    return (
        f"Return {state.return_id[:8]}… of order {state.order_id[:8]}… · customer {state.customer_id} · "
        f"{units} unit{'s' if units != 1 else ''} · {state.value:.2f} {state.currency}"
    )


class ReturnClient:
    def __init__(
        self, client: Client, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, keyring: Keyring
    ) -> None:
        self._client = client
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._keyring = keyring
        self._timeout = timedelta(seconds=settings.api_workflow_timeout_seconds)

    async def request(
        self,
        order_id: str,
        request: ReturnRequest,
        idempotency_key: str | None,
        *,
        client_id: str | None,
        actor: str,
    ) -> ReturnAccepted:
        """Claim the return against its order and start its workflow; a repeated key answers with the first return."""
        return_id = str(uuid.uuid4())
        async with self._sessionmaker.begin() as session:
            if idempotency_key is not None:
                holder = await records.claim_idempotency_key(
                    session, client_id or "", idempotency_key, _hash(order_id, request), return_id
                )
                if holder != return_id:
                    return_id = holder
            existing = await records.get_return(session, return_id)
            if existing is None:
                existing = await self._claim(session, order_id, return_id, request, client_id=client_id)
            order = await self._order(session, order_id)
            workflow_input = self._input(existing, order, actor)
            if not self._within_window(order):
                workflow_input.window_override = request.note
        await self._start(existing, workflow_input, forget_on_failure=idempotency_key is None)
        log.info("return accepted", return_id=return_id, order_id=order_id)
        return ReturnAccepted(
            return_id=return_id, status=existing.status, workflow_id=names.return_workflow_id(return_id)
        )

    async def _order(self, session: AsyncSession, order_id: str) -> OrderState:
        order = await get_order(session, order_id, self._keyring)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    async def _claim(
        self,
        session: AsyncSession,
        order_id: str,
        return_id: str,
        request: ReturnRequest,
        *,
        client_id: str | None,
    ) -> ReturnState:
        await records.lock_order(session, order_id)
        order = await self._order(session, order_id)
        if client_id is not None and order.client_id != client_id:
            raise OrderNotFound(order_id)
        if order.status != OrderStatus.DELIVERED or order.invoice is None:
            raise ActionRefused(f"order is {order.status.value}: only a delivered order can be returned")
        now = datetime.now(UTC)
        if not self._within_window(order, now):
            if not request.override_window:
                raise ActionRefused(
                    f"the return window of {self._settings.return_window_days} days after delivery has passed"
                )
            if client_id is not None or not request.note:
                raise ActionRefused("only an operator may override the return window, with a note saying why")
        delivered_units: dict[str, int] = {}
        prices: dict[str, Decimal] = {}
        for line in order.lines:
            delivered_units[line.sku] = delivered_units.get(line.sku, 0) + line.quantity
            prices.setdefault(line.sku, line.unit_price)
        try:
            return_rules.returnable(
                delivered_units,
                await records.covered_units(session, order_id),
                [(line.sku, line.quantity) for line in request.lines],
            )
        except return_rules.ReturnRefused as refusal:
            raise ActionRefused(str(refusal)) from refusal
        lines = [
            ReturnLine(
                line_no=no, sku=line.sku, quantity=line.quantity, reason=line.reason, unit_price=prices[line.sku]
            )
            for no, line in enumerate(request.lines, start=1)
        ]
        state = ReturnState(
            return_id=return_id,
            workflow_id=names.return_workflow_id(return_id),
            order_id=order_id,
            customer_id=order.customer.id,
            client_id=order.client_id,
            status=ReturnStatus.REQUESTED,
            resolution=request.resolution,
            note=request.note,
            lines=lines,
            value=return_rules.return_value(lines),
            currency=order.currency,
            created_at=now,
            updated_at=now,
        )
        await records.create_return(session, state)
        return state

    def _within_window(self, order: OrderState, now: datetime | None = None) -> bool:
        delivered = delivered_at(order) or order.updated_at
        return return_rules.within_window(delivered, now or datetime.now(UTC), self._settings.return_window_days)

    def _input(self, state: ReturnState, order: OrderState, actor: str) -> ReturnInput:
        invoice = order.invoice
        assert invoice is not None, "a delivered order was invoiced"
        return ReturnInput(
            return_id=state.return_id,
            order_id=state.order_id,
            customer_id=state.customer_id,
            client_id=state.client_id,
            lines=state.lines,
            resolution=state.resolution,
            note=state.note,
            invoice=InvoiceShare(
                invoice_id=invoice.invoice_id,
                subtotal=invoice.subtotal,
                tax=invoice.tax,
                total=invoice.total,
                currency=invoice.currency,
            ),
            review_threshold=self._settings.return_review_threshold,
            shipping_window=timedelta(days=self._settings.return_shipping_days),
            requested_by=actor,
            requested_at=state.created_at,
        )

    async def _start(self, state: ReturnState, workflow_input: ReturnInput, *, forget_on_failure: bool) -> None:
        try:
            await self._client.start_workflow(
                names.RETURN_WORKFLOW,
                workflow_input,
                id=state.workflow_id,
                task_queue=self._settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=return_summary(state),
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(names.SA_RETURN_STATUS, state.status.value),
                        SearchAttributePair(names.SA_ORDER_ID, state.order_id),
                        SearchAttributePair(names.SA_CUSTOMER_ID, state.customer_id),
                    ]
                ),
                rpc_timeout=self._timeout,
            )
        except WorkflowAlreadyStartedError:
            # A repeated request for a return whose workflow has already finished: it ran once, as it should.
            return
        except RPCError as error:
            if not temporal_unavailable(error):
                raise
            if forget_on_failure:
                # Without a key the caller cannot ask again for this return: it must not keep covering the units.
                async with self._sessionmaker.begin() as session:
                    await records.forget_return(session, state.return_id)
                detail = "send the return again"
            else:
                detail = "send it again with the same Idempotency-Key"
            raise OrderUnavailable(
                f"return {state.return_id} was not confirmed by Temporal in time; {detail}",
                retry_after=RETRY_AFTER_SECONDS,
            ) from error

    async def get(self, return_id: str, *, client_id: str | None) -> ReturnState:
        async with self._sessionmaker.begin() as session:
            state = await records.get_return(session, return_id)
        if state is None or (client_id is not None and state.client_id != client_id):
            raise ReturnNotFound(return_id)
        return state

    async def update(
        self, return_id: str, update: str, command: Any, *, client_id: str | None = None, update_id: str | None = None
    ) -> ReturnState:
        """The return once the workflow applied the update; ActionRefused with its reason when it refuses."""
        current = await self.get(return_id, client_id=client_id)
        if current.status.is_terminal:
            raise ActionRefused(f"return is {current.status.value}")
        handle = self._client.get_workflow_handle(names.return_workflow_id(return_id), result_type=ReturnState)
        try:
            state: ReturnState = await handle.execute_update(
                update, command, id=update_id, result_type=ReturnState, rpc_timeout=self._timeout
            )
            return state
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise ActionRefused(reason or "the return refused the request") from error
        except WorkflowUpdateRPCTimeoutOrCancelledError as error:
            raise OrderUnavailable(
                f"return {return_id} did not answer in time; the request may still be applied",
                retry_after=RETRY_AFTER_SECONDS,
            ) from error
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise OrderUnavailable(
                    f"return {return_id} cannot take the request now: {error.message}", retry_after=RETRY_AFTER_SECONDS
                ) from error
        final = await self.get(return_id, client_id=client_id)
        raise ActionRefused(f"return is {final.status.value}")


async def track_return(
    client: Client, sessionmaker: async_sessionmaker[AsyncSession], event: TrackingEvent, timeout: timedelta
) -> bool:
    """Hand a carrier event to the return whose label it tracks; False when the tracking number is no return's.

    An event for a return that has finished is dropped, as one for a finished order is.
    """
    async with sessionmaker.begin() as session:
        return_id = await records.return_of_tracking_number(session, event.tracking_number)
    if return_id is None:
        return False
    handle = client.get_workflow_handle(names.return_workflow_id(return_id))
    news = ReturnTrackingEvent(
        event_id=event.event_id, tracking_number=event.tracking_number, status=event.status.value, at=event.at
    )
    try:
        await handle.signal(names.SIGNAL_RETURN_TRACKING, news, rpc_timeout=timeout)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        log.info("late return tracking event dropped", return_id=return_id, event_id=event.event_id)
    return True


async def with_returns(view: OrderView, sessionmaker: async_sessionmaker[AsyncSession]) -> OrderView:
    """The order's view with its returns and refunds, and per line the units delivered, received back and refunded."""
    async with sessionmaker.begin() as session:
        returns = await records.returns_of_order(session, view.order_id)
        received = await records.received_units(session, view.order_id)
        refunds = await refund_records.refunds_of_order(session, view.order_id)
    delivered = view.status == OrderStatus.DELIVERED
    refunded = refund_rules.refunded_units(r.lines for r in refunds if r.status == RefundStatus.REFUNDED)
    lines = []
    for line in view.lines:
        # Units of a SKU ordered on several lines are counted back against the first lines first.
        back = min(line.quantity, received.get(line.sku, 0))
        received[line.sku] = received.get(line.sku, 0) - back
        paid_back = min(line.quantity, refunded.get(line.sku, 0))
        refunded[line.sku] = refunded.get(line.sku, 0) - paid_back
        lines.append(
            line.model_copy(
                update={
                    "delivered_quantity": line.quantity if delivered else 0,
                    "returned_quantity": back,
                    "refunded_quantity": paid_back,
                }
            )
        )
    refs = [ReturnRefView(return_id=return_id, status=status) for return_id, status in returns]
    total = sum((r.amount for r in refunds if r.status == RefundStatus.REFUNDED), Decimal("0.00"))
    return view.model_copy(
        update={
            "lines": lines,
            "returns": refs,
            "refunds": [RefundView.model_validate(r) for r in refunds],
            "refunded_total": total,
        }
    )
