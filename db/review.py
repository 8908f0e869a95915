"""What the review rules read: the catalogue's word on an order's SKUs and the customer's review flag."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.review import ReviewFacts
from models.tables import CustomerFlagRow, SkuRow


async def read_review_facts(session: AsyncSession, customer_id: str, skus: Collection[str]) -> ReviewFacts:
    rows = await session.execute(select(SkuRow.sku, SkuRow.active).where(SkuRow.sku.in_(skus)))
    flag = await session.scalar(select(CustomerFlagRow.reason).where(CustomerFlagRow.customer_id == customer_id))
    return ReviewFacts(catalogue={sku: active for sku, active in rows}, customer_flag=flag)
