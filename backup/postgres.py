"""PostgreSQL stores: pg_dump in the custom format, pg_restore, scratch databases to prove a dump restores.

pg_dump refuses a server newer than itself, so the tools are chosen by the server's major
version: the same major, else the nearest newer one, from `pg_config --bindir`, the Debian
layout (/usr/lib/postgresql/<major>/bin) and the PATH. The password travels in PGPASSWORD, never
on a command line.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from backup.manifest import BackupError

DEBIAN_LAYOUT = Path("/usr/lib/postgresql")
VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Tools:
    bindir: Path
    major: int
    version: str

    def path(self, program: str) -> str:
        return str(self.bindir / program)


def libpq_url(url: str) -> URL:
    """The SQLAlchemy URL as libpq reads it: no driver name."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise BackupError(f"{parsed.render_as_string(hide_password=True)} is not a PostgreSQL URL")
    return parsed.set(drivername="postgresql")


def display(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    parsed = libpq_url(url)
    try:
        return psycopg.connect(parsed.render_as_string(hide_password=False), autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise BackupError(f"cannot connect to {display(url)}: {str(error).strip().splitlines()[0]}") from None


def server_version(url: str) -> tuple[int, str]:
    """The server's major version and its full version string."""
    with connect(url) as connection:
        number = int(connection.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
        full = str(connection.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    return number // 10000, full.split()[0]


def _candidate_bindirs() -> Iterator[Path]:
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if found.returncode == 0:
            yield Path(found.stdout.strip())
    if DEBIAN_LAYOUT.is_dir():
        yield from (path / "bin" for path in DEBIAN_LAYOUT.iterdir() if path.name.isdigit())
    on_path = shutil.which("pg_dump")
    if on_path:
        yield Path(on_path).resolve().parent


def installed_tools() -> list[Tools]:
    """Every pg_dump/pg_restore pair on this machine, by version."""
    seen: dict[Path, Tools] = {}
    for bindir in _candidate_bindirs():
        if bindir in seen or not ((bindir / "pg_dump").exists() and (bindir / "pg_restore").exists()):
            continue
        answer = subprocess.run([str(bindir / "pg_dump"), "--version"], capture_output=True, text=True, check=False)
        match = VERSION.search(answer.stdout)
        if match:
            seen[bindir] = Tools(bindir, int(match[1]), f"{match[1]}.{match[2] or 0}")
    return sorted(seen.values(), key=lambda tools: tools.major)


def tools_for(server_major: int) -> Tools:
    """pg_dump and pg_restore able to serve a server of this major version."""
    installed = installed_tools()
    usable = [tools for tools in installed if tools.major >= server_major]
    if not usable:
        found = ", ".join(f"{tools.major} ({tools.bindir})" for tools in installed) or "none"
        raise BackupError(
            f"the PostgreSQL server is version {server_major}, but no pg_dump of version {server_major} or newer "
            f"is installed (found: {found}): install the PostgreSQL {server_major} client tools"
        )
    return usable[0]


def _environment(url: str) -> dict[str, str]:
    env = dict(os.environ)
    password = libpq_url(url).password
    if password:
        env["PGPASSWORD"] = str(password)
    return env


def _dbname(url: str) -> str:
    """A connection string without the password, for the command line."""
    return libpq_url(url).set(password=None).render_as_string(hide_password=False)


def _run(tools: Tools, program: str, url: str, *args: str) -> None:
    done = subprocess.run(
        [tools.path(program), *args, f"--dbname={_dbname(url)}"],
        capture_output=True,
        text=True,
        check=False,
        env=_environment(url),
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise BackupError(f"{program} of {display(url)} failed: {' / '.join(lines[:3]) or done.returncode}")


def dump(url: str, target: Path) -> Tools:
    """A consistent snapshot of the database (one transaction) in pg_dump's custom format."""
    major, _ = server_version(url)
    tools = tools_for(major)
    _run(tools, "pg_dump", url, "--format=custom", "--no-owner", "--no-privileges", f"--file={target}")
    return tools


def table_count(url: str) -> int:
    with connect(url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()
    return int(row[0]) if row else 0


def alembic_revision(url: str) -> str | None:
    with connect(url) as connection:
        present = connection.execute("SELECT to_regclass('public.alembic_version')").fetchone()
        if not present or present[0] is None:
            return None
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


def restore(dump_file: Path, url: str, *, force: bool) -> None:
    """Restore a dump into the database at `url`; one that holds tables is refused unless `force` (it is emptied)."""
    tables = table_count(url)
    if tables and not force:
        raise BackupError(
            f"{display(url)} is not empty ({tables} tables): restore into an empty database, or pass --force "
            "to drop everything in it first"
        )
    major, _ = server_version(url)
    tools = tools_for(major)
    if tables:
        with connect(url, autocommit=True) as connection:
            connection.execute("DROP SCHEMA public CASCADE")
            connection.execute("CREATE SCHEMA public")
    _run(
        tools,
        "pg_restore",
        url,
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        str(dump_file),
    )


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A new empty database on the same server as `url`, dropped on exit (its role needs CREATEDB)."""
    name = f"{libpq_url(url).database or 'oms'}_verify_{secrets.token_hex(4)}"[:63]
    with connect(url, autocommit=True) as connection:
        try:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as error:
            raise BackupError(f"cannot create a scratch database to verify in: {str(error).strip()}") from None
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(url, name)


def drop_database(url: str, name: str, *, attempts: int = 40) -> None:
    """Drop the database `name` on the server of `url`, ending the sessions still on it.

    A role that is not a superuser may end only sessions of its own: an autovacuum worker busy on a
    database just restored is not one, and the drop is refused while it runs. It is tried again then,
    every quarter of a second, until the worker has moved on.
    """
    for attempt in range(1, attempts + 1):
        with connect(url, autocommit=True) as connection:
            try:
                connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                return
            except psycopg.errors.InsufficientPrivilege:
                if attempt == attempts:
                    raise
        time.sleep(0.25)
