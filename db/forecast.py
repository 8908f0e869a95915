"""The forecast's reads and writes: demand from order lines, purchase terms and stock positions, the newest
forecast per SKU, and reorder suggestions from open through accepted or dismissed.

Every function runs inside the caller's transaction. A suggestion's id is derived from its run, SKU
and warehouse, so a retried run writes the same suggestions again without doubling them. Accepting
and dismissing are conditional updates of an open suggestion: a repeated accept answers as the
first did and adds nothing more on order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import dialect_insert
from forecast.reorder import DEFAULT_LEAD_TIME_DAYS, PurchaseTerms, Suggestion
from forecast.result import SkuForecast
from forecast.series import DailySeries, DemandLine
from models.forecast import DemandDayView, ForecastPointView, ForecastView, SuggestionList, SuggestionView
from models.forecast_tables import DemandForecastRow, PurchaseTermsRow, ReorderSuggestionRow, StockOnOrderRow
from models.order import OrderStatus
from models.tables import OrderLineRow, OrderRow, ReservationRow, SkuRow, StockRow, WarehouseRow

OPEN = "open"
ACCEPTED = "accepted"
DISMISSED = "dismissed"
SUPERSEDED = "superseded"
# Orders that never were demand: refused by review before anything was asked of stock.
NOT_DEMAND = (OrderStatus.REJECTED.value,)
# The days of history the API shows beside a forecast.
HISTORY_SHOWN_DAYS = 90
_SUGGESTION_NAMESPACE = uuid.UUID("7d0c4f8e-3b1a-4c55-9a8e-2f6d1e0b9c31")


class SuggestionNotFound(Exception):
    def __init__(self, suggestion_id: str) -> None:
        super().__init__(f"no reorder suggestion {suggestion_id}")
        self.suggestion_id = suggestion_id


class SkuNotFound(Exception):
    def __init__(self, sku: str) -> None:
        super().__init__(f"unknown SKU {sku}")
        self.sku = sku


class SuggestionClosed(Exception):
    """The suggestion was decided otherwise, or superseded by a newer run's."""

    def __init__(self, suggestion_id: str, status: str) -> None:
        super().__init__(f"reorder suggestion {suggestion_id} is {status}")
        self.status = status


@dataclass(frozen=True)
class StockPosition:
    warehouse: str
    on_hand: int
    available: int
    on_order: int
    # Units of the SKU reserved at this warehouse for orders in the history window.
    served: int


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _utc_day(moment: datetime) -> date:
    # SQLite hands back naive datetimes; everything is written in UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).date()


def _demand_filter(first_day: date, last_day: date) -> list:  # type: ignore[type-arg]
    return [
        OrderRow.created_at >= _start_of(first_day),
        OrderRow.created_at < _start_of(last_day + timedelta(days=1)),
        OrderRow.status.not_in(NOT_DEMAND),
    ]


async def demand_skus(session: AsyncSession, first_day: date, last_day: date) -> list[str]:
    """The SKUs ordered between the two days (inclusive), in order."""
    rows = await session.scalars(
        select(OrderLineRow.sku)
        .join(OrderRow, OrderRow.order_id == OrderLineRow.order_id)
        .where(*_demand_filter(first_day, last_day))
        .distinct()
        .order_by(OrderLineRow.sku)
    )
    return list(rows)


async def demand_lines(session: AsyncSession, skus: Sequence[str], first_day: date, last_day: date) -> list[DemandLine]:
    """The order lines of these SKUs placed between the two days, each on its order's UTC day."""
    rows = await session.execute(
        select(OrderLineRow.sku, OrderRow.created_at, OrderLineRow.quantity)
        .join(OrderRow, OrderRow.order_id == OrderLineRow.order_id)
        .where(OrderLineRow.sku.in_(skus), *_demand_filter(first_day, last_day))
    )
    return [DemandLine(sku, _utc_day(created_at), quantity) for sku, created_at, quantity in rows]


async def purchase_terms(session: AsyncSession, skus: Sequence[str]) -> dict[str, PurchaseTerms]:
    """Each SKU's terms; a SKU without any gets the default lead time, no minimum and packs of one."""
    rows = await session.scalars(select(PurchaseTermsRow).where(PurchaseTermsRow.sku.in_(skus)))
    found = {row.sku: PurchaseTerms(row.lead_time_days, row.min_order_quantity, row.pack_size) for row in rows}
    return {sku: found.get(sku, PurchaseTerms(DEFAULT_LEAD_TIME_DAYS)) for sku in skus}


async def get_purchase_terms(session: AsyncSession, sku: str) -> PurchaseTerms:
    """The SKU's terms, the defaults when none are set; SkuNotFound for an unknown SKU."""
    if await session.scalar(select(SkuRow.sku).where(SkuRow.sku == sku)) is None:
        raise SkuNotFound(sku)
    return (await purchase_terms(session, [sku]))[sku]


async def set_purchase_terms(session: AsyncSession, sku: str, terms: PurchaseTerms) -> None:
    """Set the SKU's terms; SkuNotFound for an unknown SKU."""
    if await session.scalar(select(SkuRow.sku).where(SkuRow.sku == sku)) is None:
        raise SkuNotFound(sku)
    values = {
        "lead_time_days": terms.lead_time_days,
        "min_order_quantity": terms.min_order_quantity,
        "pack_size": terms.pack_size,
    }
    insert = dialect_insert(session, PurchaseTermsRow).values(sku=sku, **values)
    await session.execute(insert.on_conflict_do_update(index_elements=["sku"], set_=values))


async def stock_positions(
    session: AsyncSession, sku: str, first_day: date, priority: Sequence[str] = ()
) -> list[StockPosition]:
    """The SKU at every warehouse that stocks it, has it on order or served it, else at the first warehouse;
    in the order allocation draws from them (`priority` first, then by code)."""
    rank = {code: index for index, code in enumerate(priority)}

    def ordered(codes: set[str]) -> list[str]:
        return sorted(codes, key=lambda code: (rank.get(code, len(rank)), code))

    stock = {
        warehouse: (on_hand, reserved)
        for warehouse, on_hand, reserved in await session.execute(
            select(StockRow.warehouse, StockRow.on_hand, StockRow.reserved).where(StockRow.sku == sku)
        )
    }
    on_order: dict[str, int] = {
        warehouse: quantity
        for warehouse, quantity in await session.execute(
            select(StockOnOrderRow.warehouse, StockOnOrderRow.quantity).where(StockOnOrderRow.sku == sku)
        )
    }
    served: dict[str, int] = {
        warehouse: int(units or 0)
        for warehouse, units in await session.execute(
            select(ReservationRow.warehouse, func.sum(ReservationRow.quantity))
            .where(
                ReservationRow.sku == sku,
                ReservationRow.state.in_(("reserved", "committed")),
                ReservationRow.created_at >= _start_of(first_day),
            )
            .group_by(ReservationRow.warehouse)
        )
    }
    warehouses = ordered(set(stock) | set(on_order) | set(served))
    if not warehouses:
        warehouses = ordered(set(await session.scalars(select(WarehouseRow.code))))[:1]
    return [
        StockPosition(
            warehouse=code,
            on_hand=stock.get(code, (0, 0))[0],
            available=stock.get(code, (0, 0))[0] - stock.get(code, (0, 0))[1],
            on_order=on_order.get(code, 0),
            served=served.get(code, 0),
        )
        for code in warehouses
    ]


async def save_forecast(
    session: AsyncSession, run_id: str, generated_at: datetime, forecast: SkuForecast, history: DailySeries
) -> None:
    """Replace the SKU's forecast with this one, kept beside the last days of the demand it was made from."""
    values = {
        "generated_at": generated_at,
        "run_id": run_id,
        "model": forecast.model,
        "pattern": forecast.pattern.value,
        "adi": forecast.adi,
        "cv2": forecast.cv2,
        "mase": forecast.mase,
        "candidates": forecast.candidates,
        "history": [
            {"date": day.isoformat(), "quantity": quantity}
            for day, quantity in list(zip(history.days, history.quantities, strict=True))[-HISTORY_SHOWN_DAYS:]
        ],
        "points": [
            {
                "date": p.day.isoformat(),
                "mean": p.mean,
                "lo80": p.lo80,
                "hi80": p.hi80,
                "lo95": p.lo95,
                "hi95": p.hi95,
            }
            for p in forecast.points
        ],
    }
    insert = dialect_insert(session, DemandForecastRow).values(sku=forecast.sku, **values)
    await session.execute(insert.on_conflict_do_update(index_elements=["sku"], set_=values))


def suggestion_id(run_id: str, sku: str, warehouse: str) -> str:
    return str(uuid.uuid5(_SUGGESTION_NAMESPACE, f"{run_id}\x00{sku}\x00{warehouse}"))


async def save_suggestions(
    session: AsyncSession, run_id: str, created_at: datetime, sku: str, suggestions: Sequence[Suggestion]
) -> None:
    """Write the run's suggestions for the SKU; open ones of earlier runs are superseded by them."""
    await session.execute(
        update(ReorderSuggestionRow)
        .where(
            ReorderSuggestionRow.sku == sku, ReorderSuggestionRow.status == OPEN, ReorderSuggestionRow.run_id != run_id
        )
        .values(status=SUPERSEDED, decided_at=created_at)
    )
    for s in suggestions:
        insert = dialect_insert(session, ReorderSuggestionRow).values(
            suggestion_id=suggestion_id(run_id, sku, s.warehouse),
            run_id=run_id,
            sku=sku,
            warehouse=s.warehouse,
            quantity=s.quantity,
            reorder_point=s.reorder_point,
            on_hand=s.on_hand,
            available=s.available,
            on_order=s.on_order,
            lead_time_days=s.lead_time_days,
            model=s.model,
            status=OPEN,
            created_at=created_at,
        )
        await session.execute(insert.on_conflict_do_nothing(index_elements=["suggestion_id"]))


def _view(row: ReorderSuggestionRow) -> SuggestionView:
    return SuggestionView(
        suggestion_id=row.suggestion_id,
        sku=row.sku,
        warehouse=row.warehouse,
        quantity=row.quantity,
        reorder_point=row.reorder_point,
        on_hand=row.on_hand,
        available=row.available,
        on_order=row.on_order,
        lead_time_days=row.lead_time_days,
        model=row.model,
        created_at=row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC),
        status=row.status,
    )


async def list_suggestions(session: AsyncSession, status: str | None = OPEN, limit: int = 500) -> SuggestionList:
    """Suggestions of one status (all when None), newest first."""
    query = select(ReorderSuggestionRow).order_by(
        ReorderSuggestionRow.created_at.desc(), ReorderSuggestionRow.sku, ReorderSuggestionRow.warehouse
    )
    if status is not None:
        query = query.where(ReorderSuggestionRow.status == status)
    return SuggestionList(items=[_view(row) for row in await session.scalars(query.limit(limit))])


async def _decide(session: AsyncSession, suggestion_id: str, status: str) -> tuple[SuggestionView, bool]:
    """Move an open suggestion to `status`: its view, and whether this call made the change."""
    changed = await session.execute(
        update(ReorderSuggestionRow)
        .where(ReorderSuggestionRow.suggestion_id == suggestion_id, ReorderSuggestionRow.status == OPEN)
        .values(status=status, decided_at=datetime.now(UTC))
    )
    row = await session.get(ReorderSuggestionRow, suggestion_id, populate_existing=True)
    if row is None:
        raise SuggestionNotFound(suggestion_id)
    if row.status != status:
        raise SuggestionClosed(suggestion_id, row.status)
    return _view(row), changed.rowcount == 1  # type: ignore[attr-defined]


async def accept_suggestion(session: AsyncSession, suggestion_id: str) -> SuggestionView:
    """Accept the suggestion and put its quantity on order; accepting it again changes nothing."""
    view, changed = await _decide(session, suggestion_id, ACCEPTED)
    if changed:
        insert = dialect_insert(session, StockOnOrderRow).values(
            sku=view.sku, warehouse=view.warehouse, quantity=view.quantity
        )
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=["sku", "warehouse"], set_={"quantity": StockOnOrderRow.quantity + view.quantity}
            )
        )
    return view


async def dismiss_suggestion(session: AsyncSession, suggestion_id: str) -> SuggestionView:
    view, _ = await _decide(session, suggestion_id, DISMISSED)
    return view


async def receive_on_order(session: AsyncSession, sku: str, warehouse: str, quantity: int) -> None:
    """A delivery received: that many units are no longer on order (never below zero)."""
    await session.execute(
        update(StockOnOrderRow)
        .where(StockOnOrderRow.sku == sku, StockOnOrderRow.warehouse == warehouse)
        .values(
            quantity=case(
                (StockOnOrderRow.quantity > quantity, StockOnOrderRow.quantity - quantity),
                else_=0,
            )
        )
    )


async def on_order(session: AsyncSession, sku: str, warehouse: str) -> int:
    quantity = await session.scalar(
        select(StockOnOrderRow.quantity).where(StockOnOrderRow.sku == sku, StockOnOrderRow.warehouse == warehouse)
    )
    return int(quantity or 0)


async def get_forecast(session: AsyncSession, sku: str) -> ForecastView | None:
    row = await session.get(DemandForecastRow, sku)
    if row is None:
        return None
    generated_at = row.generated_at if row.generated_at.tzinfo else row.generated_at.replace(tzinfo=UTC)
    return ForecastView(
        sku=row.sku,
        model=row.model,
        mase=row.mase,
        pattern=row.pattern,
        generated_at=generated_at,
        history=[DemandDayView.model_validate(day) for day in row.history],
        points=[ForecastPointView.model_validate(point) for point in row.points],
    )
