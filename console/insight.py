"""The dashboard (operators and admins) and the purchasing page (purchasing and admins).

Every figure comes from the analytics and forecast API's own route functions, called here as the API
calls them, and is drawn by console.figures: a chart shows what the API answers, computed once.
Who sees what follows the API's roles: the analytics are an operator's (the dashboard), reorder
suggestions and their decisions purchasing's (the purchasing page); admins see both. A role is not
shown the other's page in the navigation, and asking for it is refused (403) as the API refuses it.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from analytics.periods import Bucket
from api.deps import SessionmakerDep, SettingsDep, TemporalDep
from api.routes import analytics as analytics_api
from api.routes import forecast as forecast_api
from console import figures
from console.layout import CsrfChecked, Operator, Purchaser, render
from console.session import PREFIX
from models.forecast import ForecastView, SuggestionView
from models.order import SKU_PATTERN

router = APIRouter(prefix=PREFIX, include_in_schema=False)

PURCHASING = f"{PREFIX}/purchasing"
# Decided suggestions shown under the open ones (newest first), and forecast charts on the purchasing page.
RECENTLY_DECIDED = 10
MOST_FORECASTS = 12

SkuChoice = Annotated[str | None, Query(min_length=1, max_length=64, pattern=SKU_PATTERN)]


async def _forecast(sessionmaker: SessionmakerDep, sku: str) -> ForecastView | None:
    try:
        return await forecast_api.forecast_of(sku, sessionmaker)
    except forecast_api.ForecastNotFound:
        return None


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(
    request: Request,
    viewer: Operator,
    sessionmaker: SessionmakerDep,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    sku: SkuChoice = None,
) -> Response:
    """The last 30 days (or `from`..`to`, UTC days) against the period before, and one SKU's forecast."""
    try:
        summary = await analytics_api.summary(sessionmaker, first, last)
        problem = None
    except RequestValidationError as error:
        # A period the API refuses: said on the page, over the default period.
        problem = "; ".join(f"{fault['loc'][-1]}: {fault['msg']}" for fault in error.errors())
        summary = await analytics_api.summary(sessionmaker)
    first, last = summary.current.first_day, summary.current.last_day
    series = await analytics_api.orders(sessionmaker, first, last, bucket=Bucket.DAY)
    fulfilment = await analytics_api.fulfilment(sessionmaker, first, last)
    skus = await analytics_api.skus(sessionmaker, first, last)
    returns = await analytics_api.returns(sessionmaker, first, last)
    choices = [item.sku for item in skus.by_units]
    chosen = sku or (choices[0] if choices else None)
    forecast = await _forecast(sessionmaker, chosen) if chosen else None
    currency = figures.main_currency(summary)
    return render(
        request,
        "dashboard.html",
        viewer,
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT if problem else status.HTTP_200_OK,
        problem=problem,
        first=first,
        last=last,
        headlines=figures.headlines(summary),
        orders_chart=figures.orders_chart(series),
        revenue_charts=figures.revenue_charts(series),
        lead_time_charts=figures.lead_time_charts(fulfilment),
        ageing_chart=figures.ageing_chart(fulfilment),
        top_charts=figures.top_sku_charts(skus, currency),
        stock_outs=skus.stock_outs,
        returns=returns,
        return_charts=figures.return_charts(returns),
        choices=choices,
        chosen=chosen,
        forecast_chart=figures.forecast_chart(forecast, key="forecast") if forecast else None,
    )


@router.get("/purchasing", response_class=HTMLResponse)
async def purchasing(
    request: Request,
    viewer: Purchaser,
    sessionmaker: SessionmakerDep,
    decided: Annotated[str | None, Query(max_length=36)] = None,
) -> HTMLResponse:
    """Open reorder suggestions to accept or dismiss, the latest decided, and each SKU's forecast."""
    return await _purchasing_page(request, viewer, sessionmaker, just_decided=decided)


async def _purchasing_page(
    request: Request,
    viewer: Purchaser,
    sessionmaker: SessionmakerDep,
    *,
    just_decided: str | None = None,
    refused: str | None = None,
) -> HTMLResponse:
    open_ = (await forecast_api.list_suggestions(sessionmaker, "open")).items
    decided = [
        item for item in (await forecast_api.list_suggestions(sessionmaker, "all")).items if item.status != "open"
    ]
    done = next((item for item in decided if item.suggestion_id == just_decided), None)
    skus = list(dict.fromkeys(item.sku for item in [*open_, *decided[:RECENTLY_DECIDED]]))[:MOST_FORECASTS]
    charts = []
    for sku in skus:
        view = await _forecast(sessionmaker, sku)
        if view is not None:
            charts.append(figures.forecast_chart(view))
    return render(
        request,
        "purchasing.html",
        viewer,
        status_code=status.HTTP_409_CONFLICT if refused else status.HTTP_200_OK,
        suggestions=open_,
        decided=decided[:RECENTLY_DECIDED],
        forecast_charts=charts,
        done=done,
        refused=refused,
    )


def _decided(view: SuggestionView) -> RedirectResponse:
    # Post, then redirect: reloading the page shows it again and sends nothing twice.
    return RedirectResponse(f"{PURCHASING}?decided={view.suggestion_id}", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/purchasing/{suggestion_id}/accept", dependencies=[CsrfChecked], response_class=HTMLResponse)
async def accept(
    request: Request,
    suggestion_id: forecast_api.SuggestionIdPath,
    viewer: Purchaser,
    sessionmaker: SessionmakerDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> Response:
    """Accept as POST /purchasing/suggestions/{id}/accept does: on order, and one signed purchase request."""
    try:
        view = await forecast_api.accept(suggestion_id, sessionmaker, temporal, settings)
    except (forecast_api.SuggestionNotFound, forecast_api.SuggestionClosed) as error:
        return await _purchasing_page(request, viewer, sessionmaker, refused=str(error))
    return _decided(view)


@router.post("/purchasing/{suggestion_id}/dismiss", dependencies=[CsrfChecked], response_class=HTMLResponse)
async def dismiss(
    request: Request, suggestion_id: forecast_api.SuggestionIdPath, viewer: Purchaser, sessionmaker: SessionmakerDep
) -> Response:
    """Dismiss as POST /purchasing/suggestions/{id}/dismiss does: nothing is bought."""
    try:
        view = await forecast_api.dismiss(suggestion_id, sessionmaker)
    except (forecast_api.SuggestionNotFound, forecast_api.SuggestionClosed) as error:
        return await _purchasing_page(request, viewer, sessionmaker, refused=str(error))
    return _decided(view)
