"""Webhook subscriptions and the order events they receive."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from models.order import OrderStatus


class OrderEvent(BaseModel):
    """What a subscriber receives for one entry of an order's timeline: business facts, nothing personal."""

    order_id: str
    status: OrderStatus
    # Position in the order's timeline, from 1; deliveries may arrive out of order, this orders them.
    seq: int
    at: datetime
    # What happened, as the timeline says it, e.g. "handed to the carrier".
    event: str


class WebhookSubscription(BaseModel):
    subscription_id: str
    url: str
    # Order statuses sent; empty means every one.
    events: list[OrderStatus]
    created_at: datetime


class NewWebhookSubscription(WebhookSubscription):
    """A subscription just made, with the secret its deliveries are signed with: shown this once."""

    secret: str


class WebhookSubscriptionList(BaseModel):
    items: list[WebhookSubscription]
