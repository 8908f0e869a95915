"""The demand forecast of a SKU, and the reorder suggestions purchasing accepts or dismisses.

Accepting records the quantity on order and starts the suggestion's purchase request workflow, which
sends one signed request to purchasing; accepting again (a retry after a lost answer, or after
Temporal did not answer) answers the same and starts nothing twice.
"""

from __future__ import annotations

import dataclasses
from contextlib import suppress
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.auth import require_role
from api.deps import SessionmakerDep, SettingsDep, TemporalDep
from api.errors import BODY_ERRORS, error_responses
from api.refusals import ApiError
from db import forecast as store
from forecast.reorder import PurchaseTerms
from models.forecast import (
    PURCHASE_REQUEST_WORKFLOW,
    ForecastView,
    PurchaseRequestInput,
    PurchaseTermsBody,
    PurchaseTermsView,
    SuggestionList,
    SuggestionView,
    purchase_request_workflow_id,
)
from models.order import SKU_PATTERN
from security.api_keys import Role

forecasts = APIRouter(prefix="/forecast", tags=["forecast"], responses=error_responses(401, 403, 503))
terms = APIRouter(prefix="/purchasing/terms", tags=["purchasing"], responses=error_responses(401, 403, 503))
suggestions = APIRouter(prefix="/purchasing/suggestions", tags=["purchasing"], responses=error_responses(401, 403, 503))

SkuPath = Annotated[str, Path(min_length=1, max_length=64, pattern=SKU_PATTERN)]
SuggestionIdPath = Annotated[str, Path(min_length=1, max_length=36)]


class ForecastNotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self, sku: str) -> None:
        super().__init__(f"no forecast for SKU {sku} yet")


class SkuNotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND


class SuggestionNotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND


class SuggestionClosed(ApiError):
    status_code = status.HTTP_409_CONFLICT


@forecasts.get(
    "/{sku}",
    response_model=ForecastView,
    responses=error_responses(404),
    dependencies=[Depends(require_role(Role.OPERATOR, Role.PURCHASING))],
)
async def forecast_of(sku: SkuPath, sessionmaker: SessionmakerDep) -> ForecastView:
    """The SKU's newest forecast: its recent daily demand and the next 28 days with 80% and 95% intervals."""
    async with sessionmaker() as session:
        found = await store.get_forecast(session, sku)
    if found is None:
        raise ForecastNotFound(sku)
    return found


@suggestions.get("", response_model=SuggestionList, dependencies=[Depends(require_role(Role.PURCHASING))])
async def list_suggestions(
    sessionmaker: SessionmakerDep,
    status: Annotated[Literal["open", "accepted", "dismissed", "superseded", "all"], Query()] = "open",
) -> SuggestionList:
    """Reorder suggestions of the newest forecast runs, newest first; open ones by default."""
    async with sessionmaker() as session:
        return await store.list_suggestions(session, None if status == "all" else status)


@suggestions.post(
    "/{suggestion_id}/accept",
    response_model=SuggestionView,
    responses=error_responses(404, 409),
    dependencies=[Depends(require_role(Role.PURCHASING))],
)
async def accept(
    suggestion_id: SuggestionIdPath, sessionmaker: SessionmakerDep, temporal: TemporalDep, settings: SettingsDep
) -> SuggestionView:
    """Accept: the quantity goes on order and purchasing is sent a signed purchase request."""
    try:
        async with sessionmaker.begin() as session:
            view = await store.accept_suggestion(session, suggestion_id)
    except store.SuggestionNotFound as error:
        raise SuggestionNotFound(str(error)) from None
    except store.SuggestionClosed as error:
        raise SuggestionClosed(str(error)) from None
    # After the commit: the request goes out only for a suggestion that is on order. A finished
    # request of this suggestion (REJECT_DUPLICATE) answers WorkflowAlreadyStartedError: nothing to do.
    with suppress(WorkflowAlreadyStartedError):
        await temporal.start_workflow(
            PURCHASE_REQUEST_WORKFLOW,
            PurchaseRequestInput(
                suggestion_id=view.suggestion_id, sku=view.sku, warehouse=view.warehouse, quantity=view.quantity
            ),
            id=purchase_request_workflow_id(view.suggestion_id),
            task_queue=settings.task_queue,
            # One request per suggestion: a running one is joined, a finished one never runs again.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"Purchase request: {view.quantity} units of {view.sku} for {view.warehouse}",
            rpc_timeout=timedelta(seconds=settings.api_workflow_timeout_seconds),
        )
    return view


@suggestions.post(
    "/{suggestion_id}/dismiss",
    response_model=SuggestionView,
    responses=error_responses(404, 409),
    dependencies=[Depends(require_role(Role.PURCHASING))],
)
async def dismiss(suggestion_id: SuggestionIdPath, sessionmaker: SessionmakerDep) -> SuggestionView:
    """Dismiss: nothing is bought; the next forecast run may suggest again."""
    try:
        async with sessionmaker.begin() as session:
            return await store.dismiss_suggestion(session, suggestion_id)
    except store.SuggestionNotFound as error:
        raise SuggestionNotFound(str(error)) from None
    except store.SuggestionClosed as error:
        raise SuggestionClosed(str(error)) from None


@terms.get(
    "/{sku}",
    response_model=PurchaseTermsView,
    responses=error_responses(404, 422),
    dependencies=[Depends(require_role(Role.PURCHASING))],
)
async def terms_of(sku: SkuPath, sessionmaker: SessionmakerDep) -> PurchaseTermsView:
    """How the SKU is bought: lead time, minimum order and pack size (7 days, 1 and 1 unless set)."""
    try:
        async with sessionmaker() as session:
            found = await store.get_purchase_terms(session, sku)
    except store.SkuNotFound as error:
        raise SkuNotFound(str(error)) from None
    return PurchaseTermsView(sku=sku, **dataclasses.asdict(found))


@terms.put(
    "/{sku}",
    response_model=PurchaseTermsView,
    responses=error_responses(404, *BODY_ERRORS),
    dependencies=[Depends(require_role(Role.PURCHASING))],
)
async def set_terms(sku: SkuPath, body: PurchaseTermsBody, sessionmaker: SessionmakerDep) -> PurchaseTermsView:
    """Set how the SKU is bought; the next forecast run's suggestions follow them."""
    try:
        async with sessionmaker.begin() as session:
            await store.set_purchase_terms(
                session, sku, PurchaseTerms(body.lead_time_days, body.min_order_quantity, body.pack_size)
            )
    except store.SkuNotFound as error:
        raise SkuNotFound(str(error)) from None
    return PurchaseTermsView(sku=sku, **body.model_dump())
