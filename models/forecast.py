"""The forecast's names and contracts: the schedule and workflows, their payloads, and what the API answers.

The workflows' payloads and the API's views are distinct models, converted at the boundary
(db.forecast builds the views from rows), so that reshaping the API changes no workflow payload.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

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
    date: Annotated[date, Field(description="The day (UTC).")]
    mean: float = Field(description="Units expected that day.")
    lo80: float = Field(description="Lower bound of the 80% interval.")
    hi80: float = Field(description="Upper bound of the 80% interval.")
    lo95: float = Field(description="Lower bound of the 95% interval.")
    hi95: float = Field(description="Upper bound of the 95% interval.")


class DemandDayView(BaseModel):
    date: Annotated[date, Field(description="The day (UTC) the orders were placed.")]
    quantity: float = Field(description="Units ordered that day.")


class ForecastView(BaseModel):
    sku: str = Field(description="The SKU forecast.")
    model: str = Field(description="The model kept: the lowest MASE on the rolling backtest.")
    mase: float = Field(description="The kept model's backtest MASE (below 1: better than seasonal naive).")
    pattern: str = Field(description="smooth, erratic, intermittent or lumpy (by ADI and CV²).")
    generated_at: datetime = Field(description="When the forecast run wrote this forecast.")
    history: list[DemandDayView] = Field(description="Daily demand the model was fitted on, oldest first.")
    points: list[ForecastPointView] = Field(description="The next 28 days, with 80% and 95% intervals.")


class SuggestionView(BaseModel):
    suggestion_id: str = Field(description="Accept or dismiss the suggestion by this id.")
    sku: str = Field(description="The SKU to buy.")
    warehouse: str = Field(description="The warehouse to receive it.")
    quantity: int = Field(description="Units to buy: the shortfall, at least the minimum order, in whole packs.")
    reorder_point: int = Field(description="Lead-time demand plus safety stock for a 95% service level.")
    on_hand: int = Field(description="Units in the warehouse when the suggestion was made.")
    available: int = Field(description="Units on hand and not reserved.")
    on_order: int = Field(description="Units bought and not yet received.")
    lead_time_days: int = Field(description="The supplier's lead time the suggestion covers.")
    model: str = Field(description="The forecast model behind it.")
    created_at: datetime = Field(description="When the forecast run made it.")
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
    sku: str = Field(description="The SKU these terms are for.")
