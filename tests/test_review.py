"""The automatic review as a customer or operator sees its outcome: the decision and every reason for it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.review import ReviewActivities
from models.order import Address, Customer, OrderLine, OrderRequest, ReviewDecision, ReviewOutcome
from models.records import ReviewInput
from models.tables import CustomerFlagRow, SkuRow
from settings import Settings

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
    lines: list[tuple[str, int, str]] | None = None,
) -> ReviewInput:
    return ReviewInput(
        order_id="o-1",
        request=OrderRequest(
            customer=Customer(id=customer_id, name="Ada Lovelace", email=email, phone=phone),
            lines=[
                OrderLine(sku=sku, quantity=quantity, unit_price=Decimal(price))
                for sku, quantity, price in lines or [("MUG-1", 2, "12.50"), ("TEA-1", 1, "4.00")]
            ],
            shipping_address=Address(name="Ada", line1="1 Main St", city="London", postal_code="N1", country="GB"),
        ),
    )


async def review(sessionmaker: Sessions, request: ReviewInput) -> ReviewOutcome:
    return await ReviewActivities(sessionmaker, SETTINGS).review_order(request)


async def test_an_ordinary_order_is_approved(catalogue: Sessions) -> None:
    outcome = await review(catalogue, order())
    assert (outcome.decision, outcome.reasons) == (ReviewDecision.APPROVED, [])


@pytest.mark.parametrize(
    "email", ["ada", "ada@example", "ada @example.com", "ada@@example.com", "@example.com", "ada@.com", "a..b@x.io", ""]
)
async def test_a_malformed_email_is_rejected(catalogue: Sessions, email: str) -> None:
    outcome = await review(catalogue, order(email=email))
    assert (outcome.decision, outcome.reasons) == (ReviewDecision.REJECTED, ["customer email is malformed"])


@pytest.mark.parametrize("email", ["first.last+tag@sub.example.co.uk", "x_y@mail-host.io", "A1@EXAMPLE.ORG"])
async def test_ordinary_emails_pass(catalogue: Sessions, email: str) -> None:
    assert (await review(catalogue, order(email=email))).decision is ReviewDecision.APPROVED


@pytest.mark.parametrize("phone", ["123456", "+1234567890123456", "phone", "+44 20 7946 000x", "44+2079460000", ""])
async def test_a_malformed_phone_is_rejected(catalogue: Sessions, phone: str) -> None:
    outcome = await review(catalogue, order(phone=phone))
    assert (outcome.decision, outcome.reasons) == (ReviewDecision.REJECTED, ["customer phone is malformed"])


@pytest.mark.parametrize("phone", ["+442079460000", "(555) 123-4567", "06 12 34 56 78", "1234567", "+1-800-555-0199"])
async def test_ordinary_phones_pass(catalogue: Sessions, phone: str) -> None:
    assert (await review(catalogue, order(phone=phone))).decision is ReviewDecision.APPROVED


async def test_unknown_and_inactive_skus_are_rejected(catalogue: Sessions) -> None:
    outcome = await review(catalogue, order(lines=[("MUG-1", 1, "5.00"), ("NEW-9", 1, "5.00"), ("OLD-1", 1, "5.00")]))
    assert outcome.decision is ReviewDecision.REJECTED
    assert outcome.reasons == ["unknown SKU NEW-9", "inactive SKU OLD-1"]


async def test_a_total_above_the_hard_limit_is_rejected(catalogue: Sessions) -> None:
    outcome = await review(catalogue, order(lines=[("MUG-1", 2, "600000.00")]))
    assert outcome.decision is ReviewDecision.REJECTED
    assert outcome.reasons == ["total 1,200,000.00 is above the hard limit 1,000,000.00"]


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


async def test_a_total_exactly_at_the_threshold_is_approved(catalogue: Sessions) -> None:
    outcome = await review(catalogue, order(lines=[("MUG-1", 4, "2000.00"), ("TEA-1", 1, "2000.00")]))
    assert (outcome.decision, outcome.reasons) == (ReviewDecision.APPROVED, [])


async def test_a_total_just_above_the_threshold_goes_to_an_operator(catalogue: Sessions) -> None:
    outcome = await review(catalogue, order(lines=[("MUG-1", 4, "2000.00"), ("TEA-1", 1, "2000.01")]))
    assert outcome.decision is ReviewDecision.MANUAL
    assert outcome.reasons == ["total 10,000.01 is above the manual review threshold 10,000.00"]


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
