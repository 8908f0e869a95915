"""Alembic environment: the target URL comes from the caller (db.migrate) or from settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from db.engine import sync_url
from models.tables import Base
from settings import get_settings

config = context.config
url = config.attributes.get("database_url") or get_settings().database_url


def run_migrations() -> None:
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
