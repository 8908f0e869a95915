"""API keys: made at random, shown once, kept only as a keyed hash.

A key reads `oms_<key id>_<secret>`. The key id is public (it names the key in lists, audit
entries and revocations); the secret is 256 random bits, and the database holds only its
HMAC-SHA256 under the server's hashing secret, so a copy of the table opens nothing.
Presented keys are checked by key id, then by comparing hashes in constant time.
Changes to keys are logged as security events (`log_key_event`) by whoever makes them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import structlog
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.tables import ApiKeyRow

log = structlog.get_logger("oms.security")

KEY_PATTERN = re.compile(r"^oms_(?P<key_id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})$")


class Role(StrEnum):
    CLIENT = "client"
    OPERATOR = "operator"
    PURCHASING = "purchasing"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """The caller behind a key."""

    key_id: str
    name: str
    role: Role
    client_id: str | None = None

    @property
    def owner(self) -> str:
        """Scope of what this caller owns: its client id for a client key, "" for staff keys."""
        return (self.client_id or "") if self.role == Role.CLIENT else ""


class InvalidKey(ValueError):
    """A string that is not an API key of this service."""


class KeyInfo(BaseModel):
    """What may be shown about a key: never the key, never its hash."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    name: str
    role: Role
    client_id: str | None
    created_at: datetime
    revoked_at: datetime | None
    locked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKeyRow) -> KeyInfo:
        return cls(
            key_id=row.key_id,
            name=row.name,
            role=Role(row.role),
            client_id=row.client_id,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            locked_at=row.locked_at,
        )


def new_key() -> str:
    return f"oms_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


def split_key(key: str) -> tuple[str, str]:
    match = KEY_PATTERN.match(key)
    if match is None:
        raise InvalidKey("an API key reads oms_<16 hex digits>_<43 URL-safe characters>")
    return match["key_id"], match["secret"]


def key_hash(hash_secret: str, secret: str) -> str:
    return hmac.new(hash_secret.encode(), secret.encode(), hashlib.sha256).hexdigest()


async def store_key(
    session: AsyncSession, key: str, *, name: str, role: Role, client_id: str | None, hash_secret: str
) -> KeyInfo:
    """Keep `key` (its hash) under its key id; a client key needs the client id it acts for."""
    if (role == Role.CLIENT) != (client_id is not None):
        raise ValueError("a client key needs a client id, and only a client key has one")
    key_id, secret = split_key(key)
    row = ApiKeyRow(
        key_id=key_id,
        name=name,
        role=role.value,
        client_id=client_id,
        key_hash=key_hash(hash_secret, secret),
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    return KeyInfo.of(row)


async def create_key(
    session: AsyncSession, *, name: str, role: Role, client_id: str | None = None, hash_secret: str
) -> tuple[str, KeyInfo]:
    """A new random key: the key itself (show it once) and what is kept about it."""
    key = new_key()
    return key, await store_key(session, key, name=name, role=role, client_id=client_id, hash_secret=hash_secret)


async def ensure_admin_key(session: AsyncSession, key: str, *, hash_secret: str) -> KeyInfo:
    """Make sure `key` exists as a usable admin key (the bootstrap key); a revoked one is refused."""
    key_id, secret = split_key(key)
    row = await session.get(ApiKeyRow, key_id)
    if row is None:
        return await store_key(
            session, key, name="bootstrap admin", role=Role.ADMIN, client_id=None, hash_secret=hash_secret
        )
    if not hmac.compare_digest(row.key_hash, key_hash(hash_secret, secret)) or row.role != Role.ADMIN.value:
        raise InvalidKey(f"key id {key_id} already belongs to another key")
    if row.revoked_at is not None:
        raise InvalidKey(f"the bootstrap admin key {key_id} was revoked; configure a new one")
    return KeyInfo.of(row)


async def authenticate(session: AsyncSession, presented: str, *, hash_secret: str) -> Principal | None:
    """The caller a presented key stands for, or None for anything else (unknown, wrong, revoked, locked)."""
    try:
        key_id, secret = split_key(presented)
    except InvalidKey:
        return None
    row = await session.get(ApiKeyRow, key_id)
    # Hash even when the key id is unknown, so both answers take the same time.
    expected = row.key_hash if row is not None else key_hash(hash_secret, "")
    matches = hmac.compare_digest(expected, key_hash(hash_secret, secret))
    if row is None or not matches or row.revoked_at is not None or row.locked_at is not None:
        return None
    return Principal(key_id=row.key_id, name=row.name, role=Role(row.role), client_id=row.client_id)


async def list_keys(session: AsyncSession) -> list[KeyInfo]:
    rows = (await session.execute(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.key_id))).scalars()
    return [KeyInfo.of(row) for row in rows]


async def _stamp(session: AsyncSession, key_id: str, column: str, value: datetime | None) -> KeyInfo | None:
    await session.execute(update(ApiKeyRow).where(ApiKeyRow.key_id == key_id).values({column: value}))
    row = await session.get(ApiKeyRow, key_id, populate_existing=True)
    return KeyInfo.of(row) if row is not None else None


async def revoke_key(session: AsyncSession, key_id: str) -> KeyInfo | None:
    """Revoke for good (None for an unknown key id); the key answers 401 from now on."""
    row = await session.get(ApiKeyRow, key_id)
    if row is None or row.revoked_at is not None:
        return KeyInfo.of(row) if row is not None else None
    return await _stamp(session, key_id, "revoked_at", datetime.now(UTC))


async def lock_key(session: AsyncSession, key_id: str, locked: bool = True) -> KeyInfo | None:
    """Lock at once (or unlock) a key; a locked key answers 401 until unlocked."""
    return await _stamp(session, key_id, "locked_at", datetime.now(UTC) if locked else None)


def log_key_event(event: str, info: KeyInfo, **fields: object) -> None:
    """A change to a key (key_created, key_revoked, key_locked, key_unlocked) as an event a monitor can alert on."""
    log.warning(
        event,
        category="security",
        key_id=info.key_id,
        key_name=info.name,
        role=info.role.value,
        client_id=info.client_id,
        **fields,
    )
