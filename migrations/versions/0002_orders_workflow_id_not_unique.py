"""orders.workflow_id is not a unique key of its own

The workflow id is derived from the order id, which is already the primary key. A second
unique index made concurrent inserts of one order fail on that index instead of being
skipped by ON CONFLICT (order_id) DO NOTHING.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_constraint("uq_orders_workflow_id", type_="unique")


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch_op:
        batch_op.create_unique_constraint("uq_orders_workflow_id", ["workflow_id"])
