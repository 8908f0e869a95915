"""The analytics' rollup tables: orders counted per UTC hour, status and currency, kept by the status writes.

Imported at the end of models.tables, so that they belong to the one metadata Alembic compares.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base


class OrderRollupRow(Base):
    """Orders placed in one UTC hour that are in one status now, in one currency: how many, and their totals.

    An order moves from its old status's cell to its new one's in the transaction that writes the
    status, so the cells always add up to the orders table.
    """

    __tablename__ = "order_rollups"
    __table_args__ = (
        CheckConstraint("orders >= 0", name="orders_non_negative"),
        CheckConstraint("revenue >= 0", name="revenue_non_negative"),
    )
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)
    # The sum of the orders' totals, whatever their status; the queries leave out statuses that are not revenue.
    revenue: Mapped[Decimal] = mapped_column(Numeric(18, 2))


class OrderRollupMarkRow(Base):
    """The status and total an order is counted under in order_rollups, so that a write moves it from there,
    and never twice; the total, because a change of the order changes its total after it was counted."""

    __tablename__ = "order_rollup_marks"
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
