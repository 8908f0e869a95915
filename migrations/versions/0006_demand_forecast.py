"""demand forecast: purchase terms per SKU, stock on order, forecasts and reorder suggestions

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "purchase_terms",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("lead_time_days", sa.Integer(), nullable=False),
        sa.Column("min_order_quantity", sa.Integer(), nullable=False),
        sa.Column("pack_size", sa.Integer(), nullable=False),
        sa.CheckConstraint("lead_time_days > 0", name=op.f("ck_purchase_terms_lead_time_positive")),
        sa.CheckConstraint("min_order_quantity >= 1", name=op.f("ck_purchase_terms_min_order_positive")),
        sa.CheckConstraint("pack_size >= 1", name=op.f("ck_purchase_terms_pack_size_positive")),
        sa.ForeignKeyConstraint(["sku"], ["skus.sku"], name=op.f("fk_purchase_terms_sku_skus")),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_purchase_terms")),
    )
    op.create_table(
        "stock_on_order",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("warehouse", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_stock_on_order_quantity_non_negative")),
        sa.PrimaryKeyConstraint("sku", "warehouse", name=op.f("pk_stock_on_order")),
    )
    op.create_table(
        "demand_forecasts",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=40), nullable=False),
        sa.Column("pattern", sa.String(length=20), nullable=False),
        sa.Column("adi", sa.Float(), nullable=False),
        sa.Column("cv2", sa.Float(), nullable=False),
        sa.Column("mase", sa.Float(), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("points", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_demand_forecasts")),
    )
    op.create_table(
        "reorder_suggestions",
        sa.Column("suggestion_id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("warehouse", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("reorder_point", sa.Integer(), nullable=False),
        sa.Column("on_hand", sa.Integer(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("on_order", sa.Integer(), nullable=False),
        sa.Column("lead_time_days", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_reorder_suggestions_quantity_positive")),
        sa.CheckConstraint(
            "status IN ('open', 'accepted', 'dismissed', 'superseded')", name=op.f("ck_reorder_suggestions_status_known")
        ),
        sa.PrimaryKeyConstraint("suggestion_id", name=op.f("pk_reorder_suggestions")),
        sa.UniqueConstraint("run_id", "sku", "warehouse", name="uq_reorder_suggestions_run"),
    )
    op.create_index("ix_reorder_suggestions_status_created", "reorder_suggestions", ["status", "created_at"])
    op.create_index("ix_reorder_suggestions_sku_status", "reorder_suggestions", ["sku", "status"])


def downgrade() -> None:
    op.drop_index("ix_reorder_suggestions_sku_status", table_name="reorder_suggestions")
    op.drop_index("ix_reorder_suggestions_status_created", table_name="reorder_suggestions")
    op.drop_table("reorder_suggestions")
    op.drop_table("demand_forecasts")
    op.drop_table("stock_on_order")
    op.drop_table("purchase_terms")
