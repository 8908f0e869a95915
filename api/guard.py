"""The door of the API: request ids, blocked sources, authentication, and the audit log.

Every HTTP request passes the guard before FastAPI reads its body:

1. It gets a request id, the caller's `X-Request-ID` when well-formed or a new one, echoed in
   the response and bound to every log line written while it is served (with the order_id and
   workflow_id of a path that names an order); Temporal calls made meanwhile carry it on to the
   workflow (observability.request_id).
2. A source address blocked after repeated failed authentications (wrong or malformed keys;
   a request without any credential, or with a signed codec session whose key no longer works,
   is no guess and does not count) is answered 429 with Retry-After, whatever key it sends
   (health probes excepted).
3. A request for any path but the public ones (api.auth.PUBLIC_PATHS) is authenticated here,
   so a caller without a usable key learns nothing, not even whether its body would parse;
   unknown paths included. The route's `require_role` then checks the role. CORS preflights
   (OPTIONS), which browsers send without credentials, pass unauthenticated: no route serves
   OPTIONS, so they reach nothing but a CORS middleware or a 405. Besides the Authorization
   header, the codec endpoint takes the key of its session cookie, and the operator console
   (console/) the key of its own; a console visitor without a usable session is sent to its
   sign-in page (303) instead of being answered 401.
4. Once the status code is known, and before the response leaves, a mutating request (POST,
   PUT, PATCH, DELETE) or a refusal for who the caller is (401, 403, 429) is appended to the
   audit log in a transaction of its own, and security events go to the structured log under
   stable names (auth_failed, access_denied, source_blocked, request_blocked, rate_limited).

Blocks are counted per API process (security.limits).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import FastAPI, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import PROBE_PATHS, PUBLIC_PATHS, PUBLIC_PREFIXES
from api.errors import error_response
from api.refusals import RETRY_AFTER_SECONDS, Unauthenticated, database_unavailable
from api.route_templates import RouteTemplates
from api.routes.codec import PREFIX as CODEC_PREFIX
from api.routes.codec import SESSION_COOKIE as CODEC_SESSION_COOKIE
from api.routes.codec import session_key
from console import session as console_session
from db.audit import append_entry
from db.engine import statement_by_statement
from models.audit import AuditEntry, AuditOutcome
from models.names import order_workflow_id
from observability import request_id
from security.api_keys import InvalidKey, Principal, authenticate, split_key
from security.limits import SourceBlocker, retry_after

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REFUSED_FOR_WHO = frozenset({401, 403, 429})
# The failed authentications that count towards blocking a source: a key was presented and is wrong.
# A request with no credential at all guesses nothing (the Temporal UI sends dozens of them for one
# page before the operator signs in at /codec/login), nor does one with a codec session this service
# signed whose key has since been revoked or locked (the UI sends it on every call): both are answered
# 401 and not counted.
GUESSES = frozenset({"malformed", "refused"})
_TARGET_STATE = "audit_target"

log = structlog.get_logger("oms.security")


def set_audit_target(request: Request, **ids: str) -> None:
    """Name what a request acted on when its path does not, e.g. the order a POST /orders created."""
    request.state.audit_target = ids


@dataclass
class _Exchange:
    """What the guard learns about one request on its way through."""

    method: str
    path: str
    source: str
    request_id: str
    presented_key_id: str | None = None
    # The key came from a codec session cookie this service signed.
    signed_session: bool = False
    auth_failure: str | None = None
    principal: Principal | None = None
    blocked: bool = False
    status: int | None = None


class Guard:
    """ASGI middleware; see the module docstring. `blocker` counts failed authentications per source."""

    def __init__(self, app: ASGIApp, blocker: SourceBlocker) -> None:
        self.app = app
        self._blocker = blocker
        self._routes = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        client = scope.get("client")
        exchange = _Exchange(
            method=scope["method"],
            path=scope["path"],
            source=client[0] if client else "unknown",
            request_id=_request_id(headers.get("x-request-id")),
        )

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start" and exchange.status is None:
                exchange.status = int(message["status"])
                MutableHeaders(scope=message).append("X-Request-ID", exchange.request_id)
                await self._settle(scope, exchange)
            await send(message)

        _, ids = self._routes.resolve(scope["app"], exchange.path)
        with structlog.contextvars.bound_contextvars(request_id=exchange.request_id, **_order_context(ids)):
            try:
                await self._admit(scope, receive, answer, headers, exchange)
            except Exception:
                if exchange.status is None:
                    exchange.status = 500
                    await self._settle(scope, exchange)
                raise

    async def _admit(self, scope: Scope, receive: Receive, send: Send, headers: Headers, exchange: _Exchange) -> None:
        if exchange.path not in PROBE_PATHS and (wait := self._blocker.blocked_for(exchange.source)) is not None:
            exchange.blocked = True
            detail = "too many failed authentications from this address; try again later"
            await error_response(429, detail, retry_after=retry_after(wait))(scope, receive, send)
            return
        if exchange.path in PUBLIC_PATHS or exchange.path.startswith(PUBLIC_PREFIXES) or exchange.method == "OPTIONS":
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._authenticate(
                scope["app"], self._credentials(scope["app"], headers, exchange), exchange
            )
        except SQLAlchemyError as error:
            if not database_unavailable(error):
                raise
            # Down, or every connection busy: either way the caller should come back shortly.
            await error_response(503, "the database is unavailable", retry_after=RETRY_AFTER_SECONDS)(
                scope, receive, send
            )
            return
        if principal is None and console_session.is_console_path(exchange.path) and "authorization" not in headers:
            # A person at a browser (a key in the header is a program's, answered 401): to the sign-in
            # page, and back here afterwards (to a page, not to the target of a form).
            back = exchange.path if exchange.method == "GET" else console_session.PREFIX
            query = scope.get("query_string", b"").decode("latin-1") if exchange.method == "GET" else ""
            await RedirectResponse(console_session.login_location(back, query), status_code=303)(scope, receive, send)
            return
        if principal is None:
            refusal = Unauthenticated()
            await error_response(401, refusal.detail, headers=refusal.headers)(scope, receive, send)
            return
        exchange.principal = principal
        scope.setdefault("state", {})["principal"] = principal
        with structlog.contextvars.bound_contextvars(actor_key_id=principal.key_id):
            await self.app(scope, receive, send)

    def _credentials(self, app: FastAPI, headers: Headers, exchange: _Exchange) -> str | None:
        """The Authorization header; for the codec endpoint and the console, the key in their session cookie."""
        authorization = headers.get("authorization")
        if authorization is not None:
            return authorization
        secret = app.state.settings.api_key_hash_secret
        cookies = cookie_parser(headers.get("cookie", ""))
        if exchange.path.startswith(CODEC_PREFIX + "/"):
            cookie = cookies.get(CODEC_SESSION_COOKIE)
            key = session_key(cookie, secret) if cookie else None
        elif console_session.is_console_path(exchange.path):
            cookie = cookies.get(console_session.COOKIE)
            if cookie and console_session.signed(cookie, secret):
                key = console_session.session_key(cookie, secret, time.time())
                if key is None:
                    # A session of ours that has ended: sign in again; no guess.
                    return None
            else:
                key = None
        else:
            return None
        if not cookie:
            return None
        exchange.signed_session = key is not None
        # An unsigned value is taken as a key presented, wrong unless it is one.
        return f"Bearer {key or cookie}"

    async def _authenticate(self, app: FastAPI, authorization: str | None, exchange: _Exchange) -> Principal | None:
        if not authorization:
            exchange.auth_failure = "missing"
            return None
        scheme, _, presented = authorization.partition(" ")
        presented = presented.strip()
        try:
            key_id, _ = split_key(presented)
        except InvalidKey:
            key_id = None
        if scheme.lower() != "bearer" or key_id is None:
            exchange.auth_failure = "malformed"
            return None
        exchange.presented_key_id = key_id
        async with app.state.sessionmaker() as session:
            await statement_by_statement(session)
            principal = await authenticate(session, presented, hash_secret=app.state.settings.api_key_hash_secret)
        if principal is None:
            # Unknown, wrong, revoked or locked: the caller is never told which.
            exchange.auth_failure = "refused"
        return principal

    async def _settle(self, scope: Scope, exchange: _Exchange) -> None:
        """Count, log and audit the answer; nothing here may keep the response from leaving."""
        try:
            template, ids = self._routes.resolve(scope["app"], exchange.path)
            action = f"{exchange.method} {template or exchange.path}"[:100]
            outcome = _outcome(exchange)
            self._count_and_log(exchange, action, outcome)
            refused = exchange.status in REFUSED_FOR_WHO or outcome == AuditOutcome.UNAUTHENTICATED
            if exchange.method in MUTATING_METHODS or refused:
                ids = scope.get("state", {}).get(_TARGET_STATE) or ids
                await self._audit(scope["app"], exchange, action, outcome, _target(ids))
        except Exception:
            log.exception("audit_failed", category="security", request_id=exchange.request_id)

    def _count_and_log(self, exchange: _Exchange, action: str, outcome: AuditOutcome) -> None:
        principal = exchange.principal
        fields: dict[str, Any] = {
            "category": "security",
            "source": exchange.source,
            "action": action,
            "key_id": principal.key_id if principal else exchange.presented_key_id,
            "role": principal.role.value if principal else None,
        }
        if outcome == AuditOutcome.UNAUTHENTICATED:
            log.warning("auth_failed", **fields, reason=exchange.auth_failure)
            guess = exchange.auth_failure in GUESSES and not exchange.signed_session
            if guess and self._blocker.failed(exchange.source):
                log.warning("source_blocked", **fields, block_seconds=self._blocker.block_seconds)
        elif outcome == AuditOutcome.FORBIDDEN:
            log.warning("access_denied", **fields)
        elif outcome == AuditOutcome.BLOCKED:
            log.info("request_blocked", **fields)
        elif outcome == AuditOutcome.RATE_LIMITED:
            log.warning("rate_limited", **fields)

    async def _audit(
        self, app: FastAPI, exchange: _Exchange, action: str, outcome: AuditOutcome, target: str | None
    ) -> None:
        principal = exchange.principal
        entry = AuditEntry(
            at=datetime.now(UTC),
            key_id=principal.key_id if principal else exchange.presented_key_id,
            actor=principal.name if principal else None,
            role=principal.role.value if principal else None,
            action=action,
            target=target,
            outcome=outcome,
            status_code=exchange.status or 500,
            source=exchange.source,
            request_id=exchange.request_id,
        )
        try:
            async with app.state.sessionmaker.begin() as session:
                await statement_by_statement(session)
                await append_entry(session, entry)
        except Exception:
            # The entry itself goes to the log, so what happened is not lost with the database.
            log.exception("audit_write_failed", category="security", **entry.model_dump(mode="json", exclude={"id"}))


def _order_context(ids: dict[str, str]) -> dict[str, str]:
    order_id = ids.get("order_id")
    return {"order_id": order_id, "workflow_id": order_workflow_id(order_id)} if order_id else {}


def _request_id(offered: str | None) -> str:
    return offered if offered is not None and request_id.well_formed(offered) else uuid.uuid4().hex


def _outcome(exchange: _Exchange) -> AuditOutcome:
    status = exchange.status or 500
    # Answered 401, or for a console page sent to sign in (303).
    if status == 401 or (exchange.auth_failure is not None and exchange.principal is None):
        return AuditOutcome.UNAUTHENTICATED
    if status == 403:
        return AuditOutcome.FORBIDDEN
    if status == 429:
        return AuditOutcome.BLOCKED if exchange.blocked else AuditOutcome.RATE_LIMITED
    if status >= 500:
        return AuditOutcome.ERROR
    if status >= 400:
        return AuditOutcome.REFUSED
    return AuditOutcome.OK


def _target(ids: dict[str, str]) -> str | None:
    if not ids:
        return None
    return ",".join(f"{name}={str(value)[:100]}" for name, value in ids.items())[:300]
