"""The forecast's tables: purchase terms per SKU, stock on order, the latest forecast per SKU and reorder suggestions.

Imported at the end of models.tables, so that they belong to the one metadata Alembic compares.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base


class PurchaseTermsRow(Base):
    """How a SKU is bought: the supplier's lead time, the least it sells, and the pack it sells in."""

    __tablename__ = "purchase_terms"
    __table_args__ = (
        CheckConstraint("lead_time_days > 0", name="lead_time_positive"),
        CheckConstraint("min_order_quantity >= 1", name="min_order_positive"),
        CheckConstraint("pack_size >= 1", name="pack_size_positive"),
    )
    sku: Mapped[str] = mapped_column(ForeignKey("skus.sku"), primary_key=True)
    lead_time_days: Mapped[int] = mapped_column(Integer)
    min_order_quantity: Mapped[int] = mapped_column(Integer, default=1)
    pack_size: Mapped[int] = mapped_column(Integer, default=1)


class StockOnOrderRow(Base):
    """Units bought (an accepted suggestion) and not yet received, per SKU and warehouse."""

    __tablename__ = "stock_on_order"
    __table_args__ = (CheckConstraint("quantity >= 0", name="quantity_non_negative"),)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    warehouse: Mapped[str] = mapped_column(String(32), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer, default=0)


class DemandForecastRow(Base):
    """The newest forecast of a SKU; each run replaces it."""

    __tablename__ = "demand_forecasts"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    generated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    run_id: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(40))
    pattern: Mapped[str] = mapped_column(String(20))
    adi: Mapped[float] = mapped_column(Float)
    cv2: Mapped[float] = mapped_column(Float)
    mase: Mapped[float] = mapped_column(Float)
    # {model: backtest MASE} of every candidate; history [{date, quantity}]; points [{date, mean, lo80, ...}].
    candidates: Mapped[dict[str, Any]] = mapped_column(JSON)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    points: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class ReorderSuggestionRow(Base):
    """What a forecast run suggests buying for one SKU and warehouse; open until accepted, dismissed or superseded."""

    __tablename__ = "reorder_suggestions"
    __table_args__ = (
        UniqueConstraint("run_id", "sku", "warehouse", name="uq_reorder_suggestions_run"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("status IN ('open', 'accepted', 'dismissed', 'superseded')", name="status_known"),
        Index("ix_reorder_suggestions_status_created", "status", "created_at"),
        Index("ix_reorder_suggestions_sku_status", "sku", "status"),
    )
    suggestion_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(200))
    sku: Mapped[str] = mapped_column(String(64))
    warehouse: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int] = mapped_column(Integer)
    reorder_point: Mapped[int] = mapped_column(Integer)
    on_hand: Mapped[int] = mapped_column(Integer)
    available: Mapped[int] = mapped_column(Integer)
    on_order: Mapped[int] = mapped_column(Integer)
    lead_time_days: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
