"""How the API talks to order workflows: start one, read its state, send it updates and signals.

The API keeps no order state of its own. It reads the order record the workflow
writes to the database and, while the order is still moving, asks the workflow
itself. Temporal's answers (not found, already closed, update refused) become the
API's errors here, so routes stay a line or two each. Both sources give the
workflow's `OrderState`; what leaves this module is the API's `OrderView` of it.

An order belongs to the API client that placed it: its client id travels in the workflow's
input and state, in the order record and in the workflow's memo, which answers before any
worker has run the order. Calls made for a client (`client_id=`) find only that client's
orders; any other is "not found", exactly as an order that does not exist.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

import structlog
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
    OrderClosed,
    OrderNotFound,
    OrderUnavailable,
    RevisionMismatch,
    temporal_unavailable,
)
from db.orders import claim_idempotency_key, get_order
from models.changes import ChangeCommand, ChangeRequest
from models.names import (
    MEMO_CLIENT_ID,
    ORDER_WORKFLOW,
    QUERY_STATUS,
    SA_CUSTOMER_ID,
    SA_ORDER_STATUS,
    SA_ORDER_TOTAL,
    SA_SKUS,
    SIGNAL_TRACKING,
    UPDATE_APPROVE,
    UPDATE_CANCEL,
    UPDATE_CHANGE,
    UPDATE_REJECT,
    order_workflow_id,
)
from models.order import (
    CancelCommand,
    OrderAccepted,
    OrderInput,
    OrderRequest,
    OrderState,
    OrderStatus,
    ReplacementOf,
    ReviewCommand,
    TrackingEvent,
)
from models.views import OrderView
from security.keyring import Keyring
from settings import Settings

log = structlog.get_logger(__name__)


def request_hash(request: OrderRequest) -> str:
    """Fingerprint of a validated request: two bodies that mean the same order hash the same."""
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def order_summary(order_id: str, request: OrderRequest) -> str:
    """The line the Temporal UI shows for the order; business facts only, nothing personal."""
    lines = len(request.lines)
    return (
        f"Order {order_id[:8]}… · customer {request.customer.id} · "
        f"{lines} line{'s' if lines != 1 else ''} · {request.total:.2f} {request.currency}"
    )


def initial_search_attributes(request: OrderRequest) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(SA_ORDER_STATUS, OrderStatus.RECEIVED.value),
            SearchAttributePair(SA_CUSTOMER_ID, request.customer.id),
            SearchAttributePair(SA_ORDER_TOTAL, float(request.total)),
            SearchAttributePair(SA_SKUS, request.skus),
        ]
    )


def _refusal_reason(error: WorkflowUpdateFailedError) -> str:
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause) or "the order refused the request"


class OrderClient:
    """The order workflows as the API sees them; one per request, cheap to build."""

    def __init__(
        self,
        client: Client,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        keyring: Keyring,
    ) -> None:
        self._client = client
        self._sessionmaker = sessionmaker
        self._settings = settings
        # Reads the customer's personal data, which the order record keeps encrypted.
        self._keyring = keyring
        self._timeout = timedelta(seconds=settings.api_workflow_timeout_seconds)

    async def place(
        self,
        request: OrderRequest,
        idempotency_key: str | None = None,
        *,
        client_id: str | None = None,
        replacement_for: ReplacementOf | None = None,
    ) -> OrderAccepted:
        """Start the order's workflow, once per order id; a repeated Idempotency-Key of the same caller gets the first.

        `client_id` is the API client placing the order (None for staff); its keys are its own.
        `replacement_for` is set by a return's exchange only: the replacement skips review.
        """
        order_id = str(uuid.uuid4())
        repeated = False
        if idempotency_key is not None:
            async with self._sessionmaker.begin() as session:
                holder = await claim_idempotency_key(
                    session, idempotency_key, request_hash(request), order_id, owner=client_id or ""
                )
            repeated, order_id = holder != order_id, holder
        workflow_id = order_workflow_id(order_id)
        order = OrderInput(
            order_id=order_id,
            request=request,
            client_id=client_id,
            review_timeout=self._settings.review_timeout,
            backorder_timeout=self._settings.backorder_timeout,
            delivery_timeout=self._settings.delivery_timeout,
            replacement_for=replacement_for,
        )
        try:
            # Concurrent starts of one id join the running workflow; a closed one is never run again.
            await self._client.start_workflow(
                ORDER_WORKFLOW,
                order,
                id=workflow_id,
                task_queue=self._settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=order_summary(order_id, request),
                search_attributes=initial_search_attributes(request),
                memo={MEMO_CLIENT_ID: client_id} if client_id is not None else None,
                rpc_timeout=self._timeout,
            )
        except WorkflowAlreadyStartedError:
            current = await self._state(order_id, client_id=client_id)
            return OrderAccepted(order_id=order_id, status=current.status, workflow_id=workflow_id)
        except RPCError as error:
            # Temporal busy or away: the order may have started or not; the same Idempotency-Key finds out.
            # Any other refusal is a bug, and a 500 says so rather than inviting a retry that cannot help.
            if not temporal_unavailable(error):
                raise
            raise OrderUnavailable(
                f"order {order_id} was not confirmed by Temporal in time ({error.message}); "
                "send it again with the same Idempotency-Key",
                retry_after=RETRY_AFTER_SECONDS,
            ) from error
        status = OrderStatus.RECEIVED
        if repeated and (record := await self._record(order_id)) is not None:
            status = record.status
        log.info("order accepted", order_id=order_id, workflow_id=workflow_id, repeated=repeated)
        return OrderAccepted(order_id=order_id, status=status, workflow_id=workflow_id)

    async def state(self, order_id: str, *, client_id: str | None = None) -> OrderView:
        """The order as it stands: the record once it is final, the workflow's own answer before."""
        return OrderView.of(await self._state(order_id, client_id=client_id))

    async def _state(self, order_id: str, *, client_id: str | None = None) -> OrderState:
        record = await self._record(order_id)
        if client_id is not None:
            await self._ensure_owned(order_id, record, client_id)
        if record is not None and record.status.is_terminal:
            return record
        handle = self._handle(order_id)
        try:
            state: OrderState = await handle.query(QUERY_STATUS, result_type=OrderState, rpc_timeout=self._timeout)
            return state
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                if record is not None:
                    return record
                raise OrderNotFound(order_id) from error
            if record is None and error.status == RPCStatusCode.UNAVAILABLE:
                raise
        except WorkflowQueryFailedError:
            pass
        # The workflow could not answer (no worker right now, or it has closed): the record is
        # the last state it wrote, and a workflow that completed carries its final state as result.
        if record is not None:
            return record
        description = await self._describe(handle, order_id)
        if description.status == WorkflowExecutionStatus.COMPLETED:
            final: OrderState = await handle.result()
            return final
        if description.status == WorkflowExecutionStatus.RUNNING:
            raise OrderUnavailable(f"order {order_id} did not answer in time", retry_after=RETRY_AFTER_SECONDS)
        raise OrderClosed(_execution_status(description.status))

    async def cancel(
        self,
        order_id: str,
        reason: str,
        *,
        actor: str = "api",
        client_id: str | None = None,
        update_id: str | None = None,
    ) -> OrderView:
        """The order once the cancellation is applied; ActionRefused with the order's reason when it refuses.

        Sent again with the same `update_id`, a cancellation already applied answers as the first time.
        """
        command = CancelCommand(reason=reason, actor=actor)
        return OrderView.of(await self._update(order_id, UPDATE_CANCEL, command, client_id, update_id))

    async def review(
        self, order_id: str, approve: bool, note: str | None, *, actor: str = "operator", update_id: str | None = None
    ) -> OrderView:
        """The order once the operator's decision is applied; ActionRefused when it is not waiting for one."""
        update = UPDATE_APPROVE if approve else UPDATE_REJECT
        command = ReviewCommand(note=note, actor=actor)
        return OrderView.of(await self._update(order_id, update, command, update_id=update_id))

    async def change(
        self,
        order_id: str,
        change: ChangeRequest,
        *,
        expected_revision: int | None = None,
        actor: str = "api",
        client_id: str | None = None,
    ) -> OrderView:
        """The order once the change is applied; RevisionMismatch when `expected_revision` is not the current one,
        ActionRefused with the order's reason when it refuses the change."""
        command = ChangeCommand(
            lines=change.lines,
            shipping_address=change.shipping_address,
            note=change.note,
            expected_revision=expected_revision,
            actor=actor,
        )
        try:
            return OrderView.of(await self._update(order_id, UPDATE_CHANGE, command, client_id))
        except ActionRefused as refused:
            cause = refused.__cause__.cause if isinstance(refused.__cause__, WorkflowUpdateFailedError) else None
            if isinstance(cause, ApplicationError) and cause.type == "RevisionMismatch" and cause.details:
                raise RevisionMismatch(cause.message, int(cause.details[0])) from refused
            raise

    async def track(self, event: TrackingEvent) -> None:
        """Hand a carrier event to its order; an event for an order that has finished is dropped."""
        handle = self._handle(event.order_id)
        try:
            await handle.signal(SIGNAL_TRACKING, event, rpc_timeout=self._timeout)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            # Temporal answers "not found" for a closed workflow too; only a missing one is the caller's mistake.
            await self._describe(handle, event.order_id)
            log.info("late tracking event dropped", order_id=event.order_id, event_id=event.event_id)

    async def _update(
        self, order_id: str, update: str, command: Any, client_id: str | None = None, update_id: str | None = None
    ) -> OrderState:
        record = await self._record(order_id)
        if client_id is not None:
            await self._ensure_owned(order_id, record, client_id)
        if record is not None and record.status.is_terminal:
            raise OrderClosed(record.status.value)
        handle = self._handle(order_id)
        try:
            state: OrderState = await handle.execute_update(
                update, command, id=update_id, result_type=OrderState, rpc_timeout=self._timeout
            )
            return state
        except WorkflowUpdateFailedError as error:
            raise ActionRefused(_refusal_reason(error)) from error
        except WorkflowUpdateRPCTimeoutOrCancelledError as error:
            raise OrderUnavailable(
                f"order {order_id} did not answer in time; the request may still be applied",
                retry_after=RETRY_AFTER_SECONDS,
            ) from error
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                # Temporal refuses updates while the order's workflow task is failing or the server is busy.
                raise OrderUnavailable(
                    f"order {order_id} cannot take the request now: {error.message}", retry_after=RETRY_AFTER_SECONDS
                ) from error
        raise OrderClosed(await self._closed_status(handle, order_id))

    async def _ensure_owned(self, order_id: str, record: OrderState | None, client_id: str) -> None:
        """Not found, unless the order belongs to `client_id`: by its record, or before there is one, by its memo."""
        if record is not None:
            owner = record.client_id
        else:
            description = await self._describe(self._handle(order_id), order_id)
            owner = await description.memo_value(MEMO_CLIENT_ID, None)
        if owner != client_id:
            raise OrderNotFound(order_id)

    async def _closed_status(self, handle: WorkflowHandle[Any, Any], order_id: str) -> str:
        description = await self._describe(handle, order_id)
        if description.status == WorkflowExecutionStatus.COMPLETED:
            final: OrderState = await handle.result()
            return final.status.value
        return _execution_status(description.status)

    async def _describe(self, handle: WorkflowHandle[Any, Any], order_id: str) -> WorkflowExecutionDescription:
        try:
            return await handle.describe(rpc_timeout=self._timeout)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise OrderNotFound(order_id) from error
            raise

    async def _record(self, order_id: str) -> OrderState | None:
        async with self._sessionmaker.begin() as session:
            return await get_order(session, order_id, self._keyring)

    def _handle(self, order_id: str) -> WorkflowHandle[Any, Any]:
        return self._client.get_workflow_handle(order_workflow_id(order_id), result_type=OrderState)


def _execution_status(status: WorkflowExecutionStatus | None) -> str:
    return status.name.lower() if status is not None else "closed"
