"""What counts as guessing a key: wrong keys block their source; requests without any credential, and a
codec session this service signed whose key has since stopped working, never do.

The Temporal UI calls the codec endpoint dozens of times for one page, with no credential until
the operator has signed in, and with the session cookie on every call once signed in, even after
its key has been revoked; on the local stack every client shares that address. Over real HTTP
against the API on real PostgreSQL and the Temporal dev server (tests/test_temporal_ui.py shows
the same from the UI in a real browser).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.routes.codec import SESSION_COOKIE
from security.api_keys import new_key, revoke_key, split_key
from tests.keys import Keys, bearer
from tests.test_auth import http, serving


async def test_requests_without_a_credential_are_refused_but_never_block_their_source(
    dev_server_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    task_queue: str,
    keys: Keys,
) -> None:
    limit = 3
    async with (
        serving(dev_server_env.client, database_url, sessionmaker, task_queue, auth_failure_limit=limit) as base_url,
        http(base_url) as browser,
        http(base_url, keys.operator) as operator,
    ):
        unsigned = [(await browser.post("/codec/decode", json={"payloads": []})).status_code for _ in range(limit * 4)]
        empty_header = await browser.get("/orders", headers={"Authorization": ""})
        meanwhile = await operator.get("/orders")

    assert unsigned == [401] * (limit * 4)
    assert empty_header.status_code == 401
    assert meanwhile.status_code == 200


async def test_wrong_and_malformed_keys_still_block_their_source(
    dev_server_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    task_queue: str,
    keys: Keys,
) -> None:
    async with (
        serving(dev_server_env.client, database_url, sessionmaker, task_queue, auth_failure_limit=3) as base_url,
        http(base_url) as guesser,
        http(base_url, keys.operator) as operator,
    ):
        wrong = [(await guesser.post("/codec/decode", headers=bearer(new_key()))).status_code for _ in range(2)]
        malformed = await guesser.get("/orders", headers={"Authorization": "Bearer not-a-key"})
        after = await operator.get("/orders")

    assert wrong == [401, 401]
    assert malformed.status_code == 401
    assert after.status_code == 429


async def test_a_signed_session_whose_key_was_revoked_is_refused_but_never_blocks_its_source(
    dev_server_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    task_queue: str,
    keys: Keys,
) -> None:
    limit = 3
    async with (
        serving(dev_server_env.client, database_url, sessionmaker, task_queue, auth_failure_limit=limit) as base_url,
        http(base_url) as browser,
        http(base_url, keys.admin) as admin,
    ):
        opened = await browser.post("/codec/session", headers=bearer(keys.operator))
        async with sessionmaker.begin() as session:
            await revoke_key(session, split_key(keys.operator)[0])
        answers = [(await browser.post("/codec/decode", json={"payloads": []})).status_code for _ in range(limit * 4)]
        meanwhile = await admin.get("/orders")

    assert opened.status_code == 204
    assert answers == [401] * (limit * 4)
    assert meanwhile.status_code == 200


async def test_a_session_cookie_this_service_did_not_sign_counts_as_a_guess(
    dev_server_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    task_queue: str,
    keys: Keys,
) -> None:
    async with (
        serving(dev_server_env.client, database_url, sessionmaker, task_queue, auth_failure_limit=3) as base_url,
        http(base_url, keys.admin) as admin,
    ):
        forged = []
        for cookie in (new_key(), f"{new_key()}.{'0' * 64}", "not a key"):
            async with http(base_url, cookies={SESSION_COOKIE: cookie}) as guesser:
                forged.append((await guesser.post("/codec/decode", json={"payloads": []})).status_code)
        after = await admin.get("/orders")

    assert forged == [401, 401, 401]
    assert after.status_code == 429
