"""Orders: clients place and follow their own; operators follow, review and cancel them all."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from pydantic import AwareDatetime

from api.auth import client_scope, require_role
from api.deps import KeyringDep, OrdersDep, SessionmakerDep, SettingsDep, TemporalDep
from api.errors import BODY_ERRORS, error_responses
from api.guard import set_audit_target
from api.refund_client import RefundClient
from api.refusals import TooManyRequests
from api.return_client import with_returns
from db.orders import list_orders
from models.changes import ChangeRequest
from models.fields import PRINTABLE_ASCII
from models.order import (
    ID_PATTERN,
    SKU_PATTERN,
    CancelRequest,
    OrderAccepted,
    OrderFilter,
    OrderPage,
    OrderRequest,
    OrderStatus,
    ReviewRequest,
)
from models.refunds import OrderRefundRequest, RefundAccepted
from models.views import OrderView
from security.api_keys import Principal, Role
from security.limits import RateLimiter, retry_after

router = APIRouter(prefix="/orders", tags=["orders"], responses=error_responses(401, 403))

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


async def _within_order_rate(
    request: Request, caller: Annotated[Principal, Depends(require_role(Role.CLIENT))]
) -> Principal:
    limiter: RateLimiter = request.app.state.order_rate
    wait = limiter.admit(caller.key_id)
    if wait is not None:
        raise TooManyRequests("too many orders from this API key; try again later", retry_after=retry_after(wait))
    return caller


IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        min_length=1,
        max_length=64,
        pattern=PRINTABLE_ASCII,
        description='The revision the change is meant for, as GET gave it: "3". Any other revision answers 412.',
    ),
]
REVISION_TAG = re.compile(r'(?:W/)?"?([0-9]{1,9})"?')


def _revision(if_match: str | None) -> int | None:
    """The revision an If-Match names; `*` names any; a tag that is no revision matches none (0)."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = REVISION_TAG.fullmatch(if_match.strip())
    return int(tag.group(1)) if tag else 0


# Clients place orders (admins too, as staff), within the per-key rate limit.
Placer = Annotated[Principal, Depends(_within_order_rate)]
# Clients see and cancel their own orders only; operators all of them.
Follower = Annotated[Principal, Depends(require_role(Role.CLIENT, Role.OPERATOR))]
Reviewer = Annotated[Principal, Depends(require_role(Role.OPERATOR))]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OrderAccepted,
    responses=error_responses(409, *BODY_ERRORS, 503),
)
async def place_order(
    order: OrderRequest,
    request: Request,
    response: Response,
    orders: OrdersDep,
    caller: Placer,
    idempotency_key: IdempotencyKey = None,
) -> OrderAccepted:
    """Accept an order; its workflow takes it from here. Follow it at the Location returned."""
    accepted = await orders.place(order, idempotency_key, client_id=client_scope(caller))
    set_audit_target(request, order_id=accepted.order_id)
    response.headers["Location"] = f"/orders/{accepted.order_id}"
    return accepted


@router.get("", response_model=OrderPage, responses=error_responses(422, 503))
async def get_orders(
    sessionmaker: SessionmakerDep,
    caller: Follower,
    status: OrderStatus | None = None,
    customer_id: Annotated[str | None, Query(min_length=1, max_length=64, pattern=ID_PATTERN)] = None,
    client_id: Annotated[
        str | None,
        Query(min_length=1, max_length=64, pattern=ID_PATTERN, description="Only orders placed by this API client."),
    ] = None,
    sku: Annotated[str | None, Query(min_length=1, max_length=64, pattern=SKU_PATTERN)] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=64, pattern=ID_PATTERN, description="An order id, customer id or SKU."),
    ] = None,
    created_from: Annotated[AwareDatetime | None, Query(description="Placed at or after, with its offset.")] = None,
    created_to: Annotated[AwareDatetime | None, Query(description="Placed before, with its offset.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=500, pattern=r"^[A-Za-z0-9_-]+$")] = None,
) -> OrderPage:
    """Orders newest first (a client's own only), filtered; `q` finds an order id, customer id or SKU;
    pass `next_cursor` back as `cursor` for the next page."""
    own = client_scope(caller)
    if own is not None and client_id not in (None, own):
        return OrderPage(items=[])
    where = OrderFilter(
        status=status,
        customer_id=customer_id,
        client_id=own or client_id,
        sku=sku,
        q=q,
        created_from=created_from,
        created_to=created_to,
    )
    async with sessionmaker.begin() as session:
        return await list_orders(session, where, limit=limit, cursor=cursor)


@router.get("/{order_id}", response_model=OrderView, responses=error_responses(404, 409, 422, 503))
async def get_order(
    order_id: OrderId, orders: OrdersDep, caller: Follower, sessionmaker: SessionmakerDep, response: Response
) -> OrderView:
    """The order as it stands: status, customer, lines with allocations, total, review, shipment, invoice, timeline,
    and its returns, with per line the units delivered and returned; its revision also in ETag, for If-Match."""
    view = await with_returns(await orders.state(order_id, client_id=client_scope(caller)), sessionmaker)
    response.headers["ETag"] = f'"{view.revision}"'
    return view


@router.patch("/{order_id}", response_model=OrderView, responses=error_responses(404, 409, 412, *BODY_ERRORS, 503))
async def change_order(
    order_id: OrderId,
    change: ChangeRequest,
    response: Response,
    orders: OrdersDep,
    caller: Follower,
    if_match: IfMatch = None,
) -> OrderView:
    """Change an order before its invoice is issued: the whole new list of lines, a new shipping address, or both.

    Allowed while the order is received, pending_review, allocating or backordered, and in fulfilling
    until its invoice is issued; 409 with the reason otherwise, or when the review rules or the stock
    refuse the change (the order then stays as it was). The answer is the order as it now stands, with
    its new revision (also in ETag)."""
    changed = await orders.change(
        order_id,
        change,
        expected_revision=_revision(if_match),
        actor=caller.role.value,
        client_id=client_scope(caller),
    )
    response.headers["ETag"] = f'"{changed.revision}"'
    return changed


@router.post("/{order_id}/cancel", response_model=OrderView, responses=error_responses(404, 409, *BODY_ERRORS, 503))
async def cancel_order(order_id: OrderId, cancel: CancelRequest, orders: OrdersDep, caller: Follower) -> OrderView:
    """Cancel an order that has not shipped; 409 with the reason when the order refuses."""
    return await orders.cancel(order_id, cancel.reason, actor=caller.role.value, client_id=client_scope(caller))


@router.post("/{order_id}/review", response_model=OrderView, responses=error_responses(404, 409, *BODY_ERRORS, 503))
async def review_order(order_id: OrderId, review: ReviewRequest, orders: OrdersDep, caller: Reviewer) -> OrderView:
    """An operator's decision on an order waiting for manual review."""
    return await orders.review(
        order_id, approve=review.decision == "approve", note=review.note, actor=caller.role.value
    )


# ---- Refunds without a return (goodwill, claims): operators and admins. ----

RequiredIdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=PRINTABLE_ASCII,
        description="Required: the same key with the same body answers with the first refund, refunded once.",
    ),
]


def _refunds(
    client: TemporalDep, sessionmaker: SessionmakerDep, settings: SettingsDep, keyring: KeyringDep
) -> RefundClient:
    return RefundClient(client, sessionmaker, settings, keyring)


@router.post(
    "/{order_id}/refunds",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RefundAccepted,
    responses=error_responses(404, 409, *BODY_ERRORS, 503),
)
async def refund_order(
    order_id: OrderId,
    body: OrderRefundRequest,
    request: Request,
    response: Response,
    refunds: Annotated[RefundClient, Depends(_refunds)],
    caller: Reviewer,
    idempotency_key: RequiredIdempotencyKey,
) -> RefundAccepted:
    """Refund an invoiced order without a return: the lines' paid share, an amount, or both (the amount holds).

    The order's refunds together never exceed what was invoiced: 409 with the remaining refundable amount.
    The refund's own workflow moves the money through finance with a credit note; follow it on the order.
    """
    accepted = await refunds.request(order_id, body, idempotency_key, owner="", actor=caller.role.value)
    set_audit_target(request, order_id=order_id, refund_id=accepted.refund_id)
    response.headers["Location"] = f"/orders/{order_id}"
    return accepted
