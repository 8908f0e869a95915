"""The dashboard's and purchasing page's charts and headline figures, made from the analytics API's answers.

Pure functions: each takes the very models the API returns (models.analytics, models.forecast) and
draws them (analytics.charts), so a page shows the numbers the API serves, computed once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from analytics.charts import Chart, ForecastPoint, forecast, horizontal_bars, lines, stacked_bars
from models.analytics import Fulfilment, OrdersSeries, ReturnAnalytics, SkuAnalytics, Summary
from models.forecast import ForecastView
from models.order import OrderStatus

# Stacked from the bottom in the order an order moves through them.
STATUS_ORDER = [status.value for status in OrderStatus]
# Each status's colour and pattern (analytics.charts' style numbers), the same in every period: blue and
# green for orders on their way and done, warm colours for those held up, pink and black for the ended.
STATUS_STYLE = {
    "received": 0,
    "pending_review": 1,
    "rejected": 7,
    "allocating": 8,
    "backordered": 5,
    "fulfilling": 6,
    "shipped": 4,
    "delivered": 2,
    "cancelled": 3,
    "failed": 9,
}


@dataclass(frozen=True)
class Headline:
    """A figure of the period against the period of equal length before it."""

    label: str
    now: str
    before: str
    change_pct: float | None


def _amount(value: Decimal, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def headlines(summary: Summary) -> list[Headline]:
    before = {figures.currency: figures for figures in summary.previous.by_currency}
    changes = {change.currency: change for change in summary.change.by_currency}
    cards = [Headline("Orders", str(summary.current.orders), str(summary.previous.orders), summary.change.orders_pct)]
    for now in summary.current.by_currency:
        earlier, change = before.get(now.currency), changes[now.currency]
        for label, figure in (("Revenue", "revenue"), ("Average order value", "average_order_value")):
            cards.append(
                Headline(
                    f"{label} ({now.currency})",
                    _amount(getattr(now, figure), now.currency),
                    _amount(getattr(earlier, figure), now.currency) if earlier else "none",
                    getattr(change, f"{figure}_pct"),
                )
            )
    return cards


def main_currency(summary: Summary) -> str | None:
    """The currency with the most revenue in the period (the one SKUs are ranked by revenue in)."""
    ranked = sorted(summary.current.by_currency, key=lambda figures: (-figures.revenue, figures.currency))
    return ranked[0].currency if ranked else None


def orders_chart(series: OrdersSeries) -> Chart:
    days = [item.start.isoformat() for item in series.items]
    present = {status for item in series.items for status in item.by_status}
    statuses = [status for status in STATUS_ORDER if status in present] + sorted(present - set(STATUS_ORDER))
    stacks = [(status, [float(item.by_status.get(status, 0)) for item in series.items]) for status in statuses]
    styles = [STATUS_STYLE.get(status, len(STATUS_STYLE)) for status in statuses]
    return stacked_bars("orders", "Orders placed per day, by their status now", days, stacks, "orders", styles)


def revenue_charts(series: OrdersSeries) -> list[Chart]:
    currencies = sorted({amount.currency for item in series.items for amount in item.revenue})
    days = [item.start.isoformat() for item in series.items]
    charts = []
    for currency in currencies:
        values = [
            float(sum((a.amount for a in item.revenue if a.currency == currency), Decimal(0))) for item in series.items
        ]
        charts.append(
            stacked_bars(f"revenue-{currency}", f"Revenue per day ({currency})", days, [(currency, values)], currency)
        )
    return charts


def lead_time_charts(fulfilment: Fulfilment) -> list[Chart]:
    weeks = [week.week.isoformat() for week in fulfilment.weeks]
    charts = []
    for key, title, step in (
        ("ship-lead", "Placed to shipped, hours (per week shipped)", "placed_to_shipped"),
        ("deliver-lead", "Shipped to delivered, hours (per week delivered)", "shipped_to_delivered"),
    ):
        steps = [getattr(week, step) for week in fulfilment.weeks]
        charts.append(
            lines(
                key,
                title,
                weeks,
                [("p50", [s.p50_hours for s in steps]), ("p90", [s.p90_hours for s in steps])],
                "hours",
            )
        )
    return charts


def ageing_chart(fulfilment: Fulfilment) -> Chart:
    bands = fulfilment.backorder_ageing
    return horizontal_bars(
        "ageing",
        "Open backorders by days waiting",
        [f"{band.days} days" for band in bands],
        [float(band.orders) for band in bands],
        "orders",
    )


def top_sku_charts(skus: SkuAnalytics, currency: str | None) -> list[Chart]:
    charts = [
        horizontal_bars(
            "top-units",
            "Top SKUs by units",
            [item.sku for item in skus.by_units],
            [float(item.units) for item in skus.by_units],
            "units",
        )
    ]
    if currency is not None:

        def revenue(amounts: list[tuple[str, Decimal]]) -> float:
            return float(sum((amount for c, amount in amounts if c == currency), Decimal(0)))

        charts.append(
            horizontal_bars(
                "top-revenue",
                f"Top SKUs by revenue ({currency})",
                [item.sku for item in skus.by_revenue],
                [revenue([(a.currency, a.amount) for a in item.revenue]) for item in skus.by_revenue],
                currency,
            )
        )
    return charts


def return_charts(returns: ReturnAnalytics) -> list[Chart]:
    return [
        horizontal_bars(
            "return-skus",
            "Return rate by SKU, % of units sold",
            [item.sku for item in returns.skus],
            [round(item.return_rate * 100, 2) for item in returns.skus],
            "%",
        ),
        horizontal_bars(
            "return-reasons",
            "Units returned by reason",
            [item.reason.replace("_", " ") for item in returns.by_reason],
            [float(item.units) for item in returns.by_reason],
            "units",
        ),
    ]


def forecast_chart(view: ForecastView, key: str | None = None, history_days: int = 56) -> Chart:
    """The SKU's recent demand (the last `history_days` days), its 28-day forecast and the intervals."""
    history = [(day.date.isoformat(), day.quantity) for day in view.history[-history_days:]]
    points = [ForecastPoint(p.date.isoformat(), p.mean, p.lo80, p.hi80, p.lo95, p.hi95) for p in view.points]
    title = f"{view.sku}: demand and forecast ({view.model}, MASE {view.mase:.2f})"
    return forecast(key or "forecast-" + re.sub(r"[^A-Za-z0-9_-]", "-", view.sku), title, history, points)
