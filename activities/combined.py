"""Steps made of steps that always run back to back: one activity each, where the order workflow's
patch merged-steps runs them, so an order costs fewer tasks. Each part is keyed as it is on its own,
so a retry of the whole repeats only what did not land."""

from __future__ import annotations

from temporalio import activity

from activities.carrier import CarrierActivities
from activities.inventory import InventoryActivities
from activities.orders import OrderRecordActivities
from activities.review import ReviewActivities
from models.integrations import BookingRef, ConfirmedBooking
from models.inventory import CommitOrderInput
from models.order import ReviewOutcome
from models.records import RecordOrderInput, ReviewInput


class IntakeActivities:
    """An order's first step: recorded, then reviewed by the automatic rules."""

    def __init__(self, records: OrderRecordActivities, review: ReviewActivities) -> None:
        self._records = records
        self._review = review

    @activity.defn
    async def record_and_review(self, request: RecordOrderInput) -> ReviewOutcome:
        await self._records.record_order(request)
        return await self._review.review_order(ReviewInput(order_id=request.order_id, request=request.request))


class HandOverActivities:
    """An order's last step before it ships: the carrier's booking confirmed, then its stock committed."""

    def __init__(self, carrier: CarrierActivities, inventory: InventoryActivities) -> None:
        self._carrier = carrier
        self._inventory = inventory

    @activity.defn
    async def confirm_and_commit(self, ref: BookingRef) -> ConfirmedBooking:
        confirmed = await self._carrier.confirm_booking(ref)
        await self._inventory.commit_order(CommitOrderInput(order_id=ref.order_id))
        return confirmed
