"""Contracts of the order record steps: the order row, its status changes and its review."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from models.order import OrderRequest, OrderState, TimelineEvent


class RecordOrderInput(BaseModel):
    order_id: str
    workflow_id: str
    request: OrderRequest
    received_at: datetime
    client_id: str | None = None


class StatusChangeInput(BaseModel):
    """One entry of the timeline, with the order as it stands after it."""

    event: TimelineEvent
    state: OrderState


class ReviewInput(BaseModel):
    order_id: str
    request: OrderRequest
