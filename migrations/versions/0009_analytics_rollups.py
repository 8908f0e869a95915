"""analytics rollups: orders per UTC hour, status and currency, kept by the status writes; filled from the orders

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _hour_of_created_at() -> str:
    """SQL for the UTC hour an order was placed in, as each database stores a timestamp."""
    if op.get_bind().dialect.name == "postgresql":
        return "date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    # SQLite holds UTC timestamps as text, 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return "substr(created_at, 1, 13) || ':00:00.000000'"


def upgrade() -> None:
    op.create_table(
        "order_rollups",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.CheckConstraint("orders >= 0", name=op.f("ck_order_rollups_orders_non_negative")),
        sa.CheckConstraint("revenue >= 0", name=op.f("ck_order_rollups_revenue_non_negative")),
        sa.PrimaryKeyConstraint("hour", "status", "currency", name=op.f("pk_order_rollups")),
    )
    op.create_table(
        "order_rollup_marks",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.order_id"], name=op.f("fk_order_rollup_marks_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_order_rollup_marks")),
    )
    hour = _hour_of_created_at()
    op.execute(
        "INSERT INTO order_rollups (hour, status, currency, orders, revenue) "
        f"SELECT {hour}, status, currency, count(*), sum(total) FROM orders GROUP BY {hour}, status, currency"
    )
    op.execute("INSERT INTO order_rollup_marks (order_id, status, total) SELECT order_id, status, total FROM orders")


def downgrade() -> None:
    op.drop_table("order_rollup_marks")
    op.drop_table("order_rollups")
