"""The review step: read what the rules need, let them decide (domain/review.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from db.review import read_review_facts
from domain.review import ReviewLimits, review
from models.order import ReviewOutcome
from models.records import ReviewInput
from settings import Settings


class ReviewActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessionmaker = sessionmaker
        self._limits = ReviewLimits(
            manual_threshold=settings.review_manual_threshold, hard_limit=settings.review_hard_limit
        )

    @activity.defn
    async def review_order(self, request: ReviewInput) -> ReviewOutcome:
        order = request.request
        async with self._sessionmaker() as session:
            facts = await read_review_facts(session, order.customer.id, order.skus)
        return review(order, facts, self._limits)
