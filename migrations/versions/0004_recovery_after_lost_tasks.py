"""what a workflow task that replaces a lost one needs: kept shortages, versioned timeline entries

A lost workflow task may have run local activities whose results were never written to
history. The task that replaces it runs them again, and must get the same answers and
have the last word:
- line_shortages keeps the answer of an allocation round that found too little stock, as
  reservations keep the answer of one that found enough;
- order_events.version and orders.last_version order timeline writes by the workflow's
  history length, so the replacing task's entries win over the lost task's;
- webhook_outbox.version lets a replaced entry be sent again.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "line_shortages",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "line_no", "attempt", name=op.f("pk_line_shortages")),
    )
    with op.batch_alter_table("orders") as batch_op:
        batch_op.add_column(sa.Column("last_version", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("order_events") as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("webhook_outbox") as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_constraint("uq_webhook_outbox_event", type_="unique")
        batch_op.create_unique_constraint("uq_webhook_outbox_event", ["subscription_id", "order_id", "seq", "version"])


def downgrade() -> None:
    with op.batch_alter_table("webhook_outbox") as batch_op:
        batch_op.drop_constraint("uq_webhook_outbox_event", type_="unique")
        batch_op.create_unique_constraint("uq_webhook_outbox_event", ["subscription_id", "order_id", "seq"])
        batch_op.drop_column("version")
    with op.batch_alter_table("order_events") as batch_op:
        batch_op.drop_column("version")
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_column("last_version")
    op.drop_table("line_shortages")
