"""The relational schema (SQLAlchemy 2). Alembic migrations under migrations/ create it.

Invariants live here as constraints, so that no code path can break them:
reserved stock never exceeds stock on hand, a reservation is made once per
order, line, allocation round and warehouse, an idempotency key maps to one order.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class SkuRow(Base):
    __tablename__ = "skus"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)


class WarehouseRow(Base):
    __tablename__ = "warehouses"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


class StockRow(Base):
    __tablename__ = "stock"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="on_hand_non_negative"),
        CheckConstraint("reserved >= 0", name="reserved_non_negative"),
        CheckConstraint("reserved <= on_hand", name="reserved_within_on_hand"),
    )
    sku: Mapped[str] = mapped_column(ForeignKey("skus.sku"), primary_key=True)
    warehouse: Mapped[str] = mapped_column(ForeignKey("warehouses.code"), primary_key=True)
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)


class ReservationRow(Base):
    """Stock held for one order line in one allocation round, at one warehouse."""

    __tablename__ = "reservations"
    __table_args__ = (
        UniqueConstraint("order_id", "line_no", "attempt", "warehouse", name="uq_reservations_key"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("state IN ('reserved', 'released', 'committed')", name="state_known"),
        Index("ix_reservations_order_state", "order_id", "state"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64))
    line_no: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(64))
    warehouse: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="reserved")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LineShortageRow(Base):
    """A line that could not be reserved whole in an allocation round: the round's answer, kept like a reservation.

    A repeated reservation of the same key answers with it, so a retried or re-run round finds
    the same shortage even if stock has been freed since.
    """

    __tablename__ = "line_shortages"
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StockReceiptRow(Base):
    __tablename__ = "stock_receipts"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)
    receipt_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    sku: Mapped[str] = mapped_column(ForeignKey("skus.sku"))
    warehouse: Mapped[str] = mapped_column(ForeignKey("warehouses.code"))
    quantity: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CustomerFlagRow(Base):
    """Customers whose orders always go to manual review."""

    __tablename__ = "customer_flags"
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(500))


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_created", "created_at", "order_id"),
        Index("ix_orders_status_created", "status", "created_at"),
        Index("ix_orders_customer_created", "customer_id", "created_at"),
        Index("ix_orders_client_created", "client_id", "created_at"),
        # The analytics' figures of a period's orders, read from the index alone (PostgreSQL).
        Index(
            "ix_orders_created_figures",
            "created_at",
            postgresql_include=["order_id", "status", "currency", "total", "customer_id"],
        ),
        CheckConstraint("revision >= 1", name="revision_positive"),
    )
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(80))
    # The API client that placed the order (null for staff); clients see only their own orders.
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    # 1 when placed, one more per accepted change; lines, address and total are those of this revision.
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The newest timeline entry written, by (version, seq); status changes arriving out of order
    # or twice are ignored. The version is the workflow's history length when the entry was made:
    # a workflow task that replaces a lost one has a longer history, so what it writes wins.
    last_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    # The order as the workflow last reported it (models.order.OrderState as JSON), without
    # the customer's personal data, which `pii` holds encrypted (security.fields).
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    pii: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrderLineRow(Base):
    __tablename__ = "order_lines"
    # Orders by SKU, newest first, are read from this index alone until a page is full.
    __table_args__ = (
        Index("ix_order_lines_sku_placed", "sku", "placed_at", "order_id"),
        # The lines of a period's orders for the analytics, read from the index alone (PostgreSQL).
        Index("ix_order_lines_placed", "placed_at", postgresql_include=["order_id", "sku", "quantity", "unit_price"]),
    )
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    # The order's created_at, copied so that the SKU index orders lines as GET /orders orders orders.
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrderEventRow(Base):
    """The order's timeline: who or what changed it, and when."""

    __tablename__ = "order_events"
    # The fulfilment analytics read the entries of one status within a span of weeks.
    __table_args__ = (Index("ix_order_events_status_at", "status", "at"),)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Which workflow task wrote the entry (see OrderRow.last_version); a later one may replace it.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(100))
    event: Mapped[str] = mapped_column(String(100))
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class IdempotencyKeyRow(Base):
    """Client Idempotency-Key of POST /orders → the one order it created; keys are per caller."""

    __tablename__ = "idempotency_keys"
    # The API client the key belongs to ("" for staff keys), so two clients' keys never meet.
    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ShortageRow(Base):
    """An order waiting for stock of one SKU; open while resolved_at is null."""

    __tablename__ = "shortages"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "notice_status IS NULL OR notice_status IN ('pending', 'delivered', 'failing', 'refused')",
            name="notice_status_known",
        ),
        CheckConstraint("notice_attempts >= 0", name="notice_attempts_non_negative"),
    )
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The latest notice to purchasing about this shortage (none for rows recorded before notices were tracked).
    notice_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    notice_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    notice_attempts: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    notice_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class ApiKeyRow(Base):
    """An API key: only its keyed hash is kept; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role IN ('client', 'operator', 'purchasing', 'admin')", name="role_known"),
        CheckConstraint("role <> 'client' OR client_id IS NOT NULL", name="client_has_client_id"),
    )
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # HMAC-SHA256 of the secret part under the server's hashing secret, hex.
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditRow(Base):
    """Append-only record of every mutating request and every failed authentication."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_key_at", "key_id", "at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)
    role: Mapped[str | None] = mapped_column(String(20), nullable=True)
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(300), nullable=True)
    outcome: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class WebhookDeliveryRow(Base):
    """Signatures of inbound webhook deliveries already accepted, so a replayed one is refused."""

    __tablename__ = "webhook_deliveries"
    signature: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookSubscriptionRow(Base):
    """An outside URL told about order events, signed with its own secret (kept encrypted)."""

    __tablename__ = "webhook_subscriptions"
    subscription_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    # Order statuses to send; empty means all.
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebhookOutboxRow(Base):
    """An order event waiting to be delivered to one subscription; written with the status change."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (
        UniqueConstraint(
            "subscription_id", "order_id", "kind", "subject_id", "seq", "version", name="uq_webhook_outbox_event"
        ),
        Index("ix_webhook_outbox_due", "delivered_at", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("webhook_subscriptions.subscription_id"))
    order_id: Mapped[str] = mapped_column(String(64))
    # What the event is about: the order itself, or one of its returns or refunds (subject_id).
    kind: Mapped[str] = mapped_column(String(16), default="order", server_default="order")
    subject_id: Mapped[str] = mapped_column(String(80), default="", server_default="")
    seq: Mapped[int] = mapped_column(Integer)
    # The timeline entry's version (OrderEventRow.version): an entry replaced after a lost workflow task is sent again.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


# ---- Returns (RMA): written by the API when a return is requested and by the return workflow after. ----

RETURN_STATUSES = (
    "requested",
    "pending_review",
    "approved",
    "declined",
    "label_issued",
    "in_transit",
    "received",
    "refunded",
    "exchanged",
    "closed",
    "cancelled",
    "expired",
)


class ReturnRow(Base):
    """A return of goods from a delivered order; `state` is the return as its workflow last wrote it."""

    __tablename__ = "returns"
    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in RETURN_STATUSES)})", name="status_known"),
        CheckConstraint("value >= 0", name="value_non_negative"),
        Index("ix_returns_order", "order_id"),
        Index("ix_returns_created", "created_at", "return_id"),
        Index("ix_returns_status_created", "status", "created_at"),
    )
    return_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str] = mapped_column(String(80))
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    value: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    # The carrier's tracking number of the return label: its webhook events go to this return.
    tracking_number: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    needs_attention: Mapped[str | None] = mapped_column(String(500), nullable=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReturnLineRow(Base):
    """What a return covers of its order: the units of these lines may not be returned again."""

    __tablename__ = "return_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_return_lines_order_sku", "order_id", "sku"),
    )
    return_id: Mapped[str] = mapped_column(ForeignKey("returns.return_id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))


class ReturnReceiptRow(Base):
    """Units of a return the warehouse received, by receipt, SKU and condition: booked once each."""

    __tablename__ = "return_receipts"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("condition IN ('resellable', 'damaged')", name="condition_known"),
    )
    return_id: Mapped[str] = mapped_column(ForeignKey("returns.return_id"), primary_key=True)
    receipt_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    condition: Mapped[str] = mapped_column(String(16), primary_key=True)
    warehouse: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StockWriteOffRow(Base):
    """Units that came back unfit to sell: written off, never added to stock."""

    __tablename__ = "stock_write_offs"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)
    write_off_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    sku: Mapped[str] = mapped_column(ForeignKey("skus.sku"))
    warehouse: Mapped[str] = mapped_column(ForeignKey("warehouses.code"))
    quantity: Mapped[int] = mapped_column(Integer)
    return_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(String(200))
    written_off_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReturnIdempotencyKeyRow(Base):
    """Idempotency-Key of POST /orders/{id}/returns → the one return it created; keys are per caller."""

    __tablename__ = "return_idempotency_keys"
    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    return_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# The analytics' rollups and the forecast's tables join this metadata (imported last: they build on Base).
from models import analytics_tables as analytics_tables  # noqa: E402
from models import forecast_tables as forecast_tables  # noqa: E402
from models import refund_tables as refund_tables  # noqa: E402
