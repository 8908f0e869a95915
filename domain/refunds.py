"""The rules of refunds, as pure functions over plain data: tested without a database or Temporal.

- the cap: an order's refunds together never exceed what was invoiced;
- what a refund of lines pays back: each unit's paid share (domain.returns.paid_shares), for no more
  units of a SKU than were ordered and not yet refunded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from domain.returns import paid_shares, units_per_sku
from models.returns import InvoiceShare, RefundLine


class RefundRefused(Exception):
    """A refund the rules do not allow; the message says why."""


class RefundExceedsInvoice(RefundRefused):
    """The refund would take the order's refunded total above what was invoiced."""

    def __init__(self, amount: Decimal, remaining: Decimal, invoiced: Decimal, currency: str) -> None:
        super().__init__(
            f"a refund of {amount:.2f} {currency} exceeds what is left to refund: remaining {remaining:.2f} "
            f"{currency} of the {invoiced:.2f} {currency} invoiced"
        )
        self.remaining = remaining


def remaining(invoiced: Decimal, held: Iterable[Decimal]) -> Decimal:
    """What is still refundable of an invoice, given the amounts its refunds hold."""
    return max(invoiced - sum(held, Decimal("0.00")), Decimal("0.00"))


def check_cap(amount: Decimal, invoiced: Decimal, held: Iterable[Decimal], currency: str) -> None:
    """Refuse a refund above what is left of the invoice once the other refunds are counted."""
    left = remaining(invoiced, held)
    if amount > left:
        raise RefundExceedsInvoice(amount, left, invoiced, currency)


def refunded_units(refunds: Iterable[Iterable[RefundLine]]) -> dict[str, int]:
    """Units per SKU that refunds paid back."""
    units: dict[str, int] = {}
    for lines in refunds:
        for line in lines:
            units[line.sku] = units.get(line.sku, 0) + line.quantity
    return units


def line_refund(
    ordered: Iterable[tuple[str, int, Decimal]],
    refunded: Mapping[str, int],
    wanted: Iterable[tuple[str, int]],
    invoice: InvoiceShare,
) -> list[RefundLine]:
    """The paid share of the units wanted; refused for a SKU not ordered or beyond what is not yet refunded.

    `ordered` is (sku, quantity, unit price) of the order's lines; a SKU on several lines is paid at its
    first line's price, as a return pays it.
    """
    quantities: dict[str, int] = {}
    prices: dict[str, Decimal] = {}
    for sku, quantity, unit_price in ordered:
        quantities[sku] = quantities.get(sku, 0) + quantity
        prices.setdefault(sku, unit_price)
    asked = units_per_sku(wanted)
    for sku, quantity in asked.items():
        if sku not in quantities:
            raise RefundRefused(f"line {sku}: the order has no such SKU")
        left = quantities[sku] - refunded.get(sku, 0)
        if quantity > left:
            raise RefundRefused(
                f"line {sku}: {quantity} asked, but only {left} of the {quantities[sku]} ordered are not yet refunded"
            )
    return paid_shares(((sku, quantity, prices[sku]) for sku, quantity in asked.items()), invoice)
