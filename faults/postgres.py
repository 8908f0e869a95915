"""A PostgreSQL server of the fault suite's own, so that stopping it disturbs nobody else.

It is made with `initdb` in a temporary directory, listens on 127.0.0.1 on a free port with
trust authentication, and is stopped and removed at the end. initdb refuses to run as root, so
when the suite runs as root the server's files belong to, and its processes run as, the
`postgres` system user. The binaries are found with `pg_config --bindir`, in the Debian layout
(/usr/lib/postgresql/<version>/bin) or on the PATH.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

SUPERUSER = "oms"
START_SECONDS = 60
# Debian and Ubuntu install each major version's server binaries here.
DEBIAN_LAYOUT = Path("/usr/lib/postgresql")


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries on this machine, or the server would not start."""


def server_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if found.returncode == 0:
            candidates.append(Path(found.stdout.strip()))
    if DEBIAN_LAYOUT.is_dir():
        versions = [path for path in DEBIAN_LAYOUT.iterdir() if path.name.isdigit()]
        candidates += [path / "bin" for path in sorted(versions, key=lambda path: int(path.name), reverse=True)]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl): install PostgreSQL")


class PostgresServer:
    def __init__(self, root: Path, port: int, bindir: Path) -> None:
        self.root = root
        self.port = port
        self._bindir = bindir
        self._data = root / "data"
        self._log = root / "server.log"
        # Root may not run the server; the postgres system user owns and runs it instead.
        owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self._uid = owner.pw_uid if owner else None
        self._gid = owner.pw_gid if owner else None

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        if self._uid is not None and self._gid is not None:
            os.chown(self.root, self._uid, self._gid)
        self._run("initdb", "-D", str(self._data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self._data),
            "-l",
            str(self._log),
            "-w",
            "-t",
            str(START_SECONDS),
            "-o",
            options,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: "fast" rolls back open transactions and closes every connection."""
        self._run("pg_ctl", "stop", "-D", str(self._data), "-m", mode, "-w", "-t", str(START_SECONDS))

    def running(self) -> bool:
        status = subprocess.run(
            [str(self._bindir / "pg_ctl"), "status", "-D", str(self._data)],
            capture_output=True,
            check=False,
            user=self._uid,
            group=self._gid,
        )
        return status.returncode == 0

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(self._bindir / program), *args],
            capture_output=True,
            text=True,
            check=False,
            user=self._uid,
            group=self._gid,
        )
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"{program} {' '.join(args[:2])} failed: {done.stderr.strip()}\n{self.log_tail()}"
            )


@contextmanager
def postgres_server(port: int) -> Iterator[PostgresServer]:
    """A running server of our own on `port`; stopped and its files removed on exit."""
    root = Path(tempfile.mkdtemp(prefix="oms-faults-pg-"))
    server = PostgresServer(root, port, server_bindir())
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
