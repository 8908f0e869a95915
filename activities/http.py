"""Calls to outside systems over HTTP: one pooled client per worker and one way to make a call.

Every call carries an Idempotency-Key derived from the order and the step, so a retry by
Temporal can never apply an effect twice. Outcomes are mapped once, here: an answer is parsed
JSON; an outage (5xx, 429, timeout, connection error) is a retryable error; a refusal (other
4xx) is a non-retryable ApplicationError whose type names the business reason. A call given a
signing secret carries a webhook signature of its body (security.signing), made afresh on every
attempt so that a retry is never stale.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from collections.abc import Awaitable, Collection, Mapping
from datetime import timedelta
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from security.signing import sign
from settings import Settings

PROVIDER_UNAVAILABLE = "ProviderUnavailable"
PROVIDER_UNREACHABLE = "ProviderUnreachable"
# Statuses that say "not now" rather than "no": a wrong credential can be fixed by an operator.
RETRYABLE_CLIENT_STATUSES = frozenset({401, 403, 408, 425, 429})
MAX_RETRY_AFTER = timedelta(minutes=5)


def create_http_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.http_timeout_seconds),
        limits=httpx.Limits(
            max_connections=settings.http_max_connections,
            max_keepalive_connections=settings.http_max_connections,
        ),
        headers={"Authorization": f"Bearer {settings.external_api_key}"},
    )


async def all_of(*calls: Awaitable[Any]) -> list[Any]:
    """Make independent calls at once and wait for every one; then raise the first failure, in the order given.

    Each call is keyed as it would be on its own, so a retry of the whole repeats only what did not land.
    """
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


def idempotency_key(order_id: str, *step: str) -> str:
    """The key of one step of one order, e.g. idempotency_key("o-1", "carrier", "draft") == "o-1:carrier:draft"."""
    return ":".join((order_id, *step))


async def call_provider(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    refusal: str,
    idempotency_key: str | None = None,
    json: Any = None,
    refusals: Mapping[str, str] | None = None,
    accept: Collection[int] = (),
    signing_secret: str | None = None,
) -> dict[str, Any]:
    """Make one call and return its JSON answer, or raise as described in the module docstring.

    `refusal` is the ApplicationError type of a 4xx refusal, unless the provider's error code is a
    key of `refusals`. Statuses in `accept` count as success (e.g. 404 for an undo of something
    that does not exist); their body is returned as far as it is JSON.
    """
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    if signing_secret is None:
        request = http.build_request(method, url, json=json, headers=headers)
    else:
        # Serialised here, so that the bytes signed are the bytes sent.
        content = jsonlib.dumps(json, separators=(",", ":")).encode()
        signed = {**headers, "Content-Type": "application/json", **sign(signing_secret, content)}
        request = http.build_request(method, url, content=content, headers=signed)
    what = f"{method} {url}"
    try:
        response = await http.send(request)
    except httpx.TransportError as exc:
        raise ApplicationError(f"{what} got no answer: {exc!r}", type=PROVIDER_UNREACHABLE) from exc

    status = response.status_code
    body = _json(response)
    if response.is_success or status in accept:
        return body
    code = str(body.get("error") or status)
    # Only a provider's own sentence: structured details may echo the request, personal data included.
    detail = body.get("detail") if isinstance(body.get("detail"), str) else None
    if status >= 500 or status in RETRYABLE_CLIENT_STATUSES:
        raise ApplicationError(
            f"{what} answered {status} {code}",
            {"status": status, "error": code},
            type=PROVIDER_UNAVAILABLE,
            next_retry_delay=_retry_after(response),
        )
    raise ApplicationError(
        f"{what} refused with {status} {code}: {detail}" if detail else f"{what} refused with {status} {code}",
        {"status": status, "error": code, "detail": detail},
        type=(refusals or {}).get(code, refusal),
        non_retryable=True,
    )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"items": body}


def _retry_after(response: httpx.Response) -> timedelta | None:
    # Only the seconds form; an HTTP date from a provider is rare enough to leave to the retry policy.
    value = response.headers.get("Retry-After", "")
    if not value.isdigit():
        return None
    return min(timedelta(seconds=int(value)), MAX_RETRY_AFTER)
