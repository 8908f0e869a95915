"""shortages say whether purchasing has been told: the latest notice's key, status, tries and last error

Notices to purchasing are sent apart from the demand ledger and may stay undelivered while
purchasing is down or refuses them; the shortage row shows it, and the API's metrics count them.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("shortages") as batch_op:
        batch_op.add_column(sa.Column("notice_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("notice_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("notice_attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("notice_error", sa.String(length=500), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_shortages_notice_status_known"),
            "notice_status IS NULL OR notice_status IN ('pending', 'delivered', 'failing', 'refused')",
        )
        batch_op.create_check_constraint(op.f("ck_shortages_notice_attempts_non_negative"), "notice_attempts >= 0")


def downgrade() -> None:
    with op.batch_alter_table("shortages") as batch_op:
        batch_op.drop_constraint(op.f("ck_shortages_notice_attempts_non_negative"), type_="check")
        batch_op.drop_constraint(op.f("ck_shortages_notice_status_known"), type_="check")
        batch_op.drop_column("notice_error")
        batch_op.drop_column("notice_attempts")
        batch_op.drop_column("notice_status")
        batch_op.drop_column("notice_key")
