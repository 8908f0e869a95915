"""Taking, listing, verifying and restoring backups of the stores the settings name.

The Temporal stores are copied before the order database. A backup can thus find the order
database a little ahead of the workflows' histories, never behind them: after a restore the
workflows repeat at most the steps they had not yet recorded, and every step is keyed by its
order, so a repeat finds its first answer (a reservation, an invoice) instead of doing it again.
"""

from __future__ import annotations

import platform
import shutil
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from backup import postgres
from backup import sqlite as sqlite_store
from backup.manifest import (
    NAME,
    BackupError,
    Manifest,
    Part,
    backup_name,
    check_files,
    newest_first,
    read_manifest,
    sha256_of,
    to_delete,
    write_manifest,
)
from settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ORDERS = "orders"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class Store:
    """One database a backup holds: the order database, or a Temporal store."""

    name: str
    url: str

    @property
    def kind(self) -> str:
        return "postgresql" if make_url(self.url).get_backend_name() == "postgresql" else "sqlite"

    @property
    def shown(self) -> str:
        return postgres.display(self.url)


def stores(settings: Settings) -> list[Store]:
    """The Temporal stores first, then the order database (see the module's docstring)."""
    found: list[Store] = []
    for url in settings.backup_temporal_urls:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            name = Path(parsed.database or "").stem
        elif backend == "postgresql":
            name = parsed.database or ""
        else:
            raise BackupError(f"OMS_BACKUP_TEMPORAL_URLS: {url} is neither sqlite:/// nor postgresql://")
        if not name or name == ORDERS or name in {store.name for store in found}:
            raise BackupError(f"OMS_BACKUP_TEMPORAL_URLS: {postgres.display(url)} gives no distinct store name")
        found.append(Store(name, url))
    found.append(Store(ORDERS, settings.database_url))
    return found


def app_version() -> str:
    try:
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        return str(project["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def temporal_cli_version() -> str | None:
    candidates = [Path(sys.executable).parent / "temporal", shutil.which("temporal")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            answer = subprocess.run([str(candidate), "--version"], capture_output=True, text=True, check=False)
            if answer.returncode == 0:
                return answer.stdout.strip().removeprefix("temporal version ")
    return None


@dataclass(frozen=True)
class Created:
    manifest: Manifest
    folder: Path
    uploaded_to: str | None
    deleted: list[str]


def create(settings: Settings, *, upload: bool = True, progress: Progress = _quiet) -> Created:
    root = Path(settings.backup_dir)
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    created_at = datetime.now(UTC)
    # A second backup in the same second (a scheduled one and one by hand) takes the next number.
    taken = {path.name.removeprefix(".").removesuffix(".partial") for path in root.iterdir()}
    while True:
        name = backup_name(created_at, taken)
        work = root / f".{name}.partial"
        try:
            work.mkdir()
            break
        except FileExistsError:
            taken.add(name)
    versions = {"app": app_version(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    parts: list[Part] = []
    revision: str | None = None
    try:
        for store in stores(settings):
            progress(f"copying {store.name} from {store.shown}")
            if store.kind == "postgresql":
                file = f"{store.name}.pgdump"
                _, server = postgres.server_version(store.url)
                tools = postgres.dump(store.url, work / file)
                versions[f"postgresql_server.{store.name}"] = server
                versions["pg_dump"] = tools.version
                if store.name == ORDERS:
                    revision = postgres.alembic_revision(store.url)
            else:
                file = f"{store.name}.sqlite3"
                sqlite_store.copy(sqlite_store.path_of(store.url), work / file)
                if store.name == ORDERS:
                    revision = sqlite_store.alembic_revision(work / file)
                else:
                    versions["temporal_cli"] = temporal_cli_version() or "not installed"
            path = work / file
            parts.append(
                Part(
                    name=store.name,
                    kind=store.kind,  # type: ignore[arg-type]
                    file=file,
                    bytes=path.stat().st_size,
                    sha256=sha256_of(path),
                    source=store.shown,
                )
            )
        manifest = Manifest(
            name=name,
            created_at=created_at,
            seconds=round(time.monotonic() - started, 3),
            versions=versions,
            alembic_revision=revision,
            parts=parts,
        )
        write_manifest(work, manifest)
        folder = root / name
        work.rename(folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    deleted = [*_apply_retention_locally(root, settings.backup_keep)]
    uploaded_to = None
    if upload and settings.backup_s3_bucket:
        from backup.s3 import RemoteStore

        remote = RemoteStore(settings)
        progress(f"uploading to {remote.where(name)}")
        remote.upload(folder, [part.file for part in parts])
        uploaded_to = remote.where(name)
        for old in to_delete(remote.names(), settings.backup_keep):
            remote.delete(old)
            deleted.append(remote.where(old))
    return Created(manifest, folder, uploaded_to, deleted)


def _apply_retention_locally(root: Path, keep: int) -> list[str]:
    finished = {path.name for path in root.iterdir() if path.is_dir() and (path / "manifest.json").is_file()}
    gone = []
    for old in to_delete(finished, keep):
        shutil.rmtree(root / old)
        gone.append(str(root / old))
    return gone


@dataclass(frozen=True)
class Listed:
    name: str
    local: Manifest | None
    remote: bool


def list_backups(settings: Settings, *, remote: bool = False) -> list[Listed]:
    root = Path(settings.backup_dir)
    local: dict[str, Manifest] = {}
    if root.is_dir():
        for path in root.iterdir():
            if NAME.match(path.name) and (path / "manifest.json").is_file():
                try:
                    local[path.name] = read_manifest(path)
                except BackupError:
                    continue
    there: set[str] = set()
    if remote:
        from backup.s3 import RemoteStore

        there = RemoteStore(settings).names()
    return [Listed(name, local.get(name), name in there) for name in newest_first(set(local) | there)]


def locate(settings: Settings, name: str, *, progress: Progress = _quiet) -> Path:
    """The folder of backup `name` ("latest" for the newest), fetched from S3 when only there."""
    root = Path(settings.backup_dir)
    if name == "latest":
        listed = list_backups(settings, remote=bool(settings.backup_s3_bucket))
        if not listed:
            raise BackupError(f"there are no backups in {root}" + (" or S3" if settings.backup_s3_bucket else ""))
        name = listed[0].name
    if not NAME.match(name):
        raise BackupError(f"{name!r} is not a backup name (they read like 20261201T194512Z; see `list`)")
    folder = root / name
    if (folder / "manifest.json").is_file():
        return folder
    if settings.backup_s3_bucket:
        from backup.s3 import RemoteStore

        remote = RemoteStore(settings)
        progress(f"downloading {name} from {remote.where(name)}")
        remote.download(name, folder)
        return folder
    known = ", ".join(item.name for item in list_backups(settings)[:5]) or "none"
    raise BackupError(f"no backup named {name} in {root} (newest: {known})")


def verify(settings: Settings, name: str, *, progress: Progress = _quiet) -> list[str]:
    """Check a backup's files against its manifest and restore each store into a scratch copy; what was proved."""
    folder = locate(settings, name, progress=progress)
    manifest = read_manifest(folder)
    problems = check_files(folder, manifest)
    if problems:
        raise BackupError(f"backup {manifest.name} is damaged: {'; '.join(problems)}")
    said = [f"{len(manifest.parts)} files match their SHA-256 sums ({manifest.bytes} bytes)"]
    configured = {store.name: store for store in stores(settings)}
    for part in manifest.parts:
        path = folder / part.file
        if part.kind == "sqlite":
            damage = sqlite_store.integrity_problems(path)
            if damage:
                raise BackupError(f"backup {manifest.name}: {'; '.join(damage)}")
            revision = sqlite_store.alembic_revision(path) if part.name == ORDERS else None
            said.append(f"{part.name}: SQLite integrity check ok, {sqlite_store.table_count(path)} tables")
        else:
            server = _scratch_server(part, configured)
            progress(f"restoring {part.name} into a scratch database beside {postgres.display(server)}")
            with postgres.scratch_database(server) as scratch:
                postgres.restore(path, scratch, force=False)
                tables = postgres.table_count(scratch)
                revision = postgres.alembic_revision(scratch) if part.name == ORDERS else None
            said.append(f"{part.name}: restored into a scratch database ({tables} tables), dropped again")
        if part.name == ORDERS and revision != manifest.alembic_revision:
            raise BackupError(
                f"backup {manifest.name}: the order database is at revision {revision}, "
                f"the manifest says {manifest.alembic_revision}"
            )
    return said


def _scratch_server(part: Part, configured: dict[str, Store]) -> str:
    for candidate in (configured.get(part.name), configured.get(ORDERS)):
        if candidate is not None and candidate.kind == "postgresql":
            return candidate.url
    raise BackupError(f"no PostgreSQL server configured to verify the {part.name} dump on (set DATABASE_URL)")


def restore(settings: Settings, name: str, *, force: bool, progress: Progress = _quiet) -> list[str]:
    """Restore every store of a backup into the stores the settings name; what was done, one line each."""
    folder = locate(settings, name, progress=progress)
    manifest = read_manifest(folder)
    problems = check_files(folder, manifest)
    if problems:
        raise BackupError(f"backup {manifest.name} is damaged, nothing restored: {'; '.join(problems)}")
    _refuse_unknown_revision(manifest)
    configured = {store.name: store for store in stores(settings)}
    plan: list[tuple[Part, Store]] = []
    for part in manifest.parts:
        target = configured.get(part.name)
        if target is None:
            raise BackupError(
                f"backup {manifest.name} holds the store {part.name!r}, which is not configured here "
                f"(stores: {sorted(configured)}; see OMS_BACKUP_TEMPORAL_URLS)"
            )
        if target.kind != part.kind:
            raise BackupError(f"{part.name} was backed up from {part.kind}, but {target.shown} is {target.kind}")
        plan.append((part, target))
    if not force:
        # Every target is checked before any is touched, so a refusal leaves everything as it was.
        for part, target in plan:
            tables = _tables_in(target)
            if tables:
                raise BackupError(
                    f"{target.shown} ({part.name}) is not empty ({tables} tables), nothing restored: restore into "
                    "empty stores, or pass --force to replace what is there (stop the stack first)"
                )
    done = []
    for part, target in plan:
        progress(f"restoring {part.name} into {target.shown}")
        if part.kind == "postgresql":
            postgres.restore(folder / part.file, target.url, force=force)
        else:
            sqlite_store.restore(folder / part.file, sqlite_store.path_of(target.url), force=force)
        done.append(f"restored {part.name} ({part.kind}, {part.bytes} bytes) into {target.shown}")
    done.append(
        f"the stores are as they were at {manifest.created_at.isoformat(timespec='seconds')} "
        f"(order schema revision {manifest.alembic_revision}); start the service and the orders continue from there"
    )
    return done


def _tables_in(store: Store) -> int:
    if store.kind == "postgresql":
        return postgres.table_count(store.url)
    return sqlite_store.table_count(sqlite_store.path_of(store.url))


def _refuse_unknown_revision(manifest: Manifest) -> None:
    if manifest.alembic_revision is None:
        return
    from alembic.script import ScriptDirectory

    from db.migrate import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    if manifest.alembic_revision not in {script.revision for script in scripts.walk_revisions()}:
        raise BackupError(
            f"backup {manifest.name} has the order schema at revision {manifest.alembic_revision}, which this "
            "version of the service does not know: restore it with the version that took it "
            f"(app {manifest.versions.get('app')})"
        )
