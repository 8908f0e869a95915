"""One async engine and sessionmaker per process, for PostgreSQL (psycopg 3) or SQLite (aiosqlite)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

# The driver for each database, by whether the caller is async (the app) or not (migrations).
DRIVERS = {
    ("postgresql", True): "postgresql+psycopg",
    ("postgresql", False): "postgresql+psycopg",
    ("sqlite", True): "sqlite+aiosqlite",
    ("sqlite", False): "sqlite",
}


def _with_driver(url: str, asynchronous: bool) -> str:
    parsed = make_url(url)
    driver = DRIVERS.get((parsed.get_backend_name(), asynchronous))
    if driver is None:
        raise ValueError(f"unsupported database: {parsed.get_backend_name()}")
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def async_url(url: str) -> str:
    """The driver-qualified URL for the async engine: psycopg 3 for PostgreSQL, aiosqlite for SQLite."""
    return _with_driver(url, asynchronous=True)


def sync_url(url: str) -> str:
    """The driver-qualified URL for migrations, which run synchronously."""
    return _with_driver(url, asynchronous=False)


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    target = async_url(url)
    if make_url(target).get_backend_name() == "sqlite":
        engine = create_async_engine(target, connect_args={"timeout": 30})
        _serialise_sqlite_writers(engine)
        return engine
    return create_async_engine(
        target,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # No JIT: over a million orders the analytics' plans look costly enough for PostgreSQL to compile
        # them, which took 0.8-1.5 s a query, more than the queries themselves.
        connect_args={"options": "-c jit=off"},
    )


def _serialise_sqlite_writers(engine: AsyncEngine) -> None:
    # SQLite has no row locks: every transaction takes the write lock up front
    # (BEGIN IMMEDIATE), so two reservations can never interleave.
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def dialect_insert(session: AsyncSession, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that knows ON CONFLICT for the session's database (PostgreSQL or SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def statement_by_statement(session: AsyncSession) -> None:
    """Let each statement of a fresh `session` commit on its own (PostgreSQL autocommit).

    For the one-statement work done on every request (looking up a key, appending to the audit
    log) this saves the BEGIN and the COMMIT or ROLLBACK round trips. SQLite keeps its usual
    transactions, which take the write lock up front.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
