"""The rules of returns, as pure functions over plain data: tested without a database or Temporal.

- what may still be returned of an order (delivered minus what other returns already cover);
- whether a return needs an operator's review;
- what a receipt may hold (never more than is still expected);
- what is refunded for the units received: each unit's price plus its share of the invoice's tax.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from models.returns import InvoiceShare, ReceiptLine, RefundLine, ReturnLine, ReturnReason

CENT = Decimal("0.01")


class ReturnRefused(Exception):
    """A return or receipt the rules do not allow; the message says why and names the line."""


def returnable(delivered: Mapping[str, int], covered: Mapping[str, int], wanted: Iterable[tuple[str, int]]) -> None:
    """Refuse unless every SKU wanted is within what was delivered and not yet covered by another return."""
    asked = units_per_sku(wanted)
    for sku, quantity in asked.items():
        if sku not in delivered:
            raise ReturnRefused(f"line {sku}: the order has no such SKU")
        left = delivered[sku] - covered.get(sku, 0)
        if quantity > left:
            raise ReturnRefused(
                f"line {sku}: {quantity} asked, but only {left} of the {delivered[sku]} delivered may still be returned"
            )


def units_per_sku(items: Iterable[tuple[str, int]]) -> dict[str, int]:
    """(sku, quantity) pairs added up per SKU, in the order the SKUs first come."""
    units: dict[str, int] = {}
    for sku, quantity in items:
        units[sku] = units.get(sku, 0) + quantity
    return units


def within_window(delivered_at: datetime, now: datetime, window_days: int) -> bool:
    return now - delivered_at <= timedelta(days=window_days)


def return_value(lines: Iterable[ReturnLine]) -> Decimal:
    """The goods' value before tax, as the review threshold compares it."""
    return sum((line.unit_price * line.quantity for line in lines), Decimal("0.00"))


def review_reasons(lines: list[ReturnLine], threshold: Decimal) -> list[str]:
    """Why an operator must look at the return first; empty when it is approved at once."""
    reasons = []
    value = return_value(lines)
    if value > threshold:
        reasons.append(f"value {value:.2f} above {threshold:.2f}")
    if any(line.reason == ReturnReason.OTHER for line in lines):
        reasons.append("reason 'other'")
    return reasons


def outstanding(lines: Iterable[ReturnLine]) -> dict[str, int]:
    """Units per SKU the warehouse still expects."""
    left: dict[str, int] = {}
    for line in lines:
        left[line.sku] = left.get(line.sku, 0) + line.quantity - line.received
    return left


def check_receipt(lines: list[ReturnLine], receipt: list[ReceiptLine]) -> None:
    """Refuse a receipt holding a SKU not in the return or more units than are still expected."""
    left = outstanding(lines)
    counted: dict[str, int] = {}
    for item in receipt:
        counted[item.sku] = counted.get(item.sku, 0) + item.quantity
    for sku, quantity in counted.items():
        if sku not in left:
            raise ReturnRefused(f"line {sku}: not part of this return")
        if quantity > left[sku]:
            raise ReturnRefused(f"line {sku}: {quantity} received, but only {left[sku]} still expected")


def apply_receipt(lines: list[ReturnLine], receipt: list[ReceiptLine]) -> None:
    """Book the receipt on the return's lines, first line of a SKU first (check_receipt first)."""
    for item in receipt:
        units = item.quantity
        for line in lines:
            if line.sku != item.sku or units == 0:
                continue
            take = min(units, line.quantity - line.received)
            line.received += take
            if item.condition == "resellable":
                line.resellable += take
            else:
                line.damaged += take
            units -= take


def refund_lines(lines: Iterable[ReturnLine], invoice: InvoiceShare) -> list[RefundLine]:
    """What each line's received units were paid: the unit price plus its share of the invoice's tax."""
    return paid_shares(((line.sku, line.received, line.unit_price) for line in lines), invoice)


def paid_shares(units: Iterable[tuple[str, int, Decimal]], invoice: InvoiceShare) -> list[RefundLine]:
    """What (sku, quantity, unit price) were paid: the net price plus its share of the invoice's tax.

    The tax of an invoice falls on its goods and shipping alike, at one rate: the goods' share is
    their net value times tax / (subtotal + shipping), rounded half up to the cent once for all of
    them and handed to the lines cumulatively, so the shares add up to it and the refund of goods
    never exceeds what was invoiced for them, however the cents fall.
    """
    taxed_base = invoice.total - invoice.tax
    refunds = []
    net_so_far = Decimal("0.00")
    tax_so_far = Decimal("0.00")
    for sku, quantity, unit_price in units:
        if quantity == 0:
            continue
        net = unit_price * quantity
        net_so_far += net
        tax_until_now = (
            (net_so_far * invoice.tax / taxed_base).quantize(CENT, rounding=ROUND_HALF_UP)
            if taxed_base
            else Decimal("0.00")
        )
        tax, tax_so_far = tax_until_now - tax_so_far, tax_until_now
        refunds.append(RefundLine(sku=sku, quantity=quantity, amount=(net + tax).quantize(CENT)))
    return refunds


def refund_total(lines: Iterable[RefundLine]) -> Decimal:
    return sum((line.amount for line in lines), Decimal("0.00"))
