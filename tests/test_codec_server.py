"""The codec endpoint the Temporal UI decodes payloads with: operators only, CORS for the UI's origin alone."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from security.api_keys import revoke_key, split_key
from security.codec import EncryptionCodec
from tests.conftest import TEST_KEYRING
from tests.keys import Keys, bearer
from tests.servers import running_server
from tests.test_api import api_settings

UI_ORIGIN = "http://127.0.0.1:8233"
ORDER_JSON = b'{"customer": {"email": "ada@example.com"}}'


@pytest.fixture
async def api_url(
    database_url: str,
    task_queue: str,
    dev_server_env: WorkflowEnvironment,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[str]:
    settings = api_settings(database_url, task_queue)
    app = create_app(settings, client=dev_server_env.client, sessionmaker=sessionmaker, keyring=TEST_KEYRING)
    async with running_server(app) as url:
        yield url


def ui_body(payload: Payload) -> dict[str, object]:
    return {
        "payloads": [
            {
                "metadata": {name: base64.b64encode(value).decode() for name, value in payload.metadata.items()},
                "data": base64.b64encode(payload.data).decode(),
            }
        ]
    }


async def encrypted_body() -> dict[str, object]:
    plain = Payload(metadata={"encoding": b"json/plain"}, data=ORDER_JSON)
    [sealed] = await EncryptionCodec(TEST_KEYRING).encode([plain])
    assert ORDER_JSON not in sealed.SerializeToString()
    return ui_body(sealed)


async def test_an_operator_sees_payloads_decoded_and_other_roles_do_not(api_url: str, keys: Keys) -> None:
    body = await encrypted_body()
    async with httpx.AsyncClient(base_url=api_url) as http:
        answers = {
            role: await http.post("/codec/decode", json=body, headers=bearer(key) if key else {})
            for role, key in {
                "operator": keys.operator,
                "admin": keys.admin,
                "client": keys.client,
                "purchasing": keys.purchasing,
                "nobody": "",
            }.items()
        }

    assert {role: answer.status_code for role, answer in answers.items()} == {
        "operator": 200,
        "admin": 200,
        "client": 403,
        "purchasing": 403,
        "nobody": 401,
    }
    [decoded] = answers["operator"].json()["payloads"]
    assert base64.b64decode(decoded["data"]) == ORDER_JSON
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"


async def test_encode_then_decode_round_trips_and_a_bad_body_is_a_422(api_url: str, keys: Keys) -> None:
    plain = ui_body(Payload(metadata={"encoding": b"json/plain"}, data=b'"approve"'))
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(keys.operator)) as http:
        encoded = await http.post("/codec/encode", json=plain)
        decoded = await http.post("/codec/decode", json=encoded.json())
        malformed = await http.post("/codec/decode", content=b"not json", headers={"Content-Type": "application/json"})
        forged = encoded.json()
        forged["payloads"][0]["data"] = base64.b64encode(b"x" * 40).decode()
        undecryptable = await http.post("/codec/decode", json=forged)

    assert encoded.status_code == 200
    assert base64.b64decode(encoded.json()["payloads"][0]["metadata"]["encoding"]) == b"binary/encrypted"
    assert decoded.json() == plain
    assert (malformed.status_code, malformed.json()["detail"][0]["loc"]) == (422, ["body"])
    assert (undecryptable.status_code, undecryptable.json()["detail"][0]["type"]) == (422, "undecryptable")


async def test_cors_admits_the_ui_origin_with_credentials_and_no_other(api_url: str) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-namespace"}
    async with httpx.AsyncClient(base_url=api_url) as http:
        ui = await http.options("/codec/decode", headers={"Origin": UI_ORIGIN, **preflight})
        stranger = await http.options("/codec/decode", headers={"Origin": "http://evil.example", **preflight})
        elsewhere = await http.options("/orders", headers={"Origin": UI_ORIGIN, **preflight})

    assert ui.status_code == 200
    assert ui.headers["access-control-allow-origin"] == UI_ORIGIN
    assert ui.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-origin" not in stranger.headers
    assert "access-control-allow-origin" not in elsewhere.headers


async def test_a_browser_session_carries_the_key_until_it_is_revoked(
    api_url: str, keys: Keys, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = await encrypted_body()
    async with httpx.AsyncClient(base_url=api_url) as browser:
        login_page = await browser.get("/codec/login")
        refused = await browser.post("/codec/session", headers=bearer(keys.client))
        opened = await browser.post("/codec/session", headers=bearer(keys.operator))
        with_cookie = await browser.post("/codec/decode", json=body, headers={"Origin": UI_ORIGIN})
        elsewhere = await browser.get("/orders")
        async with sessionmaker.begin() as session:
            await revoke_key(session, split_key(keys.operator)[0])
        after_revocation = await browser.post("/codec/decode", json=body)

    assert login_page.status_code == 200 and "Include cross-origin credentials" in login_page.text
    assert refused.status_code == 403
    cookie = opened.headers["set-cookie"].lower()
    assert opened.status_code == 204
    assert all(part in cookie for part in ("httponly", "samesite=strict", "path=/codec", "max-age=28800"))
    assert with_cookie.status_code == 200
    assert with_cookie.headers["access-control-allow-origin"] == UI_ORIGIN
    assert json.loads(base64.b64decode(with_cookie.json()["payloads"][0]["data"])) == json.loads(ORDER_JSON)
    # The cookie opens the codec endpoint and nothing else.
    assert elsewhere.status_code == 401
    assert after_revocation.status_code == 401
