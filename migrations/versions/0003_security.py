"""security: api keys, audit log, webhooks, order owner and encrypted personal data

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('key_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=True),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role <> 'client' OR client_id IS NOT NULL", name=op.f('ck_api_keys_client_has_client_id')),
    sa.CheckConstraint("role IN ('client', 'operator', 'purchasing', 'admin')", name=op.f('ck_api_keys_role_known')),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_api_keys'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=True),
    sa.Column('role', sa.String(length=20), nullable=True),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('target', sa.String(length=300), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index('ix_audit_log_at', 'audit_log', ['at'], unique=False)
    op.create_index('ix_audit_log_key_at', 'audit_log', ['key_id', 'at'], unique=False)
    op.create_table('webhook_deliveries',
    sa.Column('signature', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('signature', name=op.f('pk_webhook_deliveries'))
    )
    op.create_table('webhook_subscriptions',
    sa.Column('subscription_id', sa.String(length=36), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('subscription_id', name=op.f('pk_webhook_subscriptions'))
    )
    op.create_table('webhook_outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('subscription_id', sa.String(length=36), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['subscription_id'], ['webhook_subscriptions.subscription_id'], name=op.f('fk_webhook_outbox_subscription_id_webhook_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_outbox')),
    sa.UniqueConstraint('subscription_id', 'order_id', 'seq', name='uq_webhook_outbox_event')
    )
    op.create_index('ix_webhook_outbox_due', 'webhook_outbox', ['delivered_at', 'next_attempt_at'], unique=False)
    # Idempotency keys become per caller: the key is scoped by the owning API client.
    with op.batch_alter_table('idempotency_keys') as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=64), nullable=False, server_default=''))
        batch_op.drop_constraint('pk_idempotency_keys', type_='primary')
        batch_op.create_primary_key('pk_idempotency_keys', ['owner', 'key'])
    with op.batch_alter_table('idempotency_keys') as batch_op:
        batch_op.alter_column('owner', server_default=None)
    with op.batch_alter_table('orders') as batch_op:
        batch_op.add_column(sa.Column('client_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('pii', sa.Text(), nullable=True))
        batch_op.create_index('ix_orders_client_created', ['client_id', 'created_at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        # The audit log is append-only: rows can be added, never changed or deleted.
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    with op.batch_alter_table('orders') as batch_op:
        batch_op.drop_index('ix_orders_client_created')
        batch_op.drop_column('pii')
        batch_op.drop_column('client_id')
    with op.batch_alter_table('idempotency_keys') as batch_op:
        batch_op.drop_constraint('pk_idempotency_keys', type_='primary')
        batch_op.drop_column('owner')
        batch_op.create_primary_key('pk_idempotency_keys', ['key'])
    op.drop_index('ix_webhook_outbox_due', table_name='webhook_outbox')
    op.drop_table('webhook_outbox')
    op.drop_table('webhook_subscriptions')
    op.drop_table('webhook_deliveries')
    op.drop_index('ix_audit_log_key_at', table_name='audit_log')
    op.drop_index('ix_audit_log_at', table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_table('api_keys')
