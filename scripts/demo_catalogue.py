"""A small catalogue for local runs: six SKUs over two warehouses and one customer flagged for review.

Seeding only adds what is missing. Stock rows that already exist keep their
numbers, so restarting the local stack does not undo what earlier demo orders
reserved or shipped.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase

from models.tables import CustomerFlagRow, SkuRow, StockRow, WarehouseRow

WAREHOUSES: dict[str, str] = {
    "WH-EAST": "East distribution centre",
    "WH-WEST": "West distribution centre",
}

SKUS: dict[str, str] = {
    "MUG-001": "Enamel mug",
    "TEE-002": "Organic cotton t-shirt",
    "BOOK-003": "Field guide to durable workflows",
    "LAMP-004": "Desk lamp",
    "BAG-005": "Canvas tote bag",
    # Scarce on purpose: ordering three or more shows a backorder and replenishment.
    "CHAIR-006": "Ergonomic chair",
}

# (sku, warehouse) -> units on hand when first seeded.
STOCK: dict[tuple[str, str], int] = {
    ("MUG-001", "WH-EAST"): 120,
    ("MUG-001", "WH-WEST"): 80,
    ("TEE-002", "WH-EAST"): 60,
    ("TEE-002", "WH-WEST"): 40,
    ("BOOK-003", "WH-EAST"): 25,
    ("LAMP-004", "WH-WEST"): 15,
    ("BAG-005", "WH-EAST"): 30,
    ("BAG-005", "WH-WEST"): 30,
    ("CHAIR-006", "WH-WEST"): 2,
}

FLAGGED_CUSTOMER_ID = "cust-flagged"
FLAGGED_REASON = "Demo: chargeback history, every order goes to manual review"


async def seed(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Add the demo warehouses, SKUs, stock and flagged customer where they are missing."""
    async with sessionmaker() as session, session.begin():
        await _insert_missing(
            session, WarehouseRow, [{"code": code, "name": name} for code, name in WAREHOUSES.items()]
        )
        await _insert_missing(
            session, SkuRow, [{"sku": sku, "name": name, "active": True} for sku, name in SKUS.items()]
        )
        await _insert_missing(
            session,
            StockRow,
            [
                {"sku": sku, "warehouse": warehouse, "on_hand": on_hand, "reserved": 0}
                for (sku, warehouse), on_hand in STOCK.items()
            ],
        )
        await _insert_missing(
            session, CustomerFlagRow, [{"customer_id": FLAGGED_CUSTOMER_ID, "reason": FLAGGED_REASON}]
        )


async def _insert_missing(session: AsyncSession, table: type[DeclarativeBase], rows: list[dict[str, Any]]) -> None:
    # One INSERT .. ON CONFLICT DO NOTHING: a row already there (perhaps changed
    # by orders since) is left exactly as it is.
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql_insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite_insert(table).on_conflict_do_nothing()
    else:
        raise ValueError(f"unsupported database: {dialect}")
    await session.execute(statement, rows)
