"""How the API takes a refund of an order without a return: claim it against the invoice, then start its workflow.

The refund is claimed in the database first, with the order's row locked, so that two refunds asked
at once never pass the cap together; its workflow `refund-<refund_id>` is started after the commit
and moves the money. The same Idempotency-Key answers with the first refund, and starts its
workflow if a crash left it unstarted.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.refusals import RETRY_AFTER_SECONDS, ActionRefused, OrderNotFound, OrderUnavailable, temporal_unavailable
from db import refunds as records
from db.orders import get_order
from db.returns import lock_order
from domain import refunds as refund_rules
from models import names
from models.order import OrderState, OrderStatus
from models.refunds import OrderRefundInput, OrderRefundRequest, RefundAccepted, RefundRecord, RefundStatus
from models.returns import InvoiceShare
from security.keyring import Keyring
from settings import Settings

log = structlog.get_logger(__name__)

REFUNDABLE = frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED})


def _hash(order_id: str, request: OrderRefundRequest) -> str:
    return hashlib.sha256(f"{order_id}:{request.model_dump_json()}".encode()).hexdigest()


def refund_summary(record: RefundRecord) -> str:
    """The line the Temporal UI shows for the refund; business facts only."""
    return f"Refund of order {record.order_id[:8]}… · {record.amount:.2f} {record.currency} · {record.reason[:60]}"


class RefundClient:
    def __init__(
        self, client: Client, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, keyring: Keyring
    ) -> None:
        self._client = client
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._keyring = keyring
        self._timeout = timedelta(seconds=settings.api_workflow_timeout_seconds)

    async def request(
        self, order_id: str, request: OrderRefundRequest, idempotency_key: str, *, owner: str, actor: str
    ) -> RefundAccepted:
        """Claim the refund and start its workflow; 409 (ActionRefused) with what remains when it passes the cap."""
        refund_id = str(uuid.uuid4())
        async with self._sessionmaker.begin() as session:
            refund_id = await records.claim_idempotency_key(
                session, owner, idempotency_key, _hash(order_id, request), refund_id
            )
            await lock_order(session, order_id)
            order = await get_order(session, order_id, self._keyring)
            if order is None:
                raise OrderNotFound(order_id)
            record = await records.get_refund(session, refund_id)
            if record is None:
                record = await self._claim(session, order, refund_id, request, actor)
            invoice = order.invoice
            assert invoice is not None, "a refund is claimed only against an invoice"
        workflow_input = OrderRefundInput(
            refund_id=record.refund_id,
            order_id=order_id,
            invoice_id=invoice.invoice_id,
            amount=record.amount,
            currency=record.currency,
            lines=record.lines,
            reason=record.reason,
            requested_by=actor,
        )
        await self._start(record, workflow_input)
        log.info("refund accepted", refund_id=record.refund_id, order_id=order_id)
        return RefundAccepted(
            refund_id=record.refund_id,
            status=record.status,
            amount=record.amount,
            currency=record.currency,
            workflow_id=names.refund_workflow_id(record.refund_id),
        )

    async def _claim(
        self, session: AsyncSession, order: OrderState, refund_id: str, request: OrderRefundRequest, actor: str
    ) -> RefundRecord:
        invoice = order.invoice
        # Once the goods have left the invoice stands for good: before, a cancellation would void it.
        if order.status not in REFUNDABLE or invoice is None or invoice.status != "issued":
            raise ActionRefused(f"order is {order.status.value}: only a shipped or delivered order can be refunded")
        share = InvoiceShare(
            invoice_id=invoice.invoice_id,
            subtotal=invoice.subtotal,
            tax=invoice.tax,
            total=invoice.total,
            currency=invoice.currency,
        )
        held = await records.refunds_of_order(session, order.order_id)
        try:
            lines = refund_rules.line_refund(
                [(line.sku, line.quantity, line.unit_price) for line in order.lines],
                refund_rules.refunded_units(r.lines for r in held if r.status != RefundStatus.FAILED),
                [(line.sku, line.quantity) for line in request.lines],
                share,
            )
        except refund_rules.RefundRefused as refusal:
            raise ActionRefused(str(refusal)) from refusal
        amount = request.amount if request.amount is not None else sum((line.amount for line in lines), Decimal("0.00"))
        now = datetime.now(UTC)
        record = RefundRecord(
            refund_id=refund_id,
            order_id=order.order_id,
            status=RefundStatus.REQUESTED,
            amount=amount,
            currency=invoice.currency,
            lines=lines,
            reason=request.reason,
            note=request.note,
            created_at=now,
            updated_at=now,
        )
        try:
            return await records.claim(
                session,
                record,
                invoiced=invoice.total,
                workflow_id=names.refund_workflow_id(refund_id),
                requested_by=actor,
            )
        except refund_rules.RefundExceedsInvoice as refusal:
            raise ActionRefused(str(refusal)) from refusal

    async def _start(self, record: RefundRecord, workflow_input: OrderRefundInput) -> None:
        try:
            await self._client.start_workflow(
                names.REFUND_WORKFLOW,
                workflow_input,
                id=names.refund_workflow_id(record.refund_id),
                task_queue=self._settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=refund_summary(record),
                search_attributes=TypedSearchAttributes([SearchAttributePair(names.SA_ORDER_ID, record.order_id)]),
                rpc_timeout=self._timeout,
            )
        except WorkflowAlreadyStartedError:
            # A repeated request for a refund whose workflow has already finished: it ran once, as it should.
            return
        except RPCError as error:
            if not temporal_unavailable(error):
                raise
            raise OrderUnavailable(
                f"refund {record.refund_id} is claimed but its workflow was not confirmed by Temporal in time; "
                "send it again with the same Idempotency-Key",
                retry_after=RETRY_AFTER_SECONDS,
            ) from error
