"""What a backup holds, and the rules over backups as plain data: names, retention, checksums."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

MANIFEST = "manifest.json"
FORMAT = 1
# 20261201T194512Z, or 20261201T194512Z-2 for a second backup within the same second.
NAME = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")


class BackupError(Exception):
    """A backup or restore that cannot go on, told to the operator in one line."""


class Part(BaseModel):
    """One store in a backup: a PostgreSQL dump or a SQLite copy."""

    # "orders" for the order database; the Temporal stores by their database name.
    name: str
    kind: Literal["postgresql", "sqlite"]
    file: str
    bytes: int
    sha256: str
    # Where it was taken from, without a password.
    source: str


class Manifest(BaseModel):
    format: int = FORMAT
    name: str
    created_at: datetime
    seconds: float
    versions: dict[str, str]
    # The Alembic revision the order database was at.
    alembic_revision: str | None
    parts: list[Part]

    @property
    def bytes(self) -> int:
        return sum(part.bytes for part in self.parts)

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise BackupError(f"backup {self.name} holds no {name!r} store (it holds {[p.name for p in self.parts]})")


def backup_name(moment: datetime, taken: set[str]) -> str:
    """The folder name for a backup taken at `moment`, unique among `taken`."""
    base = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}-{number}"
    return name


def newest_first(names: set[str]) -> list[str]:
    """Backup names, the newest first; anything that is not a backup name is left out."""

    def key(name: str) -> tuple[str, int]:
        base, _, number = name.partition("-")
        return base, int(number or 1)

    return sorted((name for name in names if NAME.match(name)), key=key, reverse=True)


def to_delete(names: set[str], keep: int) -> list[str]:
    """The backups retention removes: all but the `keep` newest."""
    return newest_first(names)[max(keep, 1) :]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise BackupError(f"{folder} has no {MANIFEST}: not a backup, or one that did not finish") from None
    except (ValidationError, ValueError) as error:
        raise BackupError(f"{path} is not a readable manifest: {str(error).splitlines()[0]}") from None


def write_manifest(folder: Path, manifest: Manifest) -> None:
    # Written last and renamed into place: a folder with a manifest is a finished backup.
    temporary = folder / f".{MANIFEST}.partial"
    temporary.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")
    temporary.replace(folder / MANIFEST)


def check_files(folder: Path, manifest: Manifest) -> list[str]:
    """What is wrong with the files of a backup against its manifest: missing, truncated or changed."""
    problems = []
    for part in manifest.parts:
        path = folder / part.file
        if not path.is_file():
            problems.append(f"{part.file} is missing")
        elif path.stat().st_size != part.bytes:
            problems.append(f"{part.file} has {path.stat().st_size} bytes, the manifest says {part.bytes}")
        elif sha256_of(path) != part.sha256:
            problems.append(f"{part.file} does not match its SHA-256 in the manifest: the file is corrupt")
    return problems
