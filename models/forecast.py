"""The forecast's names and contracts: the schedule and workflows, their payloads, and what the API answers.

The workflows' payloads and the API's views are distinct models, converted at the boundary
(db.forecast builds the views from rows), so that reshaping the API changes no workflow payload.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

# The Temporal schedule that forecasts demand, the workflow it starts and that workflow's id prefix.
FORECAST_SCHEDULE_ID = "demand-forecast"
FORECAST_WORKFLOW = "DemandForecastWorkflow"
FORECAST_WORKFLOW_ID = "demand-forecast"
# One purchase request per accepted suggestion.
PURCHASE_REQUEST_WORKFLOW = "PurchaseRequestWorkflow"


def purchase_request_workflow_id(suggestion_id: str) -> str:
    return f"purchase-request-{suggestion_id}"


# Workflow and activity payloads.


class ForecastRequest(BaseModel):
    """One forecast run: every SKU asked for in the last `history_days` days, `chunk_size` SKUs per activity."""

    chunk_size: int = 50
    history_days: int = 365
    # The day forecasts start from (demand is read up to the day before); the run's own start day when unset.
    as_of: date | None = None


class DemandSkusInput(BaseModel):
    as_of: date
    history_days: int


class DemandSkus(BaseModel):
    skus: list[str]


class ForecastChunkInput(BaseModel):
    run_id: str
    as_of: date
    history_days: int
    skus: list[str]


class ForecastChunkResult(BaseModel):
    forecasts: int = 0
    suggestions: int = 0
    # SKUs whose history is too short to backtest, left without a forecast.
    too_short: list[str] = []


class ForecastRunSummary(BaseModel):
    as_of: date
    skus: int
    chunks: int
    forecasts: int
    suggestions: int
    too_short: int


class PurchaseRequestInput(BaseModel):
    suggestion_id: str
    sku: str
    warehouse: str
    quantity: int


# What the API answers with.


class ForecastPointView(BaseModel):
    date: date
    mean: float = Field(description="Units expected that day.")
    lo80: float
    hi80: float
    lo95: float
    hi95: float


class DemandDayView(BaseModel):
    date: date
    quantity: float = Field(description="Units ordered that day.")


class ForecastView(BaseModel):
    sku: str
    model: str = Field(description="The model kept: the lowest MASE on the rolling backtest.")
    mase: float = Field(description="The kept model's backtest MASE (below 1: better than seasonal naive).")
    pattern: str = Field(description="smooth, erratic, intermittent or lumpy (by ADI and CV²).")
    generated_at: datetime
    history: list[DemandDayView]
    points: list[ForecastPointView] = Field(description="The next 28 days, with 80% and 95% intervals.")


class SuggestionView(BaseModel):
    suggestion_id: str
    sku: str
    warehouse: str
    quantity: int = Field(description="Units to buy: the shortfall, at least the minimum order, in whole packs.")
    reorder_point: int = Field(description="Lead-time demand plus safety stock for a 95% service level.")
    on_hand: int
    available: int
    on_order: int
    lead_time_days: int
    model: str
    created_at: datetime
    status: str = Field(description="open, accepted, dismissed or superseded (by a newer run's suggestion).")


class SuggestionList(BaseModel):
    items: list[SuggestionView]


class PurchaseTermsBody(BaseModel):
    """How a SKU is bought, for its reorder suggestions."""

    model_config = ConfigDict(extra="forbid")

    lead_time_days: int = Field(ge=1, le=365, description="Days from ordering to receiving.")
    min_order_quantity: int = Field(default=1, ge=1, le=1_000_000, description="The least the supplier sells.")
    pack_size: int = Field(default=1, ge=1, le=100_000, description="Units per pack; orders are whole packs.")


class PurchaseTermsView(PurchaseTermsBody):
    sku: str
