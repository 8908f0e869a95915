"""returns: returns, their lines and receipts, stock write-offs, idempotency keys

A return's lines are what it covers of its order, so no unit is returned twice; a receipt is booked
once per return, receipt, SKU and condition, and what it puts back on the shelf goes through
stock_receipts under an id of its own, so nothing is restocked twice; damaged units become
write-offs, never stock.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "return_idempotency_keys",
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("return_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", "key", name=op.f("pk_return_idempotency_keys")),
    )
    op.create_table(
        "returns",
        sa.Column("return_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=80), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("value", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=True),
        sa.Column("needs_attention", sa.String(length=500), nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('requested', 'pending_review', 'approved', 'declined', 'label_issued', 'in_transit', "
            "'received', 'refunded', 'closed', 'cancelled', 'expired')",
            name=op.f("ck_returns_status_known"),
        ),
        sa.CheckConstraint("value >= 0", name=op.f("ck_returns_value_non_negative")),
        sa.PrimaryKeyConstraint("return_id", name=op.f("pk_returns")),
        sa.UniqueConstraint("tracking_number", name=op.f("uq_returns_tracking_number")),
    )
    op.create_index("ix_returns_created", "returns", ["created_at", "return_id"], unique=False)
    op.create_index("ix_returns_order", "returns", ["order_id"], unique=False)
    op.create_index("ix_returns_status_created", "returns", ["status", "created_at"], unique=False)
    op.create_table(
        "return_lines",
        sa.Column("return_id", sa.String(length=64), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_return_lines_quantity_positive")),
        sa.ForeignKeyConstraint(["return_id"], ["returns.return_id"], name=op.f("fk_return_lines_return_id_returns")),
        sa.PrimaryKeyConstraint("return_id", "line_no", name=op.f("pk_return_lines")),
    )
    op.create_index("ix_return_lines_order_sku", "return_lines", ["order_id", "sku"], unique=False)
    op.create_table(
        "return_receipts",
        sa.Column("return_id", sa.String(length=64), nullable=False),
        sa.Column("receipt_no", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("condition", sa.String(length=16), nullable=False),
        sa.Column("warehouse", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("condition IN ('resellable', 'damaged')", name=op.f("ck_return_receipts_condition_known")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_return_receipts_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["return_id"], ["returns.return_id"], name=op.f("fk_return_receipts_return_id_returns")
        ),
        sa.PrimaryKeyConstraint("return_id", "receipt_no", "sku", "condition", name=op.f("pk_return_receipts")),
    )
    op.create_table(
        "stock_write_offs",
        sa.Column("write_off_id", sa.String(length=128), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("warehouse", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("return_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("written_off_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_stock_write_offs_quantity_positive")),
        sa.ForeignKeyConstraint(["sku"], ["skus.sku"], name=op.f("fk_stock_write_offs_sku_skus")),
        sa.ForeignKeyConstraint(
            ["warehouse"], ["warehouses.code"], name=op.f("fk_stock_write_offs_warehouse_warehouses")
        ),
        sa.PrimaryKeyConstraint("write_off_id", name=op.f("pk_stock_write_offs")),
    )


def downgrade() -> None:
    op.drop_table("stock_write_offs")
    op.drop_table("return_receipts")
    op.drop_index("ix_return_lines_order_sku", table_name="return_lines")
    op.drop_table("return_lines")
    op.drop_index("ix_returns_status_created", table_name="returns")
    op.drop_index("ix_returns_order", table_name="returns")
    op.drop_index("ix_returns_created", table_name="returns")
    op.drop_table("returns")
    op.drop_table("return_idempotency_keys")
