"""The items of a bulk job: one order approved, rejected, cancelled or placed, through the order client
the API itself uses, so a bulk job has no second way to touch an order.

The order's refusal (not waiting for review, already shipped, unknown, an external_ref used for another
order) is a non-retryable ApplicationError the job records as `refused` with the order's reason; an
order or Temporal that does not answer is an ordinary error, retried. Each retry is harmless: a placed
order is found again by its idempotency key (the external_ref), and an approval, rejection or
cancellation is sent with an update id of the job's own, so the order applies it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from temporalio import activity
from temporalio.exceptions import ApplicationError

from api.refusals import ActionRefused, OrderClosed, OrderNotFound
from db.orders import IdempotencyConflict
from models.bulk import BulkAction, ItemInput, ItemResult
from models.names import bulk_workflow_id

if TYPE_CHECKING:
    from api.order_client import OrderClient

ITEM_REFUSED = "BulkItemRefused"
# An item tells Temporal it is alive this often, so that one whose worker died is tried again within
# the workflow's heartbeat timeout rather than its whole start-to-close timeout.
HEARTBEAT_SECONDS = 1.0


@asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeat every HEARTBEAT_SECONDS while the body runs."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()


class BulkActivities:
    def __init__(self, orders: OrderClient) -> None:
        self._orders = orders

    @activity.defn
    async def act_on_order(self, item: ItemInput) -> ItemResult:
        """Approve, reject or cancel one order, as an operator would with the reason given."""
        order_id = item.order_id or item.ref
        update_id = f"{bulk_workflow_id(item.job_id)}:{item.action}"
        try:
            async with heartbeating():
                await self._act(item, order_id, update_id)
        except (ActionRefused, OrderClosed, OrderNotFound) as refusal:
            raise ApplicationError(refusal.detail, type=ITEM_REFUSED, non_retryable=True) from refusal
        return ItemResult(order_id=order_id)

    async def _act(self, item: ItemInput, order_id: str, update_id: str) -> None:
        if item.action == BulkAction.CANCEL:
            await self._orders.cancel(order_id, item.reason or "", actor=item.actor, update_id=update_id)
        else:
            await self._orders.review(
                order_id,
                approve=item.action == BulkAction.APPROVE,
                note=item.reason,
                actor=item.actor,
                update_id=update_id,
            )

    @activity.defn
    async def place_order(self, item: ItemInput) -> ItemResult:
        """Place one imported order with its external_ref as idempotency key: placed again, it is found again."""
        if item.order is None:
            raise ApplicationError("the item carries no order", type=ITEM_REFUSED, non_retryable=True)
        try:
            async with heartbeating():
                accepted = await self._orders.place(item.order, item.ref, client_id=item.client_id)
        except IdempotencyConflict as conflict:
            raise ApplicationError(
                f"external_ref {item.ref!r} was already used for a different order ({conflict.order_id})",
                type=ITEM_REFUSED,
                non_retryable=True,
            ) from conflict
        return ItemResult(order_id=accepted.order_id)
