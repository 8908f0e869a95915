"""Backups and restore: `python -m scripts.backup` on real PostgreSQL databases, real SQLite files, a real
S3-compatible server (moto's, as its own process) and, for the schedule, a real Temporal dev server
keeping its state in a SQLite file that is copied while it runs."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import boto3
import httpx
import psycopg
import pytest
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy.engine import make_url
from temporalio.client import Client, ScheduleDescription, ScheduleListDescription, WorkflowExecution
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.backup import BackupActivities
from backup import BACKUP_SCHEDULE_ID, BACKUP_WORKFLOW_ID
from backup.manifest import BackupError, backup_name, newest_first, read_manifest, sha256_of, to_delete
from backup.postgres import drop_database, tools_for
from backup.schedule import ensure_backup_schedule
from backup.store import create, list_backups, restore, verify
from db.migrate import alembic_config, upgrade
from models.backup import BackupRequest, BackupTaken
from models.names import SEARCH_ATTRIBUTES
from settings import Settings
from temporal_client import client_interceptors
from tests.conftest import BIN, TEST_CONVERTER, TEST_KEYRING
from workflows.backup import BackupWorkflow

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
# The newest schema revision of this code, which every backup of a migrated database names.
HEAD_REVISION = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()

# Rules over plain data.


def test_backup_names_are_utc_times_and_a_second_backup_in_the_same_second_gets_a_number() -> None:
    moment = datetime(2026, 12, 1, 19, 45, 12, tzinfo=UTC)

    first = backup_name(moment, set())
    second = backup_name(moment, {first})
    third = backup_name(moment, {first, second})

    assert (first, second, third) == ("20261201T194512Z", "20261201T194512Z-2", "20261201T194512Z-3")
    assert newest_first({first, third, second, "notes.txt", "20261130T235959Z"}) == [
        third,
        second,
        first,
        "20261130T235959Z",
    ]


def test_retention_removes_all_but_the_newest_n() -> None:
    names = {f"2026120{day}T000000Z" for day in range(1, 8)}

    assert to_delete(names, 3) == ["20261204T000000Z", "20261203T000000Z", "20261202T000000Z", "20261201T000000Z"]
    assert to_delete(names, 10) == []


# Real databases.


def _admin_url(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def scratch_databases(database_url: str) -> Iterator[list[str]]:
    """Makes empty PostgreSQL databases on the test server on demand (the role has CREATEDB); drops them after."""
    made: list[str] = []

    def make() -> str:
        name = f"oms_backup_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(_admin_url(database_url), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        return make_url(database_url).set(database=name).render_as_string(hide_password=False)

    urls: list[str] = []
    urls.append(make())
    urls.append(make())
    yield urls
    for name in made:
        drop_database(database_url, name)


def _stock(url: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(_admin_url(url)) as connection:
        rows = connection.execute("SELECT sku, warehouse, on_hand FROM stock ORDER BY sku, warehouse").fetchall()
    return [(str(sku), str(warehouse), int(on_hand)) for sku, warehouse, on_hand in rows]


def _seed_orders_database(url: str) -> None:
    upgrade(url)
    with psycopg.connect(_admin_url(url)) as connection:
        connection.execute("INSERT INTO skus (sku, name, active) VALUES ('MUG-001', 'Mug', true)")
        connection.execute("INSERT INTO warehouses (code, name) VALUES ('WH-EAST', 'East')")
        connection.execute(
            "INSERT INTO stock (sku, warehouse, on_hand, reserved) VALUES ('MUG-001', 'WH-EAST', 120, 0)"
        )


def _temporal_store(path: Path) -> None:
    """A SQLite file standing in for the Temporal store where no server is needed."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE executions (id TEXT PRIMARY KEY, state TEXT)")
        connection.execute("INSERT INTO executions VALUES ('order-1', 'running')")
    connection.close()


def _settings(tmp_path: Path, database_url: str, **more: object) -> Settings:
    return Settings(
        database_url=database_url,
        backup_dir=str(tmp_path / "backups"),
        backup_temporal_urls=[f"sqlite:///{tmp_path / 'data' / 'temporal.sqlite3'}"],
        **more,  # type: ignore[arg-type]
    )


@pytest.fixture
def source(tmp_path: Path, scratch_databases: list[str]) -> Settings:
    """Settings naming a seeded order database on PostgreSQL and a Temporal SQLite file."""
    (tmp_path / "data").mkdir()
    _temporal_store(tmp_path / "data" / "temporal.sqlite3")
    _seed_orders_database(scratch_databases[0])
    return _settings(tmp_path, scratch_databases[0])


def test_a_backup_holds_each_store_with_sizes_checksums_versions_and_the_schema_revision(source: Settings) -> None:
    created = create(source)

    manifest = read_manifest(created.folder)
    assert created.folder.name == manifest.name
    assert [(part.name, part.kind, part.file) for part in manifest.parts] == [
        ("temporal", "sqlite", "temporal.sqlite3"),
        ("orders", "postgresql", "orders.pgdump"),
    ]
    for part in manifest.parts:
        path = created.folder / part.file
        assert (path.stat().st_size, sha256_of(path)) == (part.bytes, part.sha256)
    assert manifest.alembic_revision == HEAD_REVISION
    assert manifest.versions["postgresql_server.orders"].startswith("15.")
    assert manifest.versions["pg_dump"].startswith("15.")
    assert manifest.versions["temporal_cli"].split()[0].count(".") == 2
    assert manifest.versions["app"] == "0.1.0"
    assert "oms_test:***@" in manifest.parts[1].source


def test_a_restore_into_empty_stores_brings_back_the_rows_and_the_temporal_file(
    source: Settings, scratch_databases: list[str], tmp_path: Path
) -> None:
    created = create(source)
    # The same backups folder; an empty database and data folder.
    target = _settings(tmp_path / "elsewhere", scratch_databases[1]).model_copy(
        update={"backup_dir": source.backup_dir}
    )

    said = restore(target, created.manifest.name, force=False)

    assert _stock(scratch_databases[1]) == [("MUG-001", "WH-EAST", 120)]
    with sqlite3.connect(tmp_path / "elsewhere" / "data" / "temporal.sqlite3") as connection:
        assert connection.execute("SELECT id, state FROM executions").fetchall() == [("order-1", "running")]
    connection.close()
    assert said[0].startswith("restored temporal (sqlite")
    assert said[1].startswith("restored orders (postgresql")
    assert f"revision {HEAD_REVISION}" in said[-1]


def test_a_restore_refuses_stores_that_are_not_empty_and_changes_nothing_unless_forced(
    source: Settings, scratch_databases: list[str]
) -> None:
    created = create(source)
    with psycopg.connect(_admin_url(scratch_databases[0])) as connection:
        connection.execute("UPDATE stock SET on_hand = 7")

    with pytest.raises(BackupError, match=r"is not empty \(1 tables\), nothing restored.*--force"):
        restore(source, created.manifest.name, force=False)
    assert _stock(scratch_databases[0]) == [("MUG-001", "WH-EAST", 7)]

    restore(source, created.manifest.name, force=True)
    assert _stock(scratch_databases[0]) == [("MUG-001", "WH-EAST", 120)]


def test_verify_restores_the_dump_into_a_scratch_database_and_drops_it(source: Settings, database_url: str) -> None:
    created = create(source)

    said = verify(source, "latest")

    assert said[0] == f"2 files match their SHA-256 sums ({created.manifest.bytes} bytes)"
    assert said[1] == "temporal: SQLite integrity check ok, 1 tables"
    assert said[2].startswith("orders: restored into a scratch database (")
    with psycopg.connect(_admin_url(database_url)) as connection:
        left = connection.execute("SELECT datname FROM pg_database WHERE datname LIKE '%\\_verify\\_%'").fetchall()
    assert left == []


def test_verify_and_restore_refuse_a_corrupt_file(source: Settings) -> None:
    created = create(source)
    dump = created.folder / "orders.pgdump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))

    with pytest.raises(
        BackupError, match=r"orders\.pgdump does not match its SHA-256 in the manifest: the file is corrupt"
    ):
        verify(source, created.manifest.name)
    with pytest.raises(BackupError, match="is damaged, nothing restored"):
        restore(source, created.manifest.name, force=True)


def test_retention_keeps_the_newest_backups_only(source: Settings) -> None:
    kept = source.model_copy(update={"backup_keep": 2})

    names = [create(kept).manifest.name for _ in range(3)]

    assert [item.name for item in list_backups(kept)] == [names[2], names[1]]
    assert sorted(path.name for path in Path(kept.backup_dir).iterdir()) == sorted(names[1:])


def test_an_sqlite_order_database_is_copied_while_another_connection_keeps_it_open(tmp_path: Path) -> None:
    orders = tmp_path / "data" / "oms.sqlite3"
    upgrade(f"sqlite:///{orders}")
    writer = sqlite3.connect(orders)
    writer.execute("INSERT INTO skus (sku, name, active) VALUES ('MUG-001', 'Mug', 1)")
    writer.commit()
    writer.execute("BEGIN")
    writer.execute("INSERT INTO skus (sku, name, active) VALUES ('NOT-YET', 'Uncommitted', 1)")
    settings = Settings(
        database_url=f"sqlite:///{orders}", backup_dir=str(tmp_path / "backups"), backup_temporal_urls=[]
    )
    try:
        created = create(settings)
    finally:
        writer.rollback()
        writer.close()
    orders.unlink()

    restore(settings, created.manifest.name, force=False)

    with sqlite3.connect(orders) as connection:
        assert connection.execute("SELECT sku FROM skus").fetchall() == [("MUG-001",)]
    connection.close()
    assert created.manifest.alembic_revision == HEAD_REVISION


def test_no_pg_dump_of_the_servers_major_version_is_a_clear_error() -> None:
    with pytest.raises(
        BackupError,
        match=r"the PostgreSQL server is version 99, but no pg_dump of version 99 or newer is installed \(found: 15 ",
    ):
        tools_for(99)


# The command line.


def _cli(*arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """`python -m scripts.backup ...` as an operator runs it, with this environment on top of the test's."""
    env = {**os.environ, "OMS_LOG_LEVEL": "WARNING", **environment}
    return subprocess.run(
        [sys.executable, "-m", "scripts.backup", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_command_line_creates_lists_verifies_and_restores(source: Settings, scratch_databases: list[str]) -> None:
    env = {
        "DATABASE_URL": source.database_url,
        "OMS_BACKUP_DIR": source.backup_dir,
        "OMS_BACKUP_TEMPORAL_URLS": source.backup_temporal_urls[0],
    }

    created = _cli("create", **env)
    assert created.returncode == 0, created.stderr
    name = read_manifest(next(Path(source.backup_dir).iterdir())).name
    assert created.stdout.startswith(f"backup {name}: ")
    listed = _cli("list", **env).stdout.splitlines()
    assert listed[0].split() == ["NAME", "TAKEN", "SIZE", "STORES", "SCHEMA", "WHERE"]
    assert listed[1].split()[0] == name and listed[1].split()[-3:] == ["temporal,orders", HEAD_REVISION, "local"]
    verified = _cli("verify", name, **env)
    assert (verified.returncode, verified.stdout.splitlines()[-1]) == (0, "the backup is sound")

    refused = _cli("restore", name, **env)
    assert refused.returncode == 1 and "is not empty" in refused.stderr
    unknown = _cli("restore", "20200101T000000Z", **env)
    assert unknown.returncode == 1
    assert unknown.stderr.startswith(f"backup: no backup named 20200101T000000Z in {source.backup_dir}")
    assert "is not a backup name" in _cli("restore", "../../etc", **env).stderr

    elsewhere = Path(source.backup_dir).parent / "new"
    env["DATABASE_URL"] = scratch_databases[1]
    env["OMS_BACKUP_TEMPORAL_URLS"] = f"sqlite:///{elsewhere / 't.sqlite3'}"
    assert "holds the store 'temporal', which is not configured here" in _cli("restore", name, **env).stderr
    env["OMS_BACKUP_TEMPORAL_URLS"] = f"sqlite:///{elsewhere / 'temporal.sqlite3'}"
    restored = _cli("restore", "latest", **env)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.splitlines()[0].startswith("restored temporal (sqlite")
    assert _stock(scratch_databases[1]) == [("MUG-001", "WH-EAST", 120)]


# Off-site: a real S3-compatible server.


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the S3 server did not start") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_backups_go_to_s3_when_configured_and_a_restore_fetches_one_only_there(
    source: Settings, scratch_databases: list[str], s3_endpoint: str, tmp_path: Path
) -> None:
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **credentials).create_bucket(
        Bucket="oms-backups"
    )
    remote = {
        "backup_s3_bucket": "oms-backups",
        "backup_s3_prefix": "site-a/",
        "backup_s3_endpoint_url": s3_endpoint,
        "backup_s3_access_key_id": "testing",
        "backup_s3_secret_access_key": "testing",
        "backup_keep": 2,
    }
    settings = source.model_copy(update=remote)

    created = [create(settings) for _ in range(3)]

    assert created[0].uploaded_to == f"s3://oms-backups/site-a/{created[0].manifest.name}"
    objects = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **credentials).list_objects_v2(
        Bucket="oms-backups"
    )
    keys = sorted(item["Key"] for item in objects["Contents"])
    assert keys == sorted(
        f"site-a/{done.manifest.name}/{file}"
        for done in created[1:]
        for file in ("manifest.json", "orders.pgdump", "temporal.sqlite3")
    )
    # A new machine: nothing local, the stores empty.
    elsewhere = _settings(tmp_path / "new-machine", scratch_databases[1]).model_copy(update=remote)
    assert [(item.name, item.local, item.remote) for item in list_backups(elsewhere, remote=True)] == [
        (created[2].manifest.name, None, True),
        (created[1].manifest.name, None, True),
    ]

    restore(elsewhere, "latest", force=False)

    assert _stock(scratch_databases[1]) == [("MUG-001", "WH-EAST", 120)]
    assert (Path(elsewhere.backup_dir) / created[2].manifest.name / "manifest.json").is_file()


# The schedule, on a real dev server whose SQLite file is copied while it runs.


@pytest.fixture
async def file_backed_server(tmp_path: Path) -> AsyncIterator[tuple[WorkflowEnvironment, Path]]:
    store = tmp_path / "data" / "temporal.sqlite3"
    store.parent.mkdir(parents=True)
    env = await WorkflowEnvironment.start_local(
        data_converter=TEST_CONVERTER,
        interceptors=client_interceptors(TEST_CONVERTER),
        dev_server_existing_path=str(BIN / "temporal"),
        dev_server_database_filename=str(store),
        search_attributes=[],
        dev_server_extra_args=[
            arg for name, kind in SEARCH_ATTRIBUTES.items() for arg in ("--search-attribute", f"{name}={kind}")
        ],
        ui=False,
    )
    try:
        yield env, store
    finally:
        await env.shutdown()


async def _schedules(client: Client) -> list[ScheduleListDescription]:
    return [schedule async for schedule in await client.list_schedules()]


async def _runs(client: Client) -> list[WorkflowExecution]:
    return [run async for run in client.list_workflows(f'WorkflowId STARTS_WITH "{BACKUP_WORKFLOW_ID}"')]


async def _eventually(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 30) -> T:
    """What `read` answers once `done` holds of it (the server's lists are eventually consistent)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await read()
        if done(answer) or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.5)


async def test_the_backup_schedule_is_registered_once_and_a_triggered_run_writes_a_sound_backup(
    file_backed_server: tuple[WorkflowEnvironment, Path], scratch_databases: list[str], tmp_path: Path, task_queue: str
) -> None:
    env, store = file_backed_server
    _seed_orders_database(scratch_databases[0])
    settings = Settings(
        database_url=scratch_databases[0],
        backup_dir=str(tmp_path / "backups"),
        backup_temporal_urls=[f"sqlite:///{store}"],
        backup_interval=timedelta(hours=6),
        task_queue=task_queue,
    )

    assert await ensure_backup_schedule(env.client, settings) == "created"
    assert (
        await ensure_backup_schedule(env.client, settings.model_copy(update={"backup_interval": timedelta(hours=1)}))
        == "updated"
    )

    schedules = await _eventually(lambda: _schedules(env.client), lambda found: len(found) == 1)
    assert [schedule.id for schedule in schedules] == [BACKUP_SCHEDULE_ID]
    described = await env.client.get_schedule_handle(BACKUP_SCHEDULE_ID).describe()
    assert [interval.every for interval in described.schedule.spec.intervals] == [timedelta(hours=1)]

    backups = BackupActivities(settings)
    async with Worker(env.client, task_queue=task_queue, workflows=[BackupWorkflow], activities=[backups.take_backup]):
        await env.client.get_schedule_handle(BACKUP_SCHEDULE_ID).trigger()
        runs = await _eventually(
            lambda: _runs(env.client),
            lambda found: bool(found) and all(run.status and run.status.name != "RUNNING" for run in found),
            timeout=60,
        )
        taken = await env.client.get_workflow_handle(runs[0].id, result_type=BackupTaken).result()

    assert [run.status.name for run in runs if run.status] == ["COMPLETED"]
    manifest = read_manifest(Path(taken.folder))
    assert manifest.name == taken.name
    assert [part.name for part in manifest.parts] == ["temporal", "orders"]
    # The copy of the running server's file holds the schedule and the run that took it.
    copy = Path(taken.folder) / "temporal.sqlite3"
    with sqlite3.connect(copy) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        workflows = [row[0] for row in connection.execute("SELECT workflow_id FROM executions_visibility")]
    connection.close()
    assert any(workflow_id.startswith(f"{BACKUP_WORKFLOW_ID}-") for workflow_id in workflows), workflows
    assert verify(settings, taken.name)[0].startswith("2 files match their SHA-256 sums")
    shutil.rmtree(tmp_path / "backups")


async def test_the_backup_worker_of_the_compose_file_registers_the_schedule_and_takes_its_runs(
    file_backed_server: tuple[WorkflowEnvironment, Path], scratch_databases: list[str], tmp_path: Path, task_queue: str
) -> None:
    env, store = file_backed_server
    _seed_orders_database(scratch_databases[0])
    environment = {
        **os.environ,
        "OMS_LOG_LEVEL": "WARNING",
        "OMS_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "OMS_ENCRYPTION_KEYS": TEST_KEYRING.to_json(),
        "OMS_TASK_QUEUE": task_queue,
        "OMS_BACKUP_INTERVAL": "PT6H",
        "OMS_BACKUP_DIR": str(tmp_path / "backups"),
        "OMS_BACKUP_TEMPORAL_URLS": f"sqlite:///{store}",
        "DATABASE_URL": scratch_databases[0],
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scripts.backup", "worker", cwd=ROOT, env=environment
    )
    try:
        schedule = env.client.get_schedule_handle(BACKUP_SCHEDULE_ID)
        described = await _eventually(lambda: _described(env.client), lambda found: found is not None)
        assert described is not None, "the backup worker registered no schedule"
        assert described.schedule.action.task_queue == task_queue  # type: ignore[attr-defined]
        await schedule.trigger()
        runs = await _eventually(
            lambda: _runs(env.client),
            lambda found: bool(found) and all(run.status and run.status.name != "RUNNING" for run in found),
            timeout=60,
        )
        taken = await env.client.get_workflow_handle(runs[0].id, result_type=BackupTaken).result()
    finally:
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(worker.wait(), timeout=30) == 0

    assert [part.name for part in read_manifest(Path(taken.folder)).parts] == ["temporal", "orders"]


async def _described(client: Client) -> ScheduleDescription | None:
    try:
        return await client.get_schedule_handle(BACKUP_SCHEDULE_ID).describe()
    except RPCError:
        return None


async def test_a_backup_that_cannot_be_taken_fails_its_run_with_the_reason_and_leaves_no_folder(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'data' / 'oms.sqlite3'}",
        backup_dir=str(tmp_path / "backups"),
        backup_temporal_urls=[f"sqlite:///{tmp_path / 'data' / 'temporal.sqlite3'}"],
    )

    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(BackupActivities(settings).take_backup, BackupRequest())

    assert failure.value.type == "BackupFailed"
    assert failure.value.message == f"the SQLite database {tmp_path / 'data' / 'temporal.sqlite3'} does not exist"
    assert list((tmp_path / "backups").iterdir()) == []


def test_a_restore_refuses_a_schema_revision_this_code_does_not_know(source: Settings) -> None:
    created = create(source)
    manifest_file = created.folder / "manifest.json"
    manifest_file.write_text(
        manifest_file.read_text().replace(f'"alembic_revision": "{HEAD_REVISION}"', '"alembic_revision": "0099"')
    )

    with pytest.raises(BackupError, match="revision 0099, which this version of the service does not know"):
        restore(source, created.manifest.name, force=True)
    assert _stock(source.database_url) == [("MUG-001", "WH-EAST", 120)]
