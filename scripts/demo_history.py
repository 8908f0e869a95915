"""Ninety days of demo order history for local runs, so that the forecast has something to show at once.

Demo orders are named as such: ids `demo-history-<date>`, the customer `demo-history`. One order a
day holds that day's demand of each catalogue SKU (scripts.demo_catalogue): steady sellers with a
weekly pattern and slow movers sold on some days only. They are written as the order workflow
writes its records (received, shipped, delivered), so they read like any closed order, and they are
written once: a database that already holds demo history gets none added.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.orders import record_order, record_status
from models.order import Address, Customer, OrderLine, OrderRequest, OrderState, OrderStatus, TimelineEvent
from models.records import RecordOrderInput, StatusChangeInput
from models.tables import OrderRow
from security.keyring import Keyring

DEMO_DAYS = 90
DEMO_PREFIX = "demo-history-"
DEMO_CUSTOMER = Customer(id="demo-history", name="Demo history", email="demo-history@example.com", phone="")
DEMO_ADDRESS = Address(
    name="Demo history", line1="1 Demo Street", city="Amsterdam", postal_code="1000 AA", country="NL"
)
SEED = 20261201
# Busier towards the weekend (Monday first), as the synthetic demand of scripts.demand_generator.
WEEK_SHAPE = np.array([-0.25, -0.2, -0.1, 0.0, 0.15, 0.3, 0.1])

# SKU -> (unit price, mean units a day, chance of demand on a day); a chance below 1 is a slow mover.
DEMAND: dict[str, tuple[Decimal, float, float]] = {
    "MUG-001": (Decimal("12.50"), 14.0, 1.0),
    "TEE-002": (Decimal("19.00"), 9.0, 1.0),
    "BAG-005": (Decimal("9.90"), 5.0, 1.0),
    "BOOK-003": (Decimal("24.00"), 2.0, 0.3),
    "LAMP-004": (Decimal("45.00"), 1.5, 0.2),
    "CHAIR-006": (Decimal("320.00"), 1.0, 0.1),
}


def daily_demand(days: int, first_day: date) -> list[dict[str, int]]:
    """Units of each SKU asked for on each of `days` days from `first_day`, the same on every run."""
    rng = np.random.default_rng(SEED)
    result = []
    for offset in range(days):
        weekday = (first_day + timedelta(days=offset)).weekday()
        day: dict[str, int] = {}
        for sku, (_, mean, chance) in DEMAND.items():
            if chance >= 1:
                units = int(rng.poisson(mean * (1 + 0.6 * WEEK_SHAPE[weekday])))
            else:
                units = int(1 + rng.poisson(mean - 1)) if rng.random() < chance else 0
            if units:
                day[sku] = units
        result.append(day)
    return result


async def seed_history(
    sessionmaker: async_sessionmaker[AsyncSession], keyring: Keyring, today: date, days: int = DEMO_DAYS
) -> int:
    """Write the demo orders of the `days` days before `today`; how many (0 when there is demo history already)."""
    async with sessionmaker() as session:
        present = await session.scalar(select(OrderRow.order_id).where(OrderRow.order_id.startswith(DEMO_PREFIX)))
    if present is not None:
        return 0
    first_day = today - timedelta(days=days)
    written = 0
    async with sessionmaker.begin() as session:
        for offset, demand in enumerate(daily_demand(days, first_day)):
            if demand:
                day = first_day + timedelta(days=offset)
                await _write_order(session, keyring, day, demand)
                written += 1
    return written


async def _write_order(session: AsyncSession, keyring: Keyring, day: date, demand: dict[str, int]) -> None:
    order_id = f"{DEMO_PREFIX}{day.isoformat()}"
    placed = datetime.combine(day, time(10), tzinfo=UTC)
    request = OrderRequest(
        customer=DEMO_CUSTOMER,
        lines=[OrderLine(sku=sku, quantity=units, unit_price=DEMAND[sku][0]) for sku, units in demand.items()],
        shipping_address=DEMO_ADDRESS,
    )
    workflow_id = f"order-{order_id}"
    await record_order(
        session,
        RecordOrderInput(order_id=order_id, workflow_id=workflow_id, request=request, received_at=placed),
        keyring,
    )
    state = OrderState.received(order_id, workflow_id, request, placed)
    # Lead times that vary from day to day, so the dashboard's fulfilment chart has a spread to show.
    shipped = placed + timedelta(hours=4 + 7 * (day.toordinal() % 5))
    delivered = shipped + timedelta(hours=20 + 13 * (day.toordinal() % 4))
    events = [
        TimelineEvent(seq=1, at=placed, status=OrderStatus.RECEIVED, actor="demo", event="demo order placed"),
        TimelineEvent(seq=2, at=shipped, status=OrderStatus.SHIPPED, actor="demo", event="demo order shipped"),
        TimelineEvent(seq=3, at=delivered, status=OrderStatus.DELIVERED, actor="demo", event="demo order delivered"),
    ]
    for number, event in enumerate(events, start=1):
        state = state.model_copy(update={"status": event.status, "timeline": events[:number], "updated_at": event.at})
        await record_status(session, StatusChangeInput.of(state, event, version=number), keyring)
