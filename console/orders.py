"""Orders in the console: the list with its search and filters, an order's page, and an operator's action on it.

The list is GET /orders's query (db.orders.list_orders with models.order.OrderFilter), newest
first, a page at a time; the order page is GET /orders/{id}'s view with its returns, and the
actions go to the order's workflow through the API's order client, so the console decides nothing
the API does not. Like GET /orders, the pages are for operators (and admins): they show customers'
personal data, which purchasing does not read.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from api.deps import OrdersDep, SessionmakerDep, SettingsDep
from api.refusals import ApiError
from api.return_client import ReturnClient, with_returns
from api.routes.returns import ReturnsDep
from console.layout import CsrfChecked, Operator, render
from console.session import PREFIX
from db.orders import InvalidCursor, list_orders
from models.order import ID_PATTERN, CancelRequest, OrderFilter, OrderStatus, ReviewRequest
from models.returns import ReturnView
from models.views import OrderView
from security.api_keys import Principal
from settings import Settings

router = APIRouter(prefix=f"{PREFIX}/orders", include_in_schema=False)

PAGE_SIZE = 50
OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
Field = Annotated[str, Query(max_length=100)]
Action = Literal["approve", "reject", "cancel"]
# What each action's outcome reads as on the order page.
DONE = {"approve": "Approved.", "reject": "Rejected.", "cancel": "Cancelled."}


def order_filter(
    q: str = "", status: str = "", created_from: str = "", created_to: str = ""
) -> tuple[OrderFilter, list[str]]:
    """The filter the list's form asks for, and what in it could not be read (that part left out)."""
    problems: list[str] = []
    fields: dict[str, Any] = {}
    if q.strip():
        fields["q"] = q.strip()
    if status:
        fields["status"] = status
    for name, text, after in (("created_from", created_from, 0), ("created_to", created_to, 1)):
        if not text:
            continue
        try:
            # Whole days in UTC; "to" includes its day.
            fields[name] = datetime.combine(date.fromisoformat(text) + timedelta(days=after), time(), UTC)
        except ValueError:
            problems.append(f"{text!r} is not a date (YYYY-MM-DD)")
    try:
        return OrderFilter(**fields), problems
    except ValidationError as error:
        bad = {str(item["loc"][0]) for item in error.errors()}
        if "q" in bad:
            problems.append("search for one order id, customer id or SKU: letters, digits and . _ : - only")
        if "status" in bad:
            problems.append(f"unknown status {status!r}")
        return OrderFilter(**{name: value for name, value in fields.items() if name not in bad}), problems


@router.get("", response_class=HTMLResponse)
async def order_list(
    request: Request,
    viewer: Operator,
    sessionmaker: SessionmakerDep,
    q: Field = "",
    status: Field = "",
    created_from: Field = "",
    created_to: Field = "",
    cursor: Annotated[str, Query(max_length=500)] = "",
    limit: Annotated[int, Query(ge=1, le=200)] = PAGE_SIZE,
) -> HTMLResponse:
    where, problems = order_filter(q, status, created_from, created_to)
    async with sessionmaker.begin() as session:
        try:
            page = await list_orders(session, where, limit=limit, cursor=cursor or None)
        except InvalidCursor:
            problems.append("that page link is out of date: here is the newest page")
            page = await list_orders(session, where, limit=limit, cursor=None)
    form = {"q": q, "status": status, "created_from": created_from, "created_to": created_to}
    if limit != PAGE_SIZE:
        form["limit"] = str(limit)
    return render(
        request,
        "orders.html",
        viewer,
        page=page,
        form=form,
        filters={name: value for name, value in form.items() if value},
        problems=problems,
        statuses=list(OrderStatus),
        first_page=not cursor,
    )


def workflow_link(settings: Settings, workflow_id: str) -> str:
    return f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}/workflows/{workflow_id}"


async def _order_page(
    request: Request,
    viewer: Principal,
    order: OrderView,
    returns: ReturnClient,
    settings: Settings,
    *,
    done: str = "",
    refusal: str = "",
    reason: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    details = [ReturnView.of(await returns.get(ref.return_id, client_id=None)) for ref in order.returns]
    return render(
        request,
        "order.html",
        viewer,
        status_code=status_code,
        order=order,
        returns=details,
        workflow_url=workflow_link(settings, order.workflow_id),
        done=DONE.get(done, ""),
        refusal=refusal,
        reason=reason,
        waits_for_review=order.status == OrderStatus.PENDING_REVIEW,
        may_cancel=not order.status.is_terminal and order.status not in (OrderStatus.SHIPPED,),
    )


@router.get("/{order_id}", response_class=HTMLResponse)
async def order_page(
    request: Request,
    order_id: OrderId,
    viewer: Operator,
    orders: OrdersDep,
    returns: ReturnsDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    done: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    try:
        order = await with_returns(await orders.state(order_id), sessionmaker)
    except ApiError as error:
        return render(request, "problem.html", viewer, status_code=error.status_code, problem=error.detail)
    return await _order_page(request, viewer, order, returns, settings, done=done)


@router.post("/{order_id}/actions", dependencies=[CsrfChecked], response_model=None)
async def act_on_order(
    request: Request,
    order_id: OrderId,
    viewer: Operator,
    orders: OrdersDep,
    returns: ReturnsDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    action: Annotated[Action, Form()],
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> HTMLResponse | RedirectResponse:
    """Approve, reject or cancel one order; its page again, with the order's refusal when it refuses."""
    try:
        if action == "cancel":
            cancel = CancelRequest(reason=reason.strip())
            await orders.cancel(order_id, cancel.reason, actor=viewer.role.value)
        else:
            review = ReviewRequest(decision=action, note=reason.strip() or None)
            await orders.review(order_id, approve=action == "approve", note=review.note, actor=viewer.role.value)
    except (ValidationError, ApiError) as error:
        refusal = (
            "a reason is needed (up to 500 printable characters)"
            if isinstance(error, ValidationError)
            else error.detail
        )
        try:
            order = await with_returns(await orders.state(order_id), sessionmaker)
        except ApiError as missing:
            return render(request, "problem.html", viewer, status_code=missing.status_code, problem=missing.detail)
        code = status.HTTP_422_UNPROCESSABLE_CONTENT if isinstance(error, ValidationError) else error.status_code
        return await _order_page(
            request, viewer, order, returns, settings, refusal=refusal, reason=reason, status_code=code
        )
    return RedirectResponse(f"{PREFIX}/orders/{order_id}?done={action}", status_code=status.HTTP_303_SEE_OTHER)
