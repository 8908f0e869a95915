"""RFM segments: customers grouped by how recently, how often and for how much they bought in a period.

Rules over plain numbers, in the order they are tried; the first that holds names the segment.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    name: str
    meaning: str


CHAMPIONS = Segment("champions", "bought within 30 days, three or more orders")
LOYAL = Segment("loyal", "three or more orders, the last within 90 days")
NEW = Segment("new", "one order, within 30 days")
PROMISING = Segment("promising", "two orders, the last within 60 days")
AT_RISK = Segment("at_risk", "two or more orders, the last over 60 days ago")
DORMANT = Segment("dormant", "one order, over 30 days ago")
SEGMENTS = (CHAMPIONS, LOYAL, NEW, PROMISING, AT_RISK, DORMANT)


def segment(recency_days: int, orders: int) -> Segment:
    """The segment of a customer whose last order was `recency_days` before the period's end."""
    if orders >= 3 and recency_days <= 30:
        return CHAMPIONS
    if orders >= 3 and recency_days <= 90:
        return LOYAL
    if orders == 1:
        return NEW if recency_days <= 30 else DORMANT
    if recency_days <= 60:
        return PROMISING
    return AT_RISK
