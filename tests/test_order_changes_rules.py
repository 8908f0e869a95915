"""The rules of changing an order (domain/changes.py), without a database or Temporal."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.changes import (
    LineKind,
    ReviewVerdict,
    after_review,
    changes_nothing,
    describe,
    diff_lines,
    why_not_changeable,
)
from models.order import LineState, OrderLine, OrderStatus, ReviewDecision, ReviewOutcome
from tests import builders

PRICE = Decimal("12.50")


def placed(**quantities: int) -> list[LineState]:
    return [
        LineState(line_no=no, sku=sku, quantity=quantity, unit_price=PRICE)
        for no, (sku, quantity) in enumerate(quantities.items(), start=1)
    ]


def wanted(**quantities: int) -> list[OrderLine]:
    return [OrderLine(sku=sku, quantity=quantity, unit_price=PRICE) for sku, quantity in quantities.items()]


def test_the_diff_names_each_added_increased_decreased_and_removed_line_in_sku_order() -> None:
    diff = diff_lines(placed(**{"MUG-1": 2, "TEE-2": 1, "HAT-3": 4}), wanted(**{"TEE-2": 3, "MUG-1": 1, "CUP-9": 2}), 3)

    assert [(change.sku, change.kind, change.before, change.after) for change in diff.changes] == [
        ("CUP-9", LineKind.ADDED, 0, 2),
        ("HAT-3", LineKind.REMOVED, 4, 0),
        ("MUG-1", LineKind.DECREASED, 2, 1),
        ("TEE-2", LineKind.INCREASED, 1, 3),
    ]
    # Kept lines keep their numbers, in the new list's order; a new SKU gets a number never used before.
    assert [(line.line_no, line.sku) for line in diff.lines] == [(2, "TEE-2"), (1, "MUG-1"), (4, "CUP-9")]
    assert diff.total == Decimal("75.00")
    assert describe(diff, address_changed=True, revision=2) == (
        "revision 2: CUP-9 x2 added; HAT-3 removed; MUG-1 2→1; TEE-2 1→3; new shipping address"
    )


def test_a_line_number_is_never_reused_after_its_line_was_removed() -> None:
    diff = diff_lines(placed(**{"MUG-1": 2}), wanted(**{"MUG-1": 2, "TEE-2": 1}), last_line_no=5)

    assert [line.line_no for line in diff.lines] == [1, 6]


@pytest.mark.parametrize("status", ["received", "pending_review", "allocating", "backordered", "fulfilling"])
def test_a_change_is_allowed_before_the_invoice(status: str) -> None:
    assert why_not_changeable(OrderStatus(status), invoicing=False, cancelling=False) is None


@pytest.mark.parametrize("status", ["shipped", "delivered", "cancelled", "rejected", "failed"])
def test_a_change_is_refused_with_the_reason_once_the_order_has_left(status: str) -> None:
    reason = why_not_changeable(OrderStatus(status), invoicing=False, cancelling=False)

    assert reason == f"order is {status}: it can be changed only before its invoice is issued"


def test_a_change_is_refused_once_the_invoice_is_issued_or_while_cancelling() -> None:
    assert "invoice is issued" in str(why_not_changeable(OrderStatus.FULFILLING, invoicing=True, cancelling=False))
    assert why_not_changeable(OrderStatus.ALLOCATING, invoicing=False, cancelling=True) == "order is being cancelled"


def test_the_review_outcome_refuses_sends_back_or_lets_the_change_go_on() -> None:
    rejected = ReviewOutcome(decision=ReviewDecision.REJECTED, reasons=["unknown SKU"])
    manual = ReviewOutcome(decision=ReviewDecision.MANUAL, reasons=["total above 10,000.00"])
    approved = ReviewOutcome(decision=ReviewDecision.APPROVED)

    assert after_review(rejected, OrderStatus.PENDING_REVIEW) == ReviewVerdict.REFUSE
    assert after_review(manual, OrderStatus.FULFILLING) == ReviewVerdict.SEND_TO_REVIEW
    assert after_review(manual, OrderStatus.BACKORDERED) == ReviewVerdict.SEND_TO_REVIEW
    # Not reviewed yet, or waiting for an operator already: the order is reviewed as it now stands.
    assert after_review(manual, OrderStatus.PENDING_REVIEW) == ReviewVerdict.GO_ON
    assert after_review(manual, OrderStatus.RECEIVED) == ReviewVerdict.GO_ON
    assert after_review(approved, OrderStatus.ALLOCATING) == ReviewVerdict.GO_ON


def test_a_change_asking_for_the_order_as_it_stands_changes_nothing() -> None:
    address = builders.order_request().shipping_address

    assert changes_nothing(placed(**{"MUG-1": 2}), address, wanted(**{"MUG-1": 2}), address)
    assert changes_nothing(placed(**{"MUG-1": 2}), address, None, None)
    assert not changes_nothing(placed(**{"MUG-1": 2}), address, wanted(**{"MUG-1": 3}), None)
