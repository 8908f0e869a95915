"""The automatic review of an order: approve, reject with reasons, or send to an operator.

Every rule is checked and every reason kept, so an operator or a customer sees the whole
picture at once. Rejections win over manual review; a rejected order lists only why it was rejected.

E-mail addresses are checked by `email-validator` for their form only (no DNS look-up: the
review must not depend on the network). Phone numbers are checked by `phonenumbers` against
the numbering plan of their country: a number written in international form (`+44 …`, or with
the international call prefix of the shipping country, such as `00 44 …` from most of Europe)
is read as such; any other is read as a national number of the shipping address's country.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from models.order import OrderRequest, ReviewDecision, ReviewOutcome


@dataclass(frozen=True)
class ReviewLimits:
    """Order totals that send an order to an operator (above `manual_threshold`) or reject it (above `hard_limit`)."""

    manual_threshold: Decimal
    hard_limit: Decimal


@dataclass(frozen=True)
class ReviewFacts:
    """What the review knows beyond the order itself."""

    # Every SKU of the order the catalogue knows, with whether it is on sale; a SKU missing here is unknown.
    catalogue: Mapping[str, bool] = field(default_factory=dict)
    # Why the customer is flagged for review, or None when they are not.
    customer_flag: str | None = None


def review(order: OrderRequest, facts: ReviewFacts, limits: ReviewLimits) -> ReviewOutcome:
    rejections = [
        *contact_problems(order),
        *catalogue_problems(order.skus, facts.catalogue),
        *hard_limit_problems(order.total, limits),
    ]
    if rejections:
        return ReviewOutcome(decision=ReviewDecision.REJECTED, reasons=rejections)
    concerns = [*threshold_concerns(order.total, limits), *flag_concerns(order.customer.id, facts.customer_flag)]
    if concerns:
        return ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=concerns)
    return ReviewOutcome(decision=ReviewDecision.APPROVED)


def contact_problems(order: OrderRequest) -> list[str]:
    problems = []
    if not email_is_valid(order.customer.email):
        problems.append("customer email is malformed")
    if not phone_is_valid(order.customer.phone, order.shipping_address.country):
        problems.append("customer phone is malformed")
    return problems


def catalogue_problems(skus: list[str], catalogue: Mapping[str, bool]) -> list[str]:
    problems = []
    for sku in skus:
        if sku not in catalogue:
            problems.append(f"unknown SKU {sku}")
        elif not catalogue[sku]:
            problems.append(f"inactive SKU {sku}")
    return problems


def hard_limit_problems(total: Decimal, limits: ReviewLimits) -> list[str]:
    if total > limits.hard_limit:
        return [f"total {money(total)} is above the hard limit {money(limits.hard_limit)}"]
    return []


def threshold_concerns(total: Decimal, limits: ReviewLimits) -> list[str]:
    if total > limits.manual_threshold:
        return [f"total {money(total)} is above the manual review threshold {money(limits.manual_threshold)}"]
    return []


def flag_concerns(customer_id: str, flag: str | None) -> list[str]:
    if flag is None:
        return []
    return [f"customer {customer_id} is flagged for review: {flag}"]


def email_is_valid(email: str) -> bool:
    """An address of a form mail can be sent to; whether its domain exists is not looked up."""
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def phone_is_valid(phone: str, country: str) -> bool:
    """A number the numbering plan of its country assigns; without a country code, `country`'s (ISO 3166 alpha-2)."""
    try:
        number = phonenumbers.parse(phone, country)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


def money(amount: Decimal) -> str:
    return f"{amount:,.2f}"
