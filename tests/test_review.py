"""The review step against PostgreSQL: it reads the catalogue and the customer's flag, and the rules decide.

The rules themselves, each boundary and format, are specified without a database in test_review_rules.py.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.review import ReviewActivities
from models.order import ReviewDecision, ReviewOutcome
from models.records import ReviewInput
from models.tables import CustomerFlagRow, SkuRow
from settings import Settings
from tests.builders import line, order_request

Sessions = async_sessionmaker[AsyncSession]
SETTINGS = Settings(review_manual_threshold=Decimal("10000.00"), review_hard_limit=Decimal("1000000.00"))


@pytest.fixture
async def catalogue(sessionmaker: Sessions) -> Sessions:
    async with sessionmaker.begin() as session:
        await session.execute(
            insert(SkuRow),
            [
                {"sku": "MUG-1", "name": "Mug", "active": True},
                {"sku": "TEA-1", "name": "Tea", "active": True},
                {"sku": "OLD-1", "name": "Retired kettle", "active": False},
            ],
        )
        await session.execute(insert(CustomerFlagRow).values(customer_id="c-flagged", reason="chargeback in 2025"))
    return sessionmaker


def order(
    *,
    email: str = "ada@example.com",
    phone: str = "+44 20 7946 0000",
    customer_id: str = "c-1",
    country: str = "GB",
    lines: list[tuple[str, int, str]] | None = None,
) -> ReviewInput:
    return ReviewInput(
        order_id="o-1",
        request=order_request(
            customer={"id": customer_id, "email": email, "phone": phone},
            address={"country": country},
            lines=[line(*each) for each in lines or [("MUG-1", 2, "12.50"), ("TEA-1", 1, "4.00")]],
        ),
    )


async def review(sessionmaker: Sessions, request: ReviewInput) -> ReviewOutcome:
    return await ReviewActivities(sessionmaker, SETTINGS).review_order(request)


async def test_an_ordinary_order_is_approved(catalogue: Sessions) -> None:
    outcome = await review(catalogue, order())
    assert (outcome.decision, outcome.reasons) == (ReviewDecision.APPROVED, [])


async def test_unknown_and_inactive_skus_are_rejected(catalogue: Sessions) -> None:
    outcome = await review(catalogue, order(lines=[("MUG-1", 1, "5.00"), ("NEW-9", 1, "5.00"), ("OLD-1", 1, "5.00")]))
    assert outcome.decision is ReviewDecision.REJECTED
    assert outcome.reasons == ["unknown SKU NEW-9", "inactive SKU OLD-1"]


async def test_every_reason_is_given_at_once(catalogue: Sessions) -> None:
    outcome = await review(
        catalogue,
        order(
            email="not-an-email",
            phone="12",
            customer_id="c-flagged",
            lines=[("GHOST-1", 1, "600000.00"), ("OLD-1", 1, "600000.00")],
        ),
    )
    assert outcome.decision is ReviewDecision.REJECTED
    assert outcome.reasons == [
        "customer email is malformed",
        "customer phone is malformed",
        "unknown SKU GHOST-1",
        "inactive SKU OLD-1",
        "total 1,200,000.00 is above the hard limit 1,000,000.00",
    ]


async def test_a_flagged_customer_goes_to_an_operator(catalogue: Sessions) -> None:
    outcome = await review(catalogue, order(customer_id="c-flagged"))
    assert outcome.decision is ReviewDecision.MANUAL
    assert outcome.reasons == ["customer c-flagged is flagged for review: chargeback in 2025"]


async def test_a_flagged_customer_above_the_threshold_gets_both_reasons(catalogue: Sessions) -> None:
    outcome = await review(catalogue, order(customer_id="c-flagged", lines=[("MUG-1", 1, "50000.00")]))
    assert outcome.decision is ReviewDecision.MANUAL
    assert outcome.reasons == [
        "total 50,000.00 is above the manual review threshold 10,000.00",
        "customer c-flagged is flagged for review: chargeback in 2025",
    ]


async def test_the_limits_come_from_settings(catalogue: Sessions) -> None:
    strict = Settings(review_manual_threshold=Decimal("10.00"), review_hard_limit=Decimal("20.00"))
    rules = ReviewActivities(catalogue, strict)

    assert (await rules.review_order(order(lines=[("MUG-1", 1, "10.00")]))).decision is ReviewDecision.APPROVED
    assert (await rules.review_order(order(lines=[("MUG-1", 1, "15.00")]))).decision is ReviewDecision.MANUAL
    assert (await rules.review_order(order(lines=[("MUG-1", 1, "25.00")]))).reasons == [
        "total 25.00 is above the hard limit 20.00"
    ]


async def test_a_national_phone_is_read_in_the_shipping_country(catalogue: Sessions) -> None:
    in_london = order(phone="020 7946 0000", country="GB")
    in_new_york = order(phone="020 7946 0000", country="US")
    assert (await review(catalogue, in_london)).decision is ReviewDecision.APPROVED
    assert (await review(catalogue, in_new_york)).reasons == ["customer phone is malformed"]
