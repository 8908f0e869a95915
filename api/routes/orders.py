"""Orders: place one, follow it, list them, and let operators review or cancel it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response, status

from api.deps import OrdersDep, SessionmakerDep
from api.errors import BODY_ERRORS, error_responses
from db.orders import list_orders
from models.fields import PRINTABLE_ASCII
from models.order import (
    ID_PATTERN,
    SKU_PATTERN,
    CancelRequest,
    OrderAccepted,
    OrderPage,
    OrderRequest,
    OrderState,
    OrderStatus,
    ReviewRequest,
)

router = APIRouter(prefix="/orders", tags=["orders"])

OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=PRINTABLE_ASCII,
        description="Sending the same key with the same body again returns the first order instead of a new one.",
    ),
]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OrderAccepted,
    responses=error_responses(409, *BODY_ERRORS, 503),
)
async def place_order(
    request: OrderRequest, response: Response, orders: OrdersDep, idempotency_key: IdempotencyKey = None
) -> OrderAccepted:
    """Accept an order; its workflow takes it from here. Follow it at the Location returned."""
    accepted = await orders.place(request, idempotency_key)
    response.headers["Location"] = f"/orders/{accepted.order_id}"
    return accepted


@router.get("", response_model=OrderPage, responses=error_responses(422, 503))
async def get_orders(
    sessionmaker: SessionmakerDep,
    status: OrderStatus | None = None,
    customer_id: Annotated[str | None, Query(min_length=1, max_length=64, pattern=ID_PATTERN)] = None,
    sku: Annotated[str | None, Query(min_length=1, max_length=64, pattern=SKU_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=500, pattern=r"^[A-Za-z0-9_-]+$")] = None,
) -> OrderPage:
    """Orders newest first; pass `next_cursor` back as `cursor` for the next page."""
    async with sessionmaker.begin() as session:
        return await list_orders(session, status=status, customer_id=customer_id, sku=sku, limit=limit, cursor=cursor)


@router.get("/{order_id}", response_model=OrderState, responses=error_responses(404, 409, 422, 503))
async def get_order(order_id: OrderId, orders: OrdersDep) -> OrderState:
    return await orders.state(order_id)


@router.post("/{order_id}/cancel", response_model=OrderState, responses=error_responses(404, 409, *BODY_ERRORS, 503))
async def cancel_order(order_id: OrderId, request: CancelRequest, orders: OrdersDep) -> OrderState:
    """Cancel an order that has not shipped; 409 with the reason when the order refuses."""
    return await orders.cancel(order_id, request.reason)


@router.post("/{order_id}/review", response_model=OrderState, responses=error_responses(404, 409, *BODY_ERRORS, 503))
async def review_order(order_id: OrderId, request: ReviewRequest, orders: OrdersDep) -> OrderState:
    """An operator's decision on an order waiting for manual review."""
    return await orders.review(order_id, approve=request.decision == "approve", note=request.note)
