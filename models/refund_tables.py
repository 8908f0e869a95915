"""The refunds' tables: every refund of an order, a return's or one without a return, and their idempotency keys.

Imported at the end of models.tables, so that they belong to the one metadata Alembic compares.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base


class RefundRow(Base):
    """One refund of an order, claimed against its invoice with the order's row locked."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("status IN ('requested', 'refunded', 'failed')", name="status_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_refunds_order", "order_id", "created_at"),
        Index("ix_refunds_status", "status"),
    )
    refund_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    # The return whose received goods this refunds; null for a refund without a return.
    return_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    workflow_id: Mapped[str] = mapped_column(String(96))
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(500))
    note: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    requested_by: Mapped[str] = mapped_column(String(32))
    credit_note: Mapped[str | None] = mapped_column(String(64), nullable=True)
    finance_refund_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    needs_attention: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # The number of the refund's latest status event (webhooks), from 1.
    last_seq: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RefundIdempotencyKeyRow(Base):
    """Idempotency-Key of POST /orders/{id}/refunds → the one refund it created; keys are per caller."""

    __tablename__ = "refund_idempotency_keys"
    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    refund_id: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
