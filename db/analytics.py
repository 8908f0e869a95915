"""The analytics queries: counted in the database from the order records and the hourly rollups the status
writes keep (db.rollups), in SQL that PostgreSQL and SQLite both run.

Buckets in a time zone are a derived table of UTC instants (analytics.periods) joined with the order
times, so daylight-saving days bucket right on both databases. Percentiles are nearest-rank, picked
with window functions: the k-th smallest of n where k = ceil(p * n).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Integer, String, Subquery, and_, case, extract, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.periods import Span
from analytics.rfm import SEGMENTS, segment
from db.rollups import hour_of
from models.analytics import (
    AgeingBand,
    CurrencyAmount,
    CurrencyFigures,
    CustomerAnalytics,
    CustomerValue,
    FulfilmentWeek,
    OrdersBucket,
    Percentiles,
    PeriodFigures,
    ReasonFigures,
    ReturnAnalytics,
    SegmentFigures,
    SkuAnalytics,
    SkuFigures,
    SkuReturns,
    StockOut,
)
from models.analytics_tables import OrderRollupRow
from models.order import OrderStatus
from models.returns import VOID_RETURN_STATUSES, ReturnReason
from models.tables import (
    OrderEventRow,
    OrderLineRow,
    OrderRow,
    ReturnLineRow,
    ReturnRow,
    ShortageRow,
    SkuRow,
    StockRow,
)

NOT_REVENUE = (OrderStatus.REJECTED.value, OrderStatus.CANCELLED.value, OrderStatus.FAILED.value)
CENT = Decimal("0.01")
# Backorder ageing bands: (label, fewest whole days waited, most).
AGEING_BANDS = (("0-1", 0, 1), ("2-3", 2, 3), ("4-7", 4, 7), ("8-14", 8, 14), ("15+", 15, None))


def _money(value: Any) -> Decimal:
    # SQLite sums NUMERIC columns as floats; both databases answer to the cent.
    return Decimal(str(value or 0)).quantize(CENT)


def _spans(spans: Sequence[Span]) -> Subquery:
    rows = [
        select(
            literal(span.label.isoformat(), String).label("label"),
            literal(span.start, DateTime(timezone=True)).label("start"),
            literal(span.end, DateTime(timezone=True)).label("end"),
        )
        for span in spans
    ]
    return union_all(*rows).subquery("spans")


def _within(column: Any, span: Any) -> Any:
    return and_(column >= span.c.start, column < span.c.end)


def _in_period(span: Span) -> Any:
    return and_(OrderRow.created_at >= span.start, OrderRow.created_at < span.end)


def _lines_in_period(span: Span) -> Any:
    """The lines of the orders placed in `span`, by the placing time they carry: read from their own index
    (with what the figures need), rather than looked up order by order."""
    return and_(OrderLineRow.placed_at >= span.start, OrderLineRow.placed_at < span.end)


def _whole_hours(spans: Sequence[Span]) -> bool:
    return all(moment == hour_of(moment) for span in spans for moment in (span.start, span.end))


def _placed(spans: Sequence[Span]) -> Subquery:
    """Orders placed, as (at, status, currency, orders, revenue): the hourly rollups when every span starts and
    ends on a whole UTC hour (any time zone a whole number of hours from UTC), else each order on its own."""
    if _whole_hours(spans):
        rollup = OrderRollupRow
        return select(rollup.hour.label("at"), rollup.status, rollup.currency, rollup.orders, rollup.revenue).subquery(
            "placed"
        )
    return select(
        OrderRow.created_at.label("at"),
        OrderRow.status,
        OrderRow.currency,
        literal(1, Integer).label("orders"),
        OrderRow.total.label("revenue"),
    ).subquery("placed")


async def period_figures(session: AsyncSession, span: Span, last: Any) -> PeriodFigures:
    placed = _placed([span])
    within = and_(placed.c.at >= span.start, placed.c.at < span.end)
    count = func.coalesce(func.sum(placed.c.orders), 0)
    orders = await session.scalar(select(count).where(within))
    rows = await session.execute(
        select(placed.c.currency, count, func.sum(placed.c.revenue))
        .where(within, placed.c.status.not_in(NOT_REVENUE))
        .group_by(placed.c.currency)
        .having(count > 0)
        .order_by(placed.c.currency)
    )
    return PeriodFigures(
        first_day=span.label,
        last_day=last,
        orders=int(orders or 0),
        by_currency=[
            CurrencyFigures(
                currency=currency,
                orders=int(count),
                revenue=_money(revenue),
                average_order_value=(_money(revenue) / int(count)).quantize(CENT),
            )
            for currency, count, revenue in rows
        ],
    )


async def orders_series(session: AsyncSession, spans: Sequence[Span]) -> list[OrdersBucket]:
    table = _spans(spans)
    placed = _placed(spans)
    joined = table.join(placed, _within(placed.c.at, table))
    count = func.sum(placed.c.orders)
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for label, status, orders in await session.execute(
        select(table.c.label, placed.c.status, count)
        .select_from(joined)
        .group_by(table.c.label, placed.c.status)
        .having(count > 0)
    ):
        counts[label][status] = int(orders)
    revenue: dict[str, list[CurrencyAmount]] = defaultdict(list)
    for label, currency, amount in await session.execute(
        select(table.c.label, placed.c.currency, func.sum(placed.c.revenue))
        .select_from(joined)
        .where(placed.c.status.not_in(NOT_REVENUE))
        .group_by(table.c.label, placed.c.currency)
        .having(count > 0)
        .order_by(table.c.label, placed.c.currency)
    ):
        revenue[label].append(CurrencyAmount(currency=currency, amount=_money(amount)))
    return [
        OrdersBucket(
            start=span.label,
            orders=sum(counts[span.label.isoformat()].values()),
            by_status=dict(sorted(counts[span.label.isoformat()].items())),
            revenue=revenue[span.label.isoformat()],
        )
        for span in spans
    ]


async def _step_percentiles(
    session: AsyncSession, weeks: Subquery, within: Span, start_status: str | None, end_status: str
) -> dict[str, Percentiles]:
    """Per week in which orders reached `end_status`: hours since they were placed (None) or reached `start_status`.

    Only the orders with an entry in `end_status` within `within` (the weeks' whole span) are read,
    through the index on (status, at), and each one's entries through its own (order_id, seq): not
    every order ever placed.
    """
    reached = (
        select(OrderEventRow.order_id)
        .where(OrderEventRow.status == end_status, OrderEventRow.at >= within.start, OrderEventRow.at < within.end)
        .distinct()
        .subquery("reached")
    )

    def first_entry(status: str) -> Any:
        # An order's first entry in the status; for the end, one before the span leaves the order out.
        return (
            select(func.min(OrderEventRow.at))
            .where(OrderEventRow.order_id == reached.c.order_id, OrderEventRow.status == status)
            .scalar_subquery()
        )

    if start_status is None:
        began_at = select(OrderRow.created_at).where(OrderRow.order_id == reached.c.order_id).scalar_subquery()
    else:
        began_at = first_entry(start_status)
    # Materialised, so that each order's two look-ups run once, not once per use of their result.
    steps = (
        select(reached.c.order_id, first_entry(end_status).label("ended"), began_at.label("began"))
        .cte("steps")
        .prefix_with("MATERIALIZED")
    )
    seconds = (extract("epoch", steps.c.ended) - extract("epoch", steps.c.began)).label("seconds")
    durations = (
        select(weeks.c.label, seconds)
        .select_from(steps.join(weeks, _within(steps.c.ended, weeks)))
        .where(steps.c.began.is_not(None))
        .subquery("durations")
    )
    ranked = select(
        durations.c.label,
        durations.c.seconds,
        func.row_number().over(partition_by=durations.c.label, order_by=durations.c.seconds).label("rank"),
        func.count().over(partition_by=durations.c.label).label("n"),
    ).subquery("ranked")
    rows = await session.execute(
        select(
            ranked.c.label,
            ranked.c.n,
            func.max(case((ranked.c.rank == (50 * ranked.c.n + 99) // 100, ranked.c.seconds))),
            func.max(case((ranked.c.rank == (90 * ranked.c.n + 99) // 100, ranked.c.seconds))),
        ).group_by(ranked.c.label, ranked.c.n)
    )
    return {
        label: Percentiles(count=n, p50_hours=round(float(p50) / 3600, 2), p90_hours=round(float(p90) / 3600, 2))
        for label, n, p50, p90 in rows
    }


async def fulfilment_weeks(session: AsyncSession, weeks: Sequence[Span]) -> list[FulfilmentWeek]:
    table = _spans(weeks)
    within = Span(label=weeks[0].label, start=min(w.start for w in weeks), end=max(w.end for w in weeks))
    shipping = await _step_percentiles(session, table, within, None, OrderStatus.SHIPPED.value)
    delivery = await _step_percentiles(session, table, within, OrderStatus.SHIPPED.value, OrderStatus.DELIVERED.value)
    empty = Percentiles(count=0, p50_hours=None, p90_hours=None)
    return [
        FulfilmentWeek(
            week=span.label,
            placed_to_shipped=shipping.get(span.label.isoformat(), empty),
            shipped_to_delivered=delivery.get(span.label.isoformat(), empty),
        )
        for span in weeks
    ]


async def backorder_ageing(session: AsyncSession, now: datetime) -> list[AgeingBand]:
    # Compared in seconds: whole days by division would round on one database and truncate on the other.
    waited = extract("epoch", literal(now, DateTime(timezone=True))) - extract("epoch", ShortageRow.since)
    band = case(
        *[(waited < (most + 1) * 86400, label) for label, _, most in AGEING_BANDS if most is not None],
        else_=AGEING_BANDS[-1][0],
    ).label("band")
    rows = await session.execute(
        select(band, func.count(), func.sum(ShortageRow.quantity))
        .where(ShortageRow.resolved_at.is_(None))
        .group_by(band)
    )
    found = {label: (count, int(units or 0)) for label, count, units in rows}
    return [
        AgeingBand(days=label, orders=found.get(label, (0, 0))[0], units=found.get(label, (0, 0))[1])
        for label, _, _ in AGEING_BANDS
    ]


async def sku_analytics(session: AsyncSession, span: Span, limit: int) -> SkuAnalytics:
    line_revenue = OrderLineRow.quantity * OrderLineRow.unit_price
    sold = (
        select(OrderLineRow.sku, OrderRow.currency, func.sum(OrderLineRow.quantity), func.sum(line_revenue))
        .join(OrderRow, OrderRow.order_id == OrderLineRow.order_id)
        .where(_in_period(span), _lines_in_period(span), OrderRow.status.not_in(NOT_REVENUE))
        .group_by(OrderLineRow.sku, OrderRow.currency)
    )
    units: dict[str, int] = defaultdict(int)
    revenue: dict[str, dict[str, Decimal]] = defaultdict(dict)
    per_currency: dict[str, Decimal] = defaultdict(Decimal)
    for sku, currency, quantity, amount in await session.execute(sold):
        units[sku] += int(quantity)
        revenue[sku][currency] = _money(amount)
        per_currency[currency] += _money(amount)
    main = max(per_currency, key=lambda c: (per_currency[c], c)) if per_currency else None

    def figures(sku: str) -> SkuFigures:
        amounts = [CurrencyAmount(currency=c, amount=a) for c, a in sorted(revenue[sku].items())]
        return SkuFigures(sku=sku, units=units[sku], revenue=amounts)

    by_units = sorted(units, key=lambda sku: (-units[sku], sku))[:limit]
    by_revenue = sorted(units, key=lambda sku: (-revenue[sku].get(main or "", Decimal(0)), sku))[:limit]

    available = func.coalesce(func.sum(StockRow.on_hand - StockRow.reserved), 0)
    waiting = (
        select(ShortageRow.sku, func.sum(ShortageRow.quantity).label("units"))
        .where(ShortageRow.resolved_at.is_(None))
        .group_by(ShortageRow.sku)
        .subquery("waiting")
    )
    outs = await session.execute(
        select(SkuRow.sku, available, func.coalesce(func.max(waiting.c.units), 0))
        .outerjoin(StockRow, StockRow.sku == SkuRow.sku)
        .outerjoin(waiting, waiting.c.sku == SkuRow.sku)
        .where(SkuRow.active.is_(True))
        .group_by(SkuRow.sku)
        .having(available <= 0)
        .order_by(SkuRow.sku)
    )
    return SkuAnalytics(
        by_units=[figures(sku) for sku in by_units],
        by_revenue=[figures(sku) for sku in by_revenue],
        stock_outs=[StockOut(sku=sku, available=int(a), waiting_units=int(w)) for sku, a, w in outs],
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def customer_analytics(session: AsyncSession, span: Span, limit: int) -> CustomerAnalytics:
    rows = (
        await session.execute(
            select(OrderRow.customer_id, func.count(), func.min(OrderRow.created_at), func.max(OrderRow.created_at))
            .where(_in_period(span), OrderRow.status.not_in(NOT_REVENUE))
            .group_by(OrderRow.customer_id)
        )
    ).all()
    counts = {segment_.name: 0 for segment_ in SEGMENTS}
    gaps = []
    for _, orders, first, last in rows:
        recency = (span.end - _aware(last)).days
        counts[segment(recency, orders).name] += 1
        if orders >= 2:
            gaps.append((_aware(last) - _aware(first)).total_seconds() / 86400 / (orders - 1))
    repeat = sum(1 for _, orders, _, _ in rows if orders >= 2)
    top = await session.execute(
        select(OrderRow.customer_id, OrderRow.currency, func.count(), func.sum(OrderRow.total).label("revenue"))
        .where(_in_period(span), OrderRow.status.not_in(NOT_REVENUE))
        .group_by(OrderRow.customer_id, OrderRow.currency)
        .order_by(func.sum(OrderRow.total).desc(), OrderRow.customer_id)
        .limit(limit)
    )
    return CustomerAnalytics(
        customers=len(rows),
        repeat_purchase_rate=round(repeat / len(rows), 4) if rows else None,
        average_days_between_orders=round(sum(gaps) / len(gaps), 2) if gaps else None,
        segments=[SegmentFigures(segment=s.name, meaning=s.meaning, customers=counts[s.name]) for s in SEGMENTS],
        top_customers=[
            CustomerValue(customer_id=customer, currency=currency, orders=orders, revenue=_money(revenue))
            for customer, currency, orders, revenue in top
        ],
    )


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def return_analytics(session: AsyncSession, span: Span, tz: str, limit: int) -> ReturnAnalytics:
    """Of the units sold on the orders placed in the period, the share on returns so far, by SKU and reason."""
    cohort = and_(_in_period(span), OrderRow.status.not_in(NOT_REVENUE))
    sold: dict[str, int] = {
        sku: int(units)
        for sku, units in await session.execute(
            select(OrderLineRow.sku, func.sum(OrderLineRow.quantity))
            .join(OrderRow, OrderRow.order_id == OrderLineRow.order_id)
            .where(cohort, _lines_in_period(span))
            .group_by(OrderLineRow.sku)
        )
    }
    void = [status.value for status in VOID_RETURN_STATUSES]
    returned: dict[str, dict[str, int]] = defaultdict(dict)
    for sku, reason, units in await session.execute(
        select(ReturnLineRow.sku, ReturnLineRow.reason, func.sum(ReturnLineRow.quantity))
        .join(ReturnRow, ReturnRow.return_id == ReturnLineRow.return_id)
        .join(OrderRow, OrderRow.order_id == ReturnLineRow.order_id)
        .where(cohort, ReturnRow.status.not_in(void))
        .group_by(ReturnLineRow.sku, ReturnLineRow.reason)
    ):
        returned[sku][reason] = int(units)
    total_sold = sum(sold.values())
    per_reason = {reason.value: 0 for reason in ReturnReason}
    for reasons in returned.values():
        for reason, units in reasons.items():
            per_reason[reason] = per_reason.get(reason, 0) + units
    total_returned = sum(per_reason.values())
    skus = [
        SkuReturns(
            sku=sku,
            sold_units=units,
            returned_units=sum(returned[sku].values()),
            return_rate=round(sum(returned[sku].values()) / units, 4),
            by_reason=dict(sorted(returned[sku].items())),
        )
        for sku, units in sold.items()
    ]
    skus.sort(key=lambda figures: (-figures.return_rate, -figures.returned_units, figures.sku))
    return ReturnAnalytics(
        tz=tz,
        sold_units=total_sold,
        returned_units=total_returned,
        return_rate=_rate(total_returned, total_sold),
        by_reason=[
            ReasonFigures(reason=reason, units=units, return_rate=_rate(units, total_sold))
            for reason, units in per_reason.items()
        ],
        skus=skus[:limit],
    )
