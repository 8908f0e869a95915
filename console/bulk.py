"""Batch actions in the console: approve, reject or cancel many orders as one bulk job, and the job's page.

The form of the order list names the orders selected, or every order its search matches, and the
action and reason; the console starts the same bulk job as POST /bulk/actions (api.bulk_client)
and shows the job's page, which follows each order's outcome (done, or refused with the order's
reason) until the job has completed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from api.bulk_client import job_view, start_actions
from api.deps import SessionmakerDep, SettingsDep, TemporalDep
from api.refusals import ApiError
from api.routes.bulk import JobId
from console.layout import CsrfChecked, Operator, render
from console.orders import order_filter
from console.session import PREFIX
from domain.bulk import TooManyOrders
from models.bulk import BulkAction, BulkActionRequest, JobStatus

router = APIRouter(prefix=f"{PREFIX}/bulk", include_in_schema=False)

Text = Annotated[str, Form(max_length=100)]
# Outcomes shown per page of a job; a job has at most 1,000.
ITEMS_PER_PAGE = 200
# How often a running job's page reloads itself, in seconds.
REFRESH_SECONDS = 1
# What an approval says when the operator typed no reason: the API asks for one on every bulk action.
APPROVED_WITHOUT_NOTE = "approved in the operator console"


@router.post("", dependencies=[CsrfChecked], response_model=None)
async def start_batch(
    request: Request,
    viewer: Operator,
    client: TemporalDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    action: Annotated[BulkAction, Form()],
    reason: Annotated[str, Form(max_length=1000)] = "",
    order_id: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies form defaults
    all_matching: Text = "",
    q: Text = "",
    status_filter: Annotated[str, Form(alias="status", max_length=100)] = "",
    created_from: Text = "",
    created_to: Text = "",
) -> HTMLResponse | RedirectResponse:
    """Start a bulk job for the selected orders (or all matching the search) and go to its page."""
    reason = reason.strip() or (APPROVED_WITHOUT_NOTE if action == BulkAction.APPROVE else "")
    try:
        if all_matching:
            where, problems = order_filter(q, status_filter, created_from, created_to)
            if problems:
                raise ValueError("; ".join(problems))
            batch = BulkActionRequest(action=action, filter=where, reason=reason)
        else:
            batch = BulkActionRequest(action=action, order_ids=order_id or None, reason=reason)
        accepted = await start_actions(client, sessionmaker, batch, actor=viewer, settings=settings)
    except ValidationError as error:
        fields = {str(item["loc"][0]) for item in error.errors() if item["loc"]}
        problem = (
            "give a reason (up to 500 printable characters)"
            if "reason" in fields
            else "select orders first, or every order matching the search"
        )
        return render(request, "problem.html", viewer, status_code=422, problem=problem)
    except (ValueError, TooManyOrders) as error:
        return render(request, "problem.html", viewer, status_code=422, problem=str(error))
    except ApiError as error:
        return render(request, "problem.html", viewer, status_code=error.status_code, problem=error.detail)
    return RedirectResponse(f"{PREFIX}/bulk/{accepted.job_id}", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/{job_id}", response_class=HTMLResponse)
async def job_page(
    request: Request,
    job_id: JobId,
    viewer: Operator,
    client: TemporalDep,
    cursor: Annotated[str, Query(max_length=100)] = "",
) -> HTMLResponse:
    try:
        job = await job_view(client, job_id, cursor=cursor or None, limit=ITEMS_PER_PAGE)
    except ApiError as error:
        return render(request, "problem.html", viewer, status_code=error.status_code, problem=error.detail)
    running = job.status == JobStatus.RUNNING
    return render(request, "bulk_job.html", viewer, job=job, refresh=REFRESH_SECONDS if running else None)
