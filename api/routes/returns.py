"""Returns (RMA): clients return goods of their own delivered orders; operators review, receive and follow them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status

from api.auth import client_scope, require_role
from api.deps import KeyringDep, SessionmakerDep, SettingsDep, TemporalDep
from api.errors import BODY_ERRORS, error_responses
from api.guard import set_audit_target
from api.return_client import ReturnClient
from db.returns import list_returns
from models import names
from models.fields import PRINTABLE_ASCII
from models.order import ID_PATTERN
from models.returns import (
    CancelReturnCommand,
    ReceiveCommand,
    RefundRetryRequest,
    ReturnAccepted,
    ReturnCancelRequest,
    ReturnPage,
    ReturnReceiptRequest,
    ReturnRequest,
    ReturnReviewRequest,
    ReturnStatus,
    ReturnView,
    ReviewReturnCommand,
)
from security.api_keys import Principal, Role

router = APIRouter(tags=["returns"], responses=error_responses(401, 403))

EntityId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=PRINTABLE_ASCII,
        description="Sending the same key with the same body again answers with the first result, applied once.",
    ),
]
# Clients return and follow their own orders' goods; operators all of them.
Follower = Annotated[Principal, Depends(require_role(Role.CLIENT, Role.OPERATOR))]
# Operators review and receive.
Operator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]


def _returns(
    client: TemporalDep, sessionmaker: SessionmakerDep, settings: SettingsDep, keyring: KeyringDep
) -> ReturnClient:
    return ReturnClient(client, sessionmaker, settings, keyring)


ReturnsDep = Annotated[ReturnClient, Depends(_returns)]


@router.post(
    "/orders/{order_id}/returns",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReturnAccepted,
    responses=error_responses(404, 409, *BODY_ERRORS, 503),
)
async def request_return(
    order_id: EntityId,
    body: ReturnRequest,
    request: Request,
    response: Response,
    returns: ReturnsDep,
    caller: Follower,
    idempotency_key: IdempotencyKey = None,
) -> ReturnAccepted:
    """Return goods of a delivered order within the return window; 409 naming the line asked beyond what is left."""
    accepted = await returns.request(
        order_id, body, idempotency_key, client_id=client_scope(caller), actor=caller.role.value
    )
    set_audit_target(request, order_id=order_id, return_id=accepted.return_id)
    response.headers["Location"] = f"/returns/{accepted.return_id}"
    return accepted


@router.get("/returns", response_model=ReturnPage, responses=error_responses(422, 503))
async def get_returns(
    sessionmaker: SessionmakerDep,
    caller: Follower,
    status: ReturnStatus | None = None,
    order_id: Annotated[str | None, Query(min_length=1, max_length=64, pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=500, pattern=r"^[A-Za-z0-9_-]+$")] = None,
) -> ReturnPage:
    """Returns newest first (a client's own only); pass `next_cursor` back as `cursor` for the next page."""
    async with sessionmaker.begin() as session:
        return await list_returns(
            session, status=status, order_id=order_id, client_id=client_scope(caller), limit=limit, cursor=cursor
        )


@router.get("/returns/{return_id}", response_model=ReturnView, responses=error_responses(404, 422, 503))
async def get_return(return_id: EntityId, returns: ReturnsDep, caller: Follower) -> ReturnView:
    """The whole return: lines and their conditions, label and tracking, receipts, refund, timeline."""
    return ReturnView.of(await returns.get(return_id, client_id=client_scope(caller)))


@router.post(
    "/returns/{return_id}/review", response_model=ReturnView, responses=error_responses(404, 409, *BODY_ERRORS, 503)
)
async def review_return(
    return_id: EntityId, review: ReturnReviewRequest, returns: ReturnsDep, caller: Operator
) -> ReturnView:
    """An operator's decision on a return waiting for review: approve (a label is issued) or decline."""
    command = ReviewReturnCommand(approve=review.decision == "approve", note=review.note, actor=caller.role.value)
    return ReturnView.of(await returns.update(return_id, names.UPDATE_REVIEW_RETURN, command))


@router.post(
    "/returns/{return_id}/receipt", response_model=ReturnView, responses=error_responses(404, 409, *BODY_ERRORS, 503)
)
async def receive_return(
    return_id: EntityId,
    receipt: ReturnReceiptRequest,
    returns: ReturnsDep,
    caller: Operator,
    idempotency_key: IdempotencyKey = None,
) -> ReturnView:
    """What the warehouse found in the parcel: resellable units go back on the shelf, damaged ones are written off.

    A partial receipt keeps the return open for the rest; once all is in, the refund follows. The same
    Idempotency-Key sent again books nothing twice.
    """
    command = ReceiveCommand(warehouse=receipt.warehouse, lines=receipt.lines, actor=caller.role.value)
    update_id = f"receipt:{idempotency_key}" if idempotency_key else None
    return ReturnView.of(await returns.update(return_id, names.UPDATE_RECEIVE_RETURN, command, update_id=update_id))


@router.post(
    "/returns/{return_id}/cancel", response_model=ReturnView, responses=error_responses(404, 409, *BODY_ERRORS, 503)
)
async def cancel_return(
    return_id: EntityId, cancel: ReturnCancelRequest, returns: ReturnsDep, caller: Follower
) -> ReturnView:
    """Cancel a return before its goods are received; the label is voided."""
    command = CancelReturnCommand(reason=cancel.reason, actor=caller.role.value)
    return ReturnView.of(
        await returns.update(return_id, names.UPDATE_CANCEL_RETURN, command, client_id=client_scope(caller))
    )


@router.post(
    "/returns/{return_id}/refund/retry",
    response_model=ReturnView,
    responses=error_responses(404, 409, *BODY_ERRORS, 503),
)
async def retry_refund(
    return_id: EntityId, retry: RefundRetryRequest, returns: ReturnsDep, caller: Operator
) -> ReturnView:
    """Try a refund again that failed and flagged the return, once the cause is dealt with."""
    command = ReviewReturnCommand(approve=True, note=retry.note, actor=caller.role.value)
    return ReturnView.of(await returns.update(return_id, names.UPDATE_RETRY_REFUND, command))
