"""Webhooks of outside systems: the carrier reports tracking events here."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import OrdersDep
from api.errors import BODY_ERRORS, error_responses
from api.schemas import Accepted
from models.order import TrackingEvent

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "/carrier",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(404, *BODY_ERRORS, 503),
)
async def carrier_event(event: TrackingEvent, orders: OrdersDep) -> Accepted:
    """A tracking event for an order; one for an order that has already finished is accepted and dropped."""
    await orders.track(event)
    return Accepted()
