"""Analytics of orders, fulfilment, SKUs and customers for operators: JSON figures the console's charts draw.

Every route takes a period of local days `from`..`to` (inclusive; the last 30 days by default) and
`tz`, the IANA time zone days are counted in (UTC by default).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator

from analytics.periods import Bucket, UnknownTimeZone, buckets, period, previous, zone
from api.auth import require_role
from api.deps import SessionmakerDep
from api.errors import error_responses
from db import analytics as queries
from models.analytics import (
    Change,
    CurrencyChange,
    CustomerAnalytics,
    Fulfilment,
    OrdersSeries,
    ReturnAnalytics,
    SkuAnalytics,
    Summary,
)
from security.api_keys import Role

MAX_DAYS = 366
DEFAULT_DAYS = 30

router = APIRouter(
    prefix="/analytics",
    tags=["analytics"],
    responses=error_responses(401, 403, 422, 503),
    dependencies=[Depends(require_role(Role.OPERATOR))],
)

EARLIEST, LATEST = date(1970, 1, 1), date(2999, 12, 31)


def _iso_day(value: object) -> object:
    # Only YYYY-MM-DD: pydantic would also read "0" as a Unix time, which the schema's date format does not allow.
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("a date is YYYY-MM-DD")
    return value


IsoDay = Annotated[date, BeforeValidator(_iso_day)]
From = Annotated[IsoDay | None, Query(alias="from", description="First day (local), YYYY-MM-DD.")]
To = Annotated[
    IsoDay | None, Query(alias="to", description="Last day (local, inclusive), YYYY-MM-DD; today by default.")
]
Tz = Annotated[str, Query(max_length=64, description="IANA time zone the days are counted in.")]
Limit = Annotated[int, Query(ge=1, le=100)]


def _refuse(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", field), "msg": message, "type": "value_error"}])


def _period(first: date | None, last: date | None, tz: str) -> tuple[date, date, ZoneInfo]:
    try:
        where = zone(tz)
    except UnknownTimeZone as error:
        raise _refuse("tz", str(error)) from None
    last = last or datetime.now(where).date()
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    for field, day in (("from", first), ("to", last)):
        if not EARLIEST <= day <= LATEST:
            raise _refuse(field, f"must be between {EARLIEST} and {LATEST}")
    if first > last:
        raise _refuse("from", "must not be after `to`")
    if (last - first).days + 1 > MAX_DAYS:
        raise _refuse("from", f"a period is at most {MAX_DAYS} days")
    return first, last, where


def _pct(current: Decimal | int, before: Decimal | int) -> float | None:
    return None if not before else round(float((Decimal(current) - Decimal(before)) / Decimal(before) * 100), 2)


@router.get("/summary", response_model=Summary)
async def summary(sessionmaker: SessionmakerDep, first: From = None, last: To = None, tz: Tz = "UTC") -> Summary:
    """Orders, revenue and average order value in the period, against the period of equal length before it."""
    first, last, where = _period(first, last, tz)
    before_first, before_last = previous(first, last)
    async with sessionmaker() as session:
        current = await queries.period_figures(session, period(first, last, where), last)
        before = await queries.period_figures(
            session,
            period(before_first, before_last, where),
            before_last,
        )
    earlier = {figures.currency: figures for figures in before.by_currency}
    changes = [
        CurrencyChange(
            currency=now.currency,
            revenue_pct=_pct(now.revenue, earlier[now.currency].revenue) if now.currency in earlier else None,
            average_order_value_pct=_pct(now.average_order_value, earlier[now.currency].average_order_value)
            if now.currency in earlier
            else None,
        )
        for now in current.by_currency
    ]
    return Summary(
        tz=tz,
        current=current,
        previous=before,
        change=Change(orders_pct=_pct(current.orders, before.orders), by_currency=changes),
    )


@router.get("/orders", response_model=OrdersSeries)
async def orders(
    sessionmaker: SessionmakerDep,
    first: From = None,
    last: To = None,
    tz: Tz = "UTC",
    bucket: Annotated[Bucket, Query()] = Bucket.DAY,
) -> OrdersSeries:
    """Orders placed per day or week, by their status now, and revenue per currency."""
    first, last, where = _period(first, last, tz)
    async with sessionmaker() as session:
        items = await queries.orders_series(session, buckets(first, last, where, bucket))
    return OrdersSeries(tz=tz, bucket=bucket.value, items=items)


@router.get("/fulfilment", response_model=Fulfilment)
async def fulfilment(sessionmaker: SessionmakerDep, first: From = None, last: To = None, tz: Tz = "UTC") -> Fulfilment:
    """Fulfilment lead times per week (placed → shipped, shipped → delivered: p50 and p90), and backorder ageing now."""
    first, last, where = _period(first, last, tz)
    async with sessionmaker() as session:
        weeks = await queries.fulfilment_weeks(session, buckets(first, last, where, Bucket.WEEK))
        ageing = await queries.backorder_ageing(session, datetime.now(UTC))
    return Fulfilment(tz=tz, weeks=weeks, backorder_ageing=ageing)


@router.get("/skus", response_model=SkuAnalytics)
async def skus(
    sessionmaker: SessionmakerDep, first: From = None, last: To = None, tz: Tz = "UTC", limit: Limit = 10
) -> SkuAnalytics:
    """The top SKUs by units and by revenue in the period, and the SKUs out of stock now."""
    first, last, where = _period(first, last, tz)
    async with sessionmaker() as session:
        return await queries.sku_analytics(session, period(first, last, where), limit)


@router.get("/customers", response_model=CustomerAnalytics)
async def customers(
    sessionmaker: SessionmakerDep, first: From = None, last: To = None, tz: Tz = "UTC", limit: Limit = 10
) -> CustomerAnalytics:
    """Buying behaviour without personal data: RFM segments, repeat purchases, days between orders, top customer ids."""
    first, last, where = _period(first, last, tz)
    async with sessionmaker() as session:
        return await queries.customer_analytics(session, period(first, last, where), limit)


@router.get("/returns", response_model=ReturnAnalytics)
async def returns(
    sessionmaker: SessionmakerDep, first: From = None, last: To = None, tz: Tz = "UTC", limit: Limit = 10
) -> ReturnAnalytics:
    """Return rates of the orders placed in the period: units on returns over units sold, by SKU and by reason."""
    first, last, where = _period(first, last, tz)
    async with sessionmaker() as session:
        return await queries.return_analytics(session, period(first, last, where), tz, limit)
