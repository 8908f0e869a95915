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
    """One entry of the timeline, with the order as it stands after it.

    `version` is the workflow's history length when the entry was made: it orders writes across
    workflow tasks, so that a task replacing a lost one overwrites what the lost one wrote.
    """

    event: TimelineEvent
    state: OrderState
    version: int = 0


class ReviewInput(BaseModel):
    order_id: str
    request: OrderRequest
