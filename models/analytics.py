"""What the analytics API answers: figures per period, bucket, week, SKU and customer segment.

Money is per currency, never summed across currencies. Revenue counts orders that were not rejected,
cancelled or failed; order counts count every order placed.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, Field


class CurrencyFigures(BaseModel):
    currency: str
    orders: int = Field(description="Orders that count as revenue (not rejected, cancelled or failed).")
    revenue: Decimal
    average_order_value: Decimal


class PeriodFigures(BaseModel):
    first_day: date
    last_day: date
    orders: int = Field(description="Every order placed in the period.")
    by_currency: list[CurrencyFigures]


class CurrencyChange(BaseModel):
    currency: str
    revenue_pct: float | None = Field(description="Change against the previous period, in %; null when that had none.")
    average_order_value_pct: float | None


class Change(BaseModel):
    orders_pct: float | None
    by_currency: list[CurrencyChange]


class Summary(BaseModel):
    tz: str
    current: PeriodFigures
    previous: PeriodFigures = Field(description="The period of equal length just before.")
    change: Change


class CurrencyAmount(BaseModel):
    currency: str
    amount: Decimal


class OrdersBucket(BaseModel):
    start: date = Field(description="The bucket's first day (a week's Monday), in the time zone asked for.")
    orders: int
    by_status: dict[str, int] = Field(description="Orders placed in the bucket, by their status now.")
    revenue: list[CurrencyAmount]


class OrdersSeries(BaseModel):
    tz: str
    bucket: str
    items: list[OrdersBucket]


class Percentiles(BaseModel):
    count: int
    p50_hours: float | None
    p90_hours: float | None


class FulfilmentWeek(BaseModel):
    week: date = Field(description="Monday of the week the step ended in.")
    placed_to_shipped: Percentiles
    shipped_to_delivered: Percentiles


class AgeingBand(BaseModel):
    days: str = Field(description='How long the orders have waited: "0-1", "2-3", "4-7", "8-14" or "15+" days.')
    orders: int
    units: int


class Fulfilment(BaseModel):
    tz: str
    weeks: list[FulfilmentWeek]
    backorder_ageing: list[AgeingBand] = Field(description="Open backorders now, by days waiting.")


class SkuFigures(BaseModel):
    sku: str
    units: int
    revenue: list[CurrencyAmount]


class StockOut(BaseModel):
    sku: str
    available: int
    waiting_units: int = Field(description="Units open backorders wait for.")


class SkuAnalytics(BaseModel):
    by_units: list[SkuFigures]
    by_revenue: list[SkuFigures] = Field(description="Ordered by revenue in the period's main currency.")
    stock_outs: list[StockOut] = Field(description="Active SKUs with nothing available now.")


class SegmentFigures(BaseModel):
    segment: str
    meaning: str
    customers: int


class CustomerValue(BaseModel):
    customer_id: str
    currency: str
    orders: int
    revenue: Decimal


class CustomerAnalytics(BaseModel):
    customers: int = Field(description="Customers who ordered in the period.")
    repeat_purchase_rate: float | None = Field(description="Share of them with two or more orders.")
    average_days_between_orders: float | None = Field(description="Over customers with two or more orders.")
    segments: list[SegmentFigures] = Field(description="RFM segments, recency counted to the period's end.")
    top_customers: list[CustomerValue]


class ReasonFigures(BaseModel):
    reason: str
    units: int = Field(description="Units returned for this reason.")
    return_rate: float | None = Field(description="Those units over the units sold; null when none were sold.")


class SkuReturns(BaseModel):
    sku: str
    sold_units: int
    returned_units: int
    return_rate: float
    by_reason: dict[str, int] = Field(description="Units returned, by reason (reasons with none left out).")


class ReturnAnalytics(BaseModel):
    tz: str
    sold_units: int = Field(description="Units on the orders placed in the period that count as revenue.")
    returned_units: int = Field(
        description="Units of those orders on returns so far (declined, cancelled or expired returns left out)."
    )
    return_rate: float | None
    by_reason: list[ReasonFigures] = Field(description="Every return reason, in the order the return form lists them.")
    skus: list[SkuReturns] = Field(description="SKUs sold in the period, highest return rate first.")
