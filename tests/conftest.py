"""Shared fixtures: a real PostgreSQL database, the time-skipping Temporal server and the real dev server.

Each test is put in a tier by the services its fixtures reach (TIER_OF_FIXTURE): `unit` (none: no
PostgreSQL, no Temporal, runs in seconds, `make test-unit`), `integration` (PostgreSQL or the
time-skipping server) or `system` (the dev server, the whole stack). A test that starts services
without these fixtures says so with its own `pytest.mark.integration` or `pytest.mark.system`.

Every Temporal client here encrypts its payloads as the service does, under a keyring made
fresh for the test session (TEST_KEYRING); what the service writes to the database too. Like the
service's, the clients carry the request id being served on their calls (temporal_client.client_interceptors).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
import structlog
from psycopg import sql
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from db.engine import create_engine, create_sessionmaker
from db.migrate import upgrade
from logging_config import configure_logging
from models.names import SEARCH_ATTRIBUTES
from models.tables import Base
from security.codec import data_converter
from security.keyring import Keyring
from settings import Settings
from temporal_client import client_interceptors
from tests.keys import Keys, make_keys

if TYPE_CHECKING:
    from tests.stack import Stack

BIN = Path(sys.executable).parent

TIERS = {
    "unit": "needs neither PostgreSQL nor Temporal; the whole tier runs in seconds (make test-unit)",
    "integration": "needs PostgreSQL or the time-skipping Temporal server",
    "system": "needs the Temporal dev server or the whole stack",
}
# The fixtures that reach a service, and the tier a test using one (directly or through another) is in.
TIER_OF_FIXTURE = {"database_url": "integration", "time_skipping_env": "integration", "dev_server_env": "system"}


def tier_of(item: pytest.Item) -> str:
    """The highest tier among the test's own marks and the fixtures it reaches; `unit` when there are none."""
    tiers = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
    tiers |= {TIER_OF_FIXTURE[name] for name in getattr(item, "fixturenames", ()) if name in TIER_OF_FIXTURE}
    return max(tiers, key=list(TIERS).index, default="unit")


def pytest_configure(config: pytest.Config) -> None:
    for name, meaning in TIERS.items():
        config.addinivalue_line("markers", f"{name}: {meaning}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(tier_of(item))


# Workers the suite starts run workflows in the SDK's sandbox, which fails a workflow that calls what
# it must not (I/O, the clock, randomness): every path the suite walks is checked for determinism.
# `make run` and the fault drills run them as the service does, unsandboxed (test_local_stack keeps
# the caller's OMS_ variables out).
os.environ.setdefault("OMS_WORKFLOW_SANDBOX", "true")

TEST_KEYRING = Keyring.generate("test-session")
TEST_CONVERTER = data_converter(TEST_KEYRING)


@pytest.fixture(scope="session")
def database_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.fail("TEST_DATABASE_URL is not set: run the suite with `make test`, which starts PostgreSQL")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        # Each process of a parallel run (pytest -n) empties tables in a database of its own.
        url = database_of_its_own(url, worker)
    upgrade(url)
    return url


def database_of_its_own(url: str, suffix: str) -> str:
    """The URL of `url`'s database name + `_suffix` on the same server, made on first use."""
    base = make_url(url)
    name = f"{base.database}_{suffix}"
    server = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(server, autocommit=True) as db:
        if db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return base.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=20)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A sessionmaker on a database emptied before the test."""
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return create_sessionmaker(engine)


@pytest.fixture
async def keys(sessionmaker: async_sessionmaker[AsyncSession]) -> Keys:
    """A key of each role (and a second client's), made with the settings' hashing secret."""
    return await make_keys(sessionmaker, Settings().api_key_hash_secret)


SEARCH_ATTRIBUTE_TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}


async def register_search_attributes(client: Client) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={name: SEARCH_ATTRIBUTE_TYPES[kind] for name, kind in SEARCH_ATTRIBUTES.items()},
        )
    )


@pytest.fixture(scope="module")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of the module's own.

    The server stops skipping time for good once a workflow ends (terminated, continued as new) while one of
    its tasks is being worked on; a server per module keeps such a leftover from holding up other modules.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=TEST_CONVERTER,
        interceptors=client_interceptors(TEST_CONVERTER),
        test_server_existing_path=str(BIN / "temporal-test-server"),
    )
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_server_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        data_converter=TEST_CONVERTER,
        interceptors=client_interceptors(TEST_CONVERTER),
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=[],
        dev_server_extra_args=[
            arg for name, kind in SEARCH_ATTRIBUTES.items() for arg in ("--search-attribute", f"{name}={kind}")
        ],
        ui=False,
    )
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"


@pytest.fixture
async def stack(
    dev_server_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    task_queue: str,
) -> AsyncIterator[Stack]:
    """The whole service in this process on the dev server: API, worker and stand-ins (tests/stack.py)."""
    # Imported here: tests.stack itself imports this module.
    from tests.stack import running_stack

    async with running_stack(dev_server_env.client, database_url, sessionmaker, task_queue) as running:
        yield running


@contextmanager
def capturing_logs(level: str) -> Iterator[io.StringIO]:
    """Every log line of this process from `level` up, as the configured handler renders it (JSON)."""
    root = logging.getLogger()
    previous = root.level
    lines = io.StringIO()
    configure_logging(level, json=True, stream=lines, cache_loggers=False)
    try:
        yield lines
    finally:
        for handler in [handler for handler in root.handlers if getattr(handler, "stream", None) is lines]:
            root.removeHandler(handler)
        root.setLevel(previous)
        structlog.reset_defaults()
