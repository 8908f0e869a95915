"""Order record steps: the order row, and each status change with its timeline entry and its webhook events.

The customer's personal data is written encrypted under the keyring the worker was started with.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from db import orders, webhooks
from models.records import RecordChangeInput, RecordOrderInput, StatusChangeInput
from security.keyring import Keyring


class OrderRecordActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], keyring: Keyring) -> None:
        self._sessionmaker = sessionmaker
        self._keyring = keyring

    @activity.defn
    async def record_order(self, request: RecordOrderInput) -> None:
        """Insert the order, its lines and its state as received once, with its first timeline entry if given;
        a repeat changes nothing."""
        async with self._sessionmaker.begin() as session:
            await orders.record_order(session, request, self._keyring)
            if request.first_entry is not None:
                await self._write_status(session, request.first_entry)

    @activity.defn
    async def record_status(self, change: StatusChangeInput) -> None:
        """Write the timeline entry and the order's facts after it; an entry already written is skipped.

        The entry goes to the webhook outbox for every subscription that wants it, in the same
        transaction: it is sent if and only if it was recorded, and sending never holds up the order.
        """
        async with self._sessionmaker.begin() as session:
            await self._write_status(session, change)

    async def _write_status(self, session: AsyncSession, change: StatusChangeInput) -> None:
        if await orders.record_status(session, change, self._keyring):
            await webhooks.enqueue_order_event(session, change.order.order_id, change.event, change.version)

    @activity.defn
    async def record_change(self, change: RecordChangeInput) -> None:
        """Write an accepted change of the order's lines, address and total, once per revision."""
        async with self._sessionmaker.begin() as session:
            await orders.record_change(session, change, self._keyring)
