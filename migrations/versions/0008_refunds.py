"""refunds: every refund of an order (a return's or one without a return), exchanges, and return and refund events

A refund is claimed against its order's invoice with the order's row locked, so the refunded total
never exceeds what was invoiced; a return may end `exchanged` (a replacement order placed); the
webhook outbox carries events of an order's returns and refunds beside its own (kind, subject_id).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_RETURN_STATUSES = (
    "'requested', 'pending_review', 'approved', 'declined', 'label_issued', 'in_transit', "
    "'received', 'refunded', 'closed', 'cancelled', 'expired'"
)
RETURN_STATUSES = (
    "'requested', 'pending_review', 'approved', 'declined', 'label_issued', 'in_transit', "
    "'received', 'refunded', 'exchanged', 'closed', 'cancelled', 'expired'"
)


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("refund_id", sa.String(length=80), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("return_id", sa.String(length=64), nullable=True),
        sa.Column("workflow_id", sa.String(length=96), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("requested_by", sa.String(length=32), nullable=False),
        sa.Column("credit_note", sa.String(length=64), nullable=True),
        sa.Column("finance_refund_id", sa.String(length=64), nullable=True),
        sa.Column("needs_attention", sa.String(length=500), nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('requested', 'refunded', 'failed')", name=op.f("ck_refunds_status_known")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_refunds_amount_positive")),
        sa.PrimaryKeyConstraint("refund_id", name=op.f("pk_refunds")),
    )
    op.create_index("ix_refunds_order", "refunds", ["order_id", "created_at"], unique=False)
    op.create_index("ix_refunds_status", "refunds", ["status"], unique=False)
    op.create_table(
        "refund_idempotency_keys",
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("refund_id", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", "key", name=op.f("pk_refund_idempotency_keys")),
    )
    with op.batch_alter_table("returns") as batch_op:
        batch_op.drop_constraint(op.f("ck_returns_status_known"), type_="check")
        batch_op.create_check_constraint(op.f("ck_returns_status_known"), f"status IN ({RETURN_STATUSES})")
    with op.batch_alter_table("webhook_outbox") as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="order", nullable=False))
        batch_op.add_column(sa.Column("subject_id", sa.String(length=80), server_default="", nullable=False))
        batch_op.drop_constraint("uq_webhook_outbox_event", type_="unique")
        batch_op.create_unique_constraint(
            "uq_webhook_outbox_event", ["subscription_id", "order_id", "kind", "subject_id", "seq", "version"]
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_outbox") as batch_op:
        batch_op.drop_constraint("uq_webhook_outbox_event", type_="unique")
        batch_op.create_unique_constraint("uq_webhook_outbox_event", ["subscription_id", "order_id", "seq", "version"])
        batch_op.drop_column("subject_id")
        batch_op.drop_column("kind")
    with op.batch_alter_table("returns") as batch_op:
        batch_op.drop_constraint(op.f("ck_returns_status_known"), type_="check")
        batch_op.create_check_constraint(op.f("ck_returns_status_known"), f"status IN ({OLD_RETURN_STATUSES})")
    op.drop_table("refund_idempotency_keys")
    op.drop_index("ix_refunds_status", table_name="refunds")
    op.drop_index("ix_refunds_order", table_name="refunds")
    op.drop_table("refunds")
