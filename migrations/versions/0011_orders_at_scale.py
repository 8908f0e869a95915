"""indexes for a million orders on record: orders by SKU newest first, timeline entries by status and time

Order lines carry their order's placing time, so that the orders holding a SKU are read newest
first from one index (GET /orders?sku=); timeline entries are indexed by status and time, so that
the fulfilment analytics read the weeks asked for rather than every entry. The analytics' figures of
a period's orders and lines are read from covering indexes on the placing time (PostgreSQL).

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("order_lines") as batch_op:
        batch_op.add_column(sa.Column("placed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE order_lines SET placed_at = (SELECT created_at FROM orders WHERE orders.order_id = order_lines.order_id)"
    )
    with op.batch_alter_table("order_lines") as batch_op:
        batch_op.alter_column("placed_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.drop_index("ix_order_lines_sku")
        batch_op.create_index("ix_order_lines_sku_placed", ["sku", "placed_at", "order_id"], unique=False)
        batch_op.create_index(
            "ix_order_lines_placed",
            ["placed_at"],
            unique=False,
            postgresql_include=["order_id", "sku", "quantity", "unit_price"],
        )
    with op.batch_alter_table("orders") as batch_op:
        batch_op.create_index(
            "ix_orders_created_figures",
            ["created_at"],
            unique=False,
            postgresql_include=["order_id", "status", "currency", "total", "customer_id"],
        )
    with op.batch_alter_table("order_events") as batch_op:
        batch_op.create_index("ix_order_events_status_at", ["status", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_index("ix_orders_created_figures")
    with op.batch_alter_table("order_events") as batch_op:
        batch_op.drop_index("ix_order_events_status_at")
    with op.batch_alter_table("order_lines") as batch_op:
        batch_op.drop_index("ix_order_lines_placed")
        batch_op.drop_index("ix_order_lines_sku_placed")
        batch_op.create_index("ix_order_lines_sku", ["sku"], unique=False)
        batch_op.drop_column("placed_at")
