"""The rules of a SKU's demand ledger, as pure functions over the list of waiting orders.

The list is in queue order: first come, first served. An order keeps its place from its first
report until it has allocated or withdrawn; waking it sets its units aside for it rather than
forgetting it, so that an order that loses the stock to another and reports again is still first.
The replenishment workflow applies these rules; they are tested without Temporal.
"""

from __future__ import annotations

from datetime import datetime

from models.purchasing import ShortageReport, WaitingOrder


def take_report(
    waiting: list[WaitingOrder], report: ShortageReport, now: datetime
) -> tuple[list[WaitingOrder], WaitingOrder | None]:
    """The list with the report applied, and the order's entry if the report is news (None for a repeat).

    A new order joins at the back. An order already listed keeps its place and its since; it is
    waiting again (no longer woken), with the quantity of the report. A report of the same round
    and quantity as the last is a repeat (an order's report may be delivered twice).
    """
    current = next((entry for entry in waiting if entry.order_id == report.order_id), None)
    if current is None:
        entry = WaitingOrder(order_id=report.order_id, quantity=report.quantity, since=now, round=report.round)
        return [*waiting, entry], entry
    if (current.round, current.quantity) == (report.round, report.quantity):
        return waiting, None
    entry = current.model_copy(update={"quantity": report.quantity, "round": report.round, "woken_at": None})
    return [entry if other is current else other for other in waiting], entry


def orders_to_wake(waiting: list[WaitingOrder], available: int) -> list[str]:
    """The waiting orders that `available` units cover, first come, first served.

    Units set aside for orders woken before count as taken. A later order never overtakes one
    the stock cannot cover yet.
    """
    available -= sum(entry.quantity for entry in waiting if entry.woken_at is not None)
    chosen: list[str] = []
    for entry in waiting:
        if entry.woken_at is not None:
            continue
        if entry.quantity > available:
            break
        available -= entry.quantity
        chosen.append(entry.order_id)
    return chosen


def mark_woken(waiting: list[WaitingOrder], order_ids: list[str], now: datetime) -> list[WaitingOrder]:
    """The list with these orders marked woken at `now`, in their places."""
    return [entry.model_copy(update={"woken_at": now}) if entry.order_id in order_ids else entry for entry in waiting]


def keeps_place_when_woken(entry: WaitingOrder) -> bool:
    """Whether the order tells the run when it has allocated; one that does not is forgotten as it is woken."""
    return entry.round is not None


def without(waiting: list[WaitingOrder], order_ids: list[str]) -> list[WaitingOrder]:
    return [entry for entry in waiting if entry.order_id not in order_ids]
