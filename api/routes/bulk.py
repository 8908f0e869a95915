"""Bulk jobs: operators approve, reject or cancel many orders at once; clients import many orders at once.

Each job is a durable workflow (workflows/bulk.py) answering 202 with its id; GET /bulk/{job_id}
follows it item by item.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import ValidationError

from api import bulk_client
from api.auth import require_role
from api.deps import SessionmakerDep, SettingsDep, TemporalDep
from api.errors import BODY_ERRORS, ValidationFailed, error_responses
from api.guard import set_audit_target
from api.routes.webhooks import inline_schema
from domain import bulk as bulk_rules
from models.bulk import (
    BulkActionRequest,
    BulkImportRequest,
    BulkJobAccepted,
    BulkJobView,
    ErrorPolicy,
    RetryAccepted,
    RowProblem,
    RowsInvalid,
)
from security.api_keys import Principal, Role

router = APIRouter(prefix="/bulk", tags=["bulk"], responses=error_responses(401, 403))

JobId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
# Operators act on orders; clients (and admins, as staff) import them; each follows its own jobs.
Operator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
Importer = Annotated[Principal, Depends(require_role(Role.CLIENT))]
Follower = Annotated[Principal, Depends(require_role(Role.CLIENT, Role.OPERATOR))]

CSV = "text/csv"
IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": inline_schema(BulkImportRequest)},
            CSV: {
                "schema": {"type": "string"},
                "example": "external_ref,customer_id,customer_name,customer_email,customer_phone,ship_name,"
                "ship_line1,ship_line2,ship_city,ship_postal_code,ship_country,currency,backorder_policy,"
                "sku,quantity,unit_price\n"
                "PO-1001,C-1,Ada Lovelace,ada@example.com,,Ada Lovelace,12 St James's Sq,,London,SW1Y 4JH,GB,"
                "EUR,wait,MUG-1,2,9.50\n"
                "PO-1001,,,,,,,,,,,,,TEE-2,1,19.00\n",
            },
        },
    }
}


def _accepted(response: Response, request: Request, accepted: BulkJobAccepted) -> BulkJobAccepted:
    response.headers["Location"] = f"/bulk/{accepted.job_id}"
    set_audit_target(request, job_id=accepted.job_id)
    return accepted


def _owner(caller: Principal) -> str | None:
    return caller.client_id if caller.role == Role.CLIENT else None


@router.post(
    "/actions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BulkJobAccepted,
    responses=error_responses(*BODY_ERRORS, 503),
)
async def bulk_actions(
    body: BulkActionRequest,
    request: Request,
    response: Response,
    client: TemporalDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    caller: Operator,
) -> BulkJobAccepted:
    """Approve, reject or cancel the orders named by `order_ids`, or every order `filter` matches (at most 1,000),
    with one reason. Follow the job at the Location returned: each order is `done`, or `refused` with its reason."""
    accepted = await bulk_client.start_actions(client, sessionmaker, body, actor=caller, settings=settings)
    return _accepted(response, request, accepted)


@router.post(
    "/orders",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BulkJobAccepted,
    responses={
        **error_responses(413, 415, 503),
        422: {
            "model": RowsInvalid | ValidationFailed,
            "description": "The rows at fault (row, field, message), or a body that is not an import at all.",
        },
    },
    openapi_extra=IMPORT_BODY,
)
async def bulk_import(
    request: Request,
    response: Response,
    client: TemporalDep,
    settings: SettingsDep,
    caller: Importer,
    error_policy: Annotated[
        ErrorPolicy | None, Query(description="For a CSV body: reject_all (the default) or skip_invalid.")
    ] = None,
) -> BulkJobAccepted:
    """Place up to 1,000 orders, as JSON or as a CSV file of one row per order line (Content-Type: text/csv).

    Each order's `external_ref` is its idempotency key: an import sent twice places nothing twice.
    Under `reject_all` any bad row is a 422 listing every problem by row and field, and nothing starts;
    under `skip_invalid` the bad orders are items `refused` with the reason and the good ones start.
    """
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    raw = await request.body()
    if content_type == CSV:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise bulk_rules.ImportRefused([RowProblem(row=0, field="body", message="the file is not UTF-8")]) from None
        parsed = bulk_rules.orders_from_csv(text)
        policy = error_policy or ErrorPolicy.REJECT_ALL
    elif content_type in ("application/json", ""):
        try:
            body = BulkImportRequest.model_validate_json(raw)
        except ValidationError as invalid:
            raise bulk_rules.ImportRefused(bulk_rules.body_problems(invalid)) from invalid
        parsed = bulk_rules.orders_from_json(body.orders)
        policy = error_policy or body.error_policy
    else:
        raise bulk_client.UnsupportedImport(f"send the orders as application/json or as {CSV}")
    accepted = await bulk_client.start_import(client, parsed, policy, actor=caller, settings=settings)
    return _accepted(response, request, accepted)


@router.get("/{job_id}", response_model=BulkJobView, responses=error_responses(404, 409, 422, 503))
async def get_job(
    job_id: JobId,
    client: TemporalDep,
    caller: Follower,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")] = None,
) -> BulkJobView:
    """The job: `running` until every item has an outcome, then `completed` or `cancelled`; its counts, and a page
    of its items (pass `next_cursor` back as `cursor` for the next)."""
    return await bulk_client.job_view(client, job_id, cursor=cursor, limit=limit, client_id=_owner(caller))


@router.post("/{job_id}/retry", response_model=RetryAccepted, responses=error_responses(404, 409, 503))
async def retry_job(job_id: JobId, client: TemporalDep, settings: SettingsDep, caller: Follower) -> RetryAccepted:
    """Try the job's `failed` items again (never those refused); 409 when none has failed."""
    return await bulk_client.retry_failed(client, job_id, actor=caller, settings=settings)


@router.post("/{job_id}/cancel", response_model=BulkJobView, responses=error_responses(404, 409, 503))
async def cancel_job(job_id: JobId, client: TemporalDep, caller: Follower) -> BulkJobView:
    """Start no more of the job's items: those in flight finish, the rest end `cancelled`, and so does the job."""
    return await bulk_client.cancel_job(client, job_id, actor=caller)
