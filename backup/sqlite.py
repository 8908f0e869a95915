"""SQLite stores (the embedded order database, the Temporal dev server's file): copied with SQLite's online
backup API, which reads a consistent snapshot while the owning process keeps writing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from backup.manifest import BackupError


def path_of(url: str) -> Path:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        raise BackupError(f"{url} is not a SQLite file URL")
    return Path(parsed.database)


def copy(source: Path, target: Path) -> None:
    """A consistent copy of the live database `source` at `target`."""
    if not source.is_file():
        raise BackupError(f"the SQLite database {source} does not exist")
    try:
        reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        writer = sqlite3.connect(target)
        try:
            # All pages in one step: the reader holds a read lock for that while, so the copy is one moment.
            reader.backup(writer)
        finally:
            writer.close()
            reader.close()
    except sqlite3.Error as error:
        raise BackupError(f"cannot copy {source}: {error}") from None


def integrity_problems(path: Path) -> list[str]:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            rows = connection.execute("PRAGMA integrity_check").fetchall()
        connection.close()
    except sqlite3.Error as error:
        return [f"{path.name} is not a readable SQLite database: {error}"]
    answers = [str(row[0]) for row in rows]
    return [] if answers == ["ok"] else [f"{path.name}: {answer}" for answer in answers[:5]]


def table_count(path: Path) -> int:
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with sqlite3.connect(path) as connection:
        row = connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()
    connection.close()
    return int(row[0])


def alembic_revision(path: Path) -> str | None:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        try:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:
            row = None
    connection.close()
    return str(row[0]) if row else None


def restore(copy_file: Path, target: Path, *, force: bool) -> None:
    """Put the copy in place of `target`; a target holding tables is refused unless `force`."""
    tables = table_count(target)
    if tables and not force:
        raise BackupError(
            f"{target} is not empty ({tables} tables): restore into a missing or empty file, or pass --force "
            "to replace it (stop what uses it first)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # A stale write-ahead log of the replaced file would be replayed over the restored one.
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(copy_file) as reader:
        writer = sqlite3.connect(target)
        try:
            reader.backup(writer)
        finally:
            writer.close()
    reader.close()
