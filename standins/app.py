"""The stand-in service as one FastAPI app: every provider under its own prefix, plus /_control."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from standins import carrier, control, finance, inboxes
from standins.config import StandinConfig
from standins.deps import require_credential
from standins.faults import FaultInjection
from standins.state import ProviderError, Store
from standins.tracking import TrackingDispatcher

__all__ = ["StandinConfig", "create_app"]


def create_app(config: StandinConfig | None = None) -> FastAPI:
    config = config or StandinConfig()
    store = Store()
    tracking = TrackingDispatcher(store, config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await tracking.close()

    app = FastAPI(title="Order service stand-ins", lifespan=lifespan)
    app.state.config = config
    app.state.store = store
    app.state.tracking = tracking
    app.add_middleware(FaultInjection, store=store)
    app.add_exception_handler(ProviderError, _provider_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)

    authenticated = [Depends(require_credential)]
    for router in (carrier.router, finance.router, inboxes.crm, inboxes.notifications, inboxes.purchasing):
        app.include_router(router, dependencies=authenticated)
    app.include_router(control.router)
    return app


async def _provider_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProviderError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"error": exc.error, "detail": exc.detail}, status_code=exc.status, headers=headers)


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"error": "invalid_request", "detail": jsonable_encoder(exc.errors())}, status_code=422)
