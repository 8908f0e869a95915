"""What every provider endpoint shares: the bearer credential check and Idempotency-Key handling."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from standins.config import StandinConfig
from standins.state import Outcome, ProviderError, Store
from standins.tracking import TrackingDispatcher

MAX_KEY_LENGTH = 255


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_config(request: Request) -> StandinConfig:
    config: StandinConfig = request.app.state.config
    return config


def get_tracking(request: Request) -> TrackingDispatcher:
    tracking: TrackingDispatcher = request.app.state.tracking
    return tracking


StoreDep = Annotated[Store, Depends(get_store)]
ConfigDep = Annotated[StandinConfig, Depends(get_config)]
TrackingDep = Annotated[TrackingDispatcher, Depends(get_tracking)]


def require_credential(config: ConfigDep, authorization: Annotated[str | None, Header()] = None) -> None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), config.api_key.encode()):
        raise ProviderError(401, "unauthorized", "a valid bearer credential is required")


class IdempotentCall:
    """One mutating call and its Idempotency-Key; `apply` runs the effect at most once per key."""

    def __init__(self, request: Request, store: Store, key: str) -> None:
        self._request = request
        self._store = store
        self.key = key

    def apply(self, body: BaseModel | None, effect: Callable[[], Outcome]) -> JSONResponse:
        outcome = self._store.once(self.key, self._fingerprint(body), effect)
        return JSONResponse(outcome.body, status_code=outcome.status)

    def _fingerprint(self, body: BaseModel | None) -> str:
        # The validated body, so that "1.5" and 1.50 or reordered fields count as the same request.
        payload: dict[str, Any] = {
            "method": self._request.method,
            "path": self._request.url.path,
            "body": body.model_dump(mode="json") if body is not None else None,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def idempotent_call(
    request: Request, store: StoreDep, idempotency_key: Annotated[str | None, Header()] = None
) -> IdempotentCall:
    if not idempotency_key or not idempotency_key.strip():
        raise ProviderError(400, "idempotency_key_missing", "mutating calls need an Idempotency-Key header")
    if len(idempotency_key) > MAX_KEY_LENGTH:
        raise ProviderError(400, "idempotency_key_too_long", f"at most {MAX_KEY_LENGTH} characters")
    return IdempotentCall(request, store, idempotency_key.strip())


Idempotent = Annotated[IdempotentCall, Depends(idempotent_call)]
