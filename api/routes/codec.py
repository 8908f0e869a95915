"""The codec server for the Temporal UI: operators see orders decoded; the history itself stays ciphertext.

The UI posts `{"payloads": [...]}` to /codec/decode (and /codec/encode) from the operator's
browser. Callers need an operator or admin key: as a Bearer header (the CLI, scripts) or, for a
browser, as the session cookie that /codec/login sets once the operator has entered a key there.
The cookie is HttpOnly, limited to /codec and same-site. The UI sends it only with its browser-level
codec setting ("Use my browser setting", this endpoint, "Include cross-origin credentials" on),
from an origin in OMS_CODEC_CORS_ORIGINS: the cluster-level setting that `--ui-codec-endpoint`
makes never includes credentials. The sign-in page lists the steps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import HTMLResponse
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import require_role
from api.deps import KeyringDep, SettingsDep
from api.errors import BODY_ERRORS, error_responses
from api.refusals import Unauthenticated
from security.api_keys import Principal, Role
from security.codec import EncryptionCodec, decode_codec_body, encode_codec_body

PREFIX = "/codec"
SESSION_COOKIE = "oms_codec_session"
SESSION_SECONDS = 8 * 3600

router = APIRouter(prefix=PREFIX, tags=["codec"], responses=error_responses(401, 403))
Operator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]

BASE64 = {
    "type": "string",
    "pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
    "description": "base64 (unpadded and URL-safe forms are read too)",
}
PAYLOADS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["payloads"],
                    "properties": {
                        "payloads": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "metadata": {"type": "object", "additionalProperties": BASE64},
                                    "data": BASE64,
                                },
                            },
                        }
                    },
                }
            }
        },
    }
}


def session_cookie(key: str, secret: str) -> str:
    """The cookie's value: the key and this service's signature of it."""
    return f"{key}.{_signature(key, secret)}"


def session_key(cookie: str, secret: str) -> str | None:
    """The key in a session cookie this service signed; None for any other value (forged, or unsigned)."""
    key, dot, signature = cookie.rpartition(".")
    if not dot or not hmac.compare_digest(signature.encode(), _signature(key, secret).encode()):
        return None
    return key


def _signature(key: str, secret: str) -> str:
    return hmac.new(secret.encode(), b"codec-session:" + key.encode(), hashlib.sha256).hexdigest()


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return None


@router.post("/decode", responses=error_responses(*BODY_ERRORS), openapi_extra=PAYLOADS_BODY)
async def decode(request: Request, keyring: KeyringDep, _caller: Operator) -> dict[str, Any]:
    """Payloads as the UI sends them, decrypted; payloads that were never encrypted come back as they are."""
    return await decode_codec_body(EncryptionCodec(keyring), await _body(request))


@router.post("/encode", responses=error_responses(*BODY_ERRORS), openapi_extra=PAYLOADS_BODY)
async def encode(request: Request, keyring: KeyringDep, _caller: Operator) -> dict[str, Any]:
    """Payloads encrypted under the active key, e.g. a signal an operator sends from the UI."""
    return await encode_codec_body(EncryptionCodec(keyring), await _body(request))


@router.post("/session", status_code=status.HTTP_204_NO_CONTENT)
async def open_session(request: Request, response: Response, settings: SettingsDep, _caller: Operator) -> None:
    """Keep the presented operator key in an HttpOnly cookie for /codec, so the UI's calls carry it.

    The cookie is signed, so the guard knows a session it opened from a forged one: when the key of
    a signed session stops working (revoked, locked), the UI's calls with it are refused without
    counting as guesses that block the address.
    """
    key = request.headers.get("authorization", "").partition(" ")[2].strip()
    if not key:
        # Only a key presented in the header opens a session; an existing cookie does not renew itself.
        raise Unauthenticated()
    response.set_cookie(
        SESSION_COOKIE,
        session_cookie(key, settings.api_key_hash_secret),
        max_age=SESSION_SECONDS,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
async def close_session(response: Response, _caller: Operator) -> None:
    response.delete_cookie(SESSION_COOKIE, path=PREFIX, httponly=True, samesite="strict")


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Order management: codec sign-in</title>
<style>
body { font-family: sans-serif; line-height: 1.4; max-width: 40em; margin: 2em auto; padding: 0 1em; }
input, button { font: inherit; padding: 0.4em; }
input { display: block; width: 100%; box-sizing: border-box; margin: 0.3em 0 0.6em; }
code { overflow-wrap: anywhere; }
</style></head>
<body>
<h1>Show decoded orders in the Temporal UI</h1>
<form id="login"><label for="key">API key</label> (an operator or admin key)
<input id="key" type="password" autocomplete="off" placeholder="oms_..." required>
<button>Sign in</button></form>
<p id="outcome" role="status"></p>
<p>The key is kept in a cookie for this service's codec endpoint only, for 8 hours. Then, in the Temporal UI,
opened under the same host name as this page (127.0.0.1 and localhost are different sites to a browser):</p>
<ol>
<li>click the Codec Server icon at the top right;</li>
<li>choose "Use my browser setting and ignore Cluster-level setting.";</li>
<li>paste <code id="endpoint"></code> as the Codec Server browser endpoint;</li>
<li>turn on "Include cross-origin credentials" and click Apply;</li>
<li>click an order in the workflow list.</li>
</ol>
<script>
document.getElementById("endpoint").textContent = new URL(".", location.href).href.replace(/\\/$/, "");
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = document.getElementById("key").value.trim();
  const answer = await fetch("session", {method: "POST", headers: {Authorization: "Bearer " + key}});
  document.getElementById("outcome").textContent = answer.ok
    ? "Signed in: follow the steps below in the Temporal UI."
    : "Refused (" + answer.status + "): an operator or admin key is needed.";
});
</script></body></html>
"""


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_page() -> HTMLResponse:
    return HTMLResponse(LOGIN_PAGE, headers={"Content-Security-Policy": "default-src 'self' 'unsafe-inline'"})


class CodecCORS:
    """CORS for the codec endpoint alone: the Temporal UI's origins may call it with credentials.

    Outermost middleware, so a browser's preflight (which carries no credentials) is answered
    before the guard asks for a key. Every other path gets no CORS headers at all.
    """

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self._app = app
        self._cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=["POST", "DELETE"],
            allow_headers=["authorization", "content-type", "x-namespace"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX + "/"):
            await self._cors(scope, receive, send)
        else:
            await self._app(scope, receive, send)
