"""Webhook subscriptions and the events they receive: an order's, and its returns' and refunds'."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, WithJsonSchema

from models.order import OrderStatus
from models.refunds import RefundStatus
from models.returns import ReturnStatus

RETURN_EVENT_PREFIX = "return."
REFUND_EVENT_PREFIX = "refund."
# What a subscription may ask for: an order's status as it stands ("shipped"), or a return's or a
# refund's, prefixed ("return.received", "refund.refunded").
EVENT_NAMES: tuple[str, ...] = (
    *(status.value for status in OrderStatus),
    *(f"{RETURN_EVENT_PREFIX}{status.value}" for status in ReturnStatus),
    *(f"{REFUND_EVENT_PREFIX}{status.value}" for status in RefundStatus),
)


def _known_event(name: str) -> str:
    if name not in EVENT_NAMES:
        raise ValueError(f"unknown event {name!r}: an order status, return.<status> or refund.<status>")
    return name


EventName = Annotated[str, AfterValidator(_known_event), WithJsonSchema({"type": "string", "enum": list(EVENT_NAMES)})]


class OrderEvent(BaseModel):
    """What a subscriber receives for one entry of an order's timeline: business facts, nothing personal."""

    order_id: str
    status: OrderStatus
    # Position in the order's timeline, from 1; deliveries may arrive out of order, this orders them.
    seq: int
    at: datetime
    # What happened, as the timeline says it, e.g. "handed to the carrier".
    event: str


class ReturnWebhookEvent(BaseModel):
    """What a subscriber receives when a return of an order changes status (`type` return.<status>)."""

    type: str
    order_id: str
    return_id: str
    status: ReturnStatus
    # Position in the return's timeline, from 1.
    seq: int
    at: datetime
    event: str


class RefundWebhookEvent(BaseModel):
    """What a subscriber receives when a refund of an order changes status (`type` refund.<status>)."""

    type: str
    order_id: str
    refund_id: str
    # The return it refunds; null for a refund without a return.
    return_id: str | None = None
    status: RefundStatus
    amount: Decimal
    currency: str
    credit_note: str | None = None
    # 1 when requested, 2 once refunded or failed.
    seq: int
    at: datetime
    event: str


class WebhookSubscription(BaseModel):
    subscription_id: str
    url: str
    # Events sent (see EVENT_NAMES); empty means every one.
    events: list[EventName]
    created_at: datetime


class NewWebhookSubscription(WebhookSubscription):
    """A subscription just made, with the secret its deliveries are signed with: shown this once."""

    secret: str


class WebhookSubscriptionList(BaseModel):
    items: list[WebhookSubscription]
