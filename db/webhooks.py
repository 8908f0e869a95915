"""Webhook records: inbound deliveries already accepted, remembered to refuse a replay.

Every function runs inside the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import dialect_insert
from models.tables import WebhookDeliveryRow


async def remember_delivery(session: AsyncSession, signature: str, source: str, received_at: datetime) -> bool:
    """Note an accepted delivery by its signature; False when it was noted before (a replay)."""
    statement = dialect_insert(session, WebhookDeliveryRow).values(
        signature=signature, source=source, received_at=received_at
    )
    # A concurrent copy of the same delivery waits on the primary key, then inserts nothing.
    inserted = await session.execute(
        statement.on_conflict_do_nothing(index_elements=["signature"]).returning(WebhookDeliveryRow.signature)
    )
    return inserted.first() is not None


async def forget_deliveries(session: AsyncSession, received_before: datetime) -> int:
    """Drop deliveries received before the given moment; callers pick one after which any replay is stale anyway."""
    result = await session.execute(
        delete(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.received_at < received_before)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
