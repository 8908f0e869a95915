"""Rules of changing an order before it ships, as pure functions over plain data.

Which statuses take a change, how the new list of lines differs from the order's (added,
increased, decreased, removed), and what the review rules' outcome on the changed order means
for the change. The order workflow asks; the activities do the stock and carrier work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from models.order import Address, LineState, OrderLine, OrderStatus, ReviewDecision, ReviewOutcome

# Before the invoice is issued; in `fulfilling` only until then (see why_not_changeable).
CHANGEABLE_STATUSES = (
    OrderStatus.RECEIVED,
    OrderStatus.PENDING_REVIEW,
    OrderStatus.ALLOCATING,
    OrderStatus.BACKORDERED,
    OrderStatus.FULFILLING,
)
# Statuses in which the order may hold stock and a draft booking, which a change adjusts.
ALLOCATED_STATUSES = frozenset({OrderStatus.ALLOCATING, OrderStatus.FULFILLING})


def why_not_changeable(status: OrderStatus, *, invoicing: bool, cancelling: bool) -> str | None:
    """Why an order in `status` cannot be changed now; None when it can."""
    if status not in CHANGEABLE_STATUSES:
        return f"order is {status.value}: it can be changed only before its invoice is issued"
    if invoicing:
        return "the order's invoice is issued: it can no longer be changed"
    if cancelling:
        return "order is being cancelled"
    return None


def change_round(revision: int) -> int:
    """The reservation round of the change to `revision`: negative, so it never meets an allocation round (1, 2...)."""
    return -revision


class LineKind(StrEnum):
    ADDED = "added"
    INCREASED = "increased"
    DECREASED = "decreased"
    REMOVED = "removed"
    REPRICED = "repriced"


@dataclass(frozen=True)
class LineChange:
    line_no: int
    sku: str
    before: int
    after: int

    @property
    def kind(self) -> LineKind:
        if self.before == 0:
            return LineKind.ADDED
        if self.after == 0:
            return LineKind.REMOVED
        if self.after > self.before:
            return LineKind.INCREASED
        if self.after < self.before:
            return LineKind.DECREASED
        return LineKind.REPRICED

    @property
    def moves_stock(self) -> bool:
        return self.before != self.after

    def describe(self) -> str:
        if self.kind == LineKind.ADDED:
            return f"{self.sku} x{self.after} added"
        if self.kind == LineKind.REMOVED:
            return f"{self.sku} removed"
        if self.kind == LineKind.REPRICED:
            return f"{self.sku} repriced"
        return f"{self.sku} {self.before}→{self.after}"


@dataclass(frozen=True)
class LineDiff:
    """The order's lines after the change (numbered), and how each line that differs changed, in SKU order."""

    lines: tuple[LineState, ...]
    changes: tuple[LineChange, ...]

    @property
    def total(self) -> Decimal:
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal("0.00"))

    def of_kind(self, *kinds: LineKind) -> list[LineChange]:
        return [change for change in self.changes if change.kind in kinds]


def diff_lines(current: Sequence[LineState], new: Sequence[OrderLine], last_line_no: int) -> LineDiff:
    """The new list of lines against the order's: a SKU kept keeps its line number, a new SKU gets the next one.

    Line numbers are never reused (`last_line_no` is the highest the order ever had): a number
    names the line's stock reservations, and a removed line's must not be mistaken for a new one's.
    """
    unmatched = list(current)
    lines: list[LineState] = []
    changes: list[LineChange] = []
    for wanted in new:
        kept = next((line for line in unmatched if line.sku == wanted.sku), None)
        if kept is None:
            last_line_no += 1
            lines.append(
                LineState(line_no=last_line_no, sku=wanted.sku, quantity=wanted.quantity, unit_price=wanted.unit_price)
            )
            changes.append(LineChange(line_no=last_line_no, sku=wanted.sku, before=0, after=wanted.quantity))
            continue
        unmatched.remove(kept)
        lines.append(kept.model_copy(update={"quantity": wanted.quantity, "unit_price": wanted.unit_price}, deep=True))
        if kept.quantity != wanted.quantity or kept.unit_price != wanted.unit_price:
            changes.append(LineChange(line_no=kept.line_no, sku=kept.sku, before=kept.quantity, after=wanted.quantity))
    changes.extend(LineChange(line_no=line.line_no, sku=line.sku, before=line.quantity, after=0) for line in unmatched)
    return LineDiff(lines=tuple(lines), changes=tuple(sorted(changes, key=lambda change: (change.sku, change.line_no))))


def changes_nothing(
    current: Sequence[LineState], address: Address, new_lines: Sequence[OrderLine] | None, new_address: Address | None
) -> bool:
    """Whether the change asks for the order as it already stands (or asks for nothing)."""
    same_lines = new_lines is None or [(line.sku, line.quantity, line.unit_price) for line in new_lines] == [
        (line.sku, line.quantity, line.unit_price) for line in current
    ]
    return same_lines and (new_address is None or new_address == address)


def describe(diff: LineDiff, address_changed: bool, revision: int) -> str:
    """The timeline's account of a change: what changed, and the revision it made."""
    parts = [change.describe() for change in diff.changes]
    if address_changed:
        parts.append("new shipping address")
    return f"revision {revision}: " + "; ".join(parts)


class ReviewVerdict(StrEnum):
    GO_ON = "go_on"
    # The changed order waits for an operator, as a new order would; its stock and booking are let go meanwhile.
    SEND_TO_REVIEW = "send_to_review"
    REFUSE = "refuse"


def after_review(outcome: ReviewOutcome, status: OrderStatus) -> ReviewVerdict:
    """What the review rules' outcome on the changed order means for the change, given where the order stands.

    Rejected: the change is refused and the order stays as it was. Manual: an order past its review
    goes back to wait for an operator; one not yet reviewed, or already waiting, is reviewed as it now stands.
    """
    if outcome.decision == ReviewDecision.REJECTED:
        return ReviewVerdict.REFUSE
    if outcome.decision == ReviewDecision.MANUAL and status in (
        OrderStatus.ALLOCATING,
        OrderStatus.BACKORDERED,
        OrderStatus.FULFILLING,
    ):
        return ReviewVerdict.SEND_TO_REVIEW
    return ReviewVerdict.GO_ON
