"""API keys on PostgreSQL: only a keyed hash is kept, and revoked or locked keys open nothing."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.tables import ApiKeyRow
from security.api_keys import Role, authenticate, create_key, lock_key, revoke_key, split_key

SECRET = "test-hash-secret"


async def test_a_key_authenticates_as_its_role_and_client_and_is_stored_only_as_a_hash(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker.begin() as session:
        key, info = await create_key(session, name="shop", role=Role.CLIENT, client_id="shop-1", hash_secret=SECRET)
    key_id, secret = split_key(key)

    async with sessionmaker.begin() as session:
        principal = await authenticate(session, key, hash_secret=SECRET)
        stored = [tuple(row) for row in (await session.execute(select(ApiKeyRow.__table__))).all()]

    assert principal is not None
    assert (principal.key_id, principal.role, principal.client_id, principal.owner) == (
        key_id,
        Role.CLIENT,
        "shop-1",
        "shop-1",
    )
    assert info.key_id == key_id
    assert len(secret) == 43  # 256 random bits
    assert not any(secret in str(value) for row in stored for value in row)


async def test_wrong_unknown_revoked_and_locked_keys_are_refused(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker.begin() as session:
        key, info = await create_key(session, name="ops", role=Role.OPERATOR, hash_secret=SECRET)
        other, _ = await create_key(session, name="gone", role=Role.OPERATOR, hash_secret=SECRET)
    key_id, secret = split_key(key)
    forged = f"oms_{key_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"

    async with sessionmaker.begin() as session:
        assert await authenticate(session, forged, hash_secret=SECRET) is None
        assert await authenticate(session, key, hash_secret="another-secret") is None
        assert await authenticate(session, "oms_0000000000000000_" + secret, hash_secret=SECRET) is None
        assert await authenticate(session, "not a key", hash_secret=SECRET) is None
        await revoke_key(session, split_key(other)[0])
        await lock_key(session, info.key_id)
    async with sessionmaker.begin() as session:
        assert await authenticate(session, other, hash_secret=SECRET) is None
        assert await authenticate(session, key, hash_secret=SECRET) is None
        await lock_key(session, info.key_id, locked=False)
    async with sessionmaker.begin() as session:
        assert await authenticate(session, key, hash_secret=SECRET) is not None
