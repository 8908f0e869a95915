"""Stock steps: reserve a line, release it, commit an order's reservations. Each is idempotent."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from db import stock
from models.inventory import (
    CommitOrderInput,
    LineKey,
    ReleaseOrderInput,
    ReplaceLinesInput,
    ReplaceLinesResult,
    ReserveLineInput,
    ReserveLineResult,
)


class InventoryActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], warehouse_priority: list[str]) -> None:
        self._sessionmaker = sessionmaker
        self._warehouse_priority = warehouse_priority

    @activity.defn
    async def reserve_line(self, request: ReserveLineInput) -> ReserveLineResult:
        """Hold the whole line's quantity, split across warehouses in priority order, or nothing."""
        async with self._sessionmaker.begin() as session:
            return await stock.reserve_line(
                session, request.key, request.sku, request.quantity, self._warehouse_priority
            )

    @activity.defn
    async def release_line(self, key: LineKey) -> None:
        """Give back what reserve_line held for this key (no-op when nothing is held)."""
        async with self._sessionmaker.begin() as session:
            await stock.release_line(session, key)

    @activity.defn
    async def replace_lines(self, request: ReplaceLinesInput) -> ReplaceLinesResult:
        """An order change's stock: release and reserve its lines at once, or change nothing when any is short."""
        async with self._sessionmaker.begin() as session:
            return await stock.replace_lines(session, request, self._warehouse_priority)

    @activity.defn
    async def release_order(self, request: ReleaseOrderInput) -> None:
        """Give back whatever the order still holds, by order id (no-op when nothing is held)."""
        async with self._sessionmaker.begin() as session:
            await stock.release_order(session, request.order_id)

    @activity.defn
    async def commit_order(self, request: CommitOrderInput) -> None:
        """Stock leaves the warehouse: every held reservation of the order comes off on_hand and reserved."""
        async with self._sessionmaker.begin() as session:
            await stock.commit_order(session, request.order_id)

    @activity.defn
    async def available_stock(self, sku: str) -> int:
        """Units of the SKU on hand and not reserved, over all warehouses."""
        async with self._sessionmaker() as session:
            return await stock.available_stock(session, sku)
