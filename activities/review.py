"""The automatic review rules: approve, reject with reasons, or send to an operator.

Every rule is checked and every reason kept, so an operator or a customer sees the whole
picture at once. Rejections win over manual review; a rejected order lists only why it was rejected.
"""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from models.order import OrderRequest, ReviewDecision, ReviewOutcome
from models.records import ReviewInput
from models.tables import CustomerFlagRow, SkuRow
from settings import Settings

EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
)
# Digits with the usual separators, an optional leading +.
PHONE_SHAPE = re.compile(r"^\+?[0-9 ()-]+$")


def email_is_valid(email: str) -> bool:
    return EMAIL.match(email) is not None and ".." not in email


def phone_is_valid(phone: str) -> bool:
    digits = sum(char.isdigit() for char in phone)
    return PHONE_SHAPE.match(phone) is not None and 7 <= digits <= 15


def money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


class ReviewActivities:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings

    @activity.defn
    async def review_order(self, request: ReviewInput) -> ReviewOutcome:
        order = request.request
        async with self._sessionmaker() as session:
            rejections = self._contact_problems(order) + await self._catalogue_problems(session, order)
            if order.total > self._settings.review_hard_limit:
                rejections.append(
                    f"total {money(order.total)} is above the hard limit {money(self._settings.review_hard_limit)}"
                )
            if rejections:
                return ReviewOutcome(decision=ReviewDecision.REJECTED, reasons=rejections)

            concerns: list[str] = []
            if order.total > self._settings.review_manual_threshold:
                concerns.append(
                    f"total {money(order.total)} is above the manual review threshold "
                    f"{money(self._settings.review_manual_threshold)}"
                )
            flag = await session.scalar(
                select(CustomerFlagRow.reason).where(CustomerFlagRow.customer_id == order.customer.id)
            )
            if flag is not None:
                concerns.append(f"customer {order.customer.id} is flagged for review: {flag}")
        if concerns:
            return ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=concerns)
        return ReviewOutcome(decision=ReviewDecision.APPROVED)

    @staticmethod
    def _contact_problems(order: OrderRequest) -> list[str]:
        problems = []
        if not email_is_valid(order.customer.email):
            problems.append("customer email is malformed")
        if not phone_is_valid(order.customer.phone):
            problems.append("customer phone is malformed")
        return problems

    @staticmethod
    async def _catalogue_problems(session: AsyncSession, order: OrderRequest) -> list[str]:
        skus = order.skus
        rows = await session.execute(select(SkuRow.sku, SkuRow.active).where(SkuRow.sku.in_(skus)))
        known = {sku: active for sku, active in rows}
        problems = []
        for sku in skus:
            if sku not in known:
                problems.append(f"unknown SKU {sku}")
            elif not known[sku]:
                problems.append(f"inactive SKU {sku}")
        return problems
