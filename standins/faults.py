"""Injected faults on the provider endpoints: latency and latency spikes, failed answers (503, or a 4xx
refusal) and dropped connections.

A raw ASGI middleware, so that a fault strikes before the endpoint runs (a failed call changes
nothing) and so that a drop can leave the client without any answer at all.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from standins.state import PROVIDER_SERVICES, Store


class FaultInjection:
    def __init__(self, app: ASGIApp, store: Store) -> None:
        self._app = app
        self._store = store
        self._random = random.Random()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = _service(scope)
        fault = self._store.fault_for(service) if service is not None else None
        if service is None or fault is None:
            await self._app(scope, receive, send)
            return
        if fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault.spike_rate and self._random.random() < fault.spike_rate:
            self._store.count_strike(service, "spike")
            await asyncio.sleep(fault.spike_ms / 1000)
        if self._random.random() < fault.failure_rate:
            self._store.count_strike(service, "failure")
            await _fail(send, fault.failure_status)
        elif self._random.random() < fault.drop_rate:
            self._store.count_strike(service, "drop")
            if fault.drop_after_effect:
                await self._app(scope, receive, _discard)
            await _drop(send)
        else:
            await self._app(scope, receive, send)


def _service(scope: Scope) -> str | None:
    if scope["type"] != "http":
        return None
    service = scope["path"].lstrip("/").split("/", 1)[0]
    return service if service in PROVIDER_SERVICES else None


async def _fail(send: Send, status: int) -> None:
    error = "service_unavailable" if status == 503 else "injected_failure"
    body = json.dumps({"error": error, "detail": "injected failure"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _drop(send: Send) -> None:
    # ASGI has no "close the connection" message. The server closes it when an app returns
    # after announcing a body it never sends, so the client is left without a complete answer.
    await send({"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"1")]})


async def _discard(_message: Message) -> Any:
    return None
