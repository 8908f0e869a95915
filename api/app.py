"""The FastAPI application: `create_app()` for tests and `uvicorn --factory api.app:create_app`.

Whatever the caller does not inject (a Temporal client, a sessionmaker, the encryption keyring)
the lifespan creates at start-up and disposes of at shut-down. At start-up the bootstrap admin key
(OMS_BOOTSTRAP_ADMIN_KEY), when set, is made sure to exist, so a fresh installation has a first
key to make the others with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

import temporal_client
from api.body_limit import BodySizeLimit
from api.errors import error_responses, install_error_handlers
from api.guard import Guard
from api.metrics import ApiMetrics, RequestMetrics
from api.routes import (
    analytics,
    audit,
    bulk,
    codec,
    forecast,
    health,
    inventory,
    keys,
    metrics,
    orders,
    purchasing,
    returns,
    subscriptions,
    webhooks,
)
from console.app import install as install_console
from db.engine import create_engine, create_sessionmaker
from security.api_keys import InvalidKey, ensure_admin_key
from security.keyring import Keyring, load_keyring
from security.limits import RateLimiter, SourceBlocker
from settings import Settings, get_settings

log = structlog.get_logger(__name__)


class StartupError(RuntimeError):
    """The API cannot start as configured; the message says which setting to fix."""


def create_app(
    settings: Settings | None = None,
    *,
    client: Client | None = None,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    keyring: Keyring | None = None,
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as owned:
            app.state.sessionmaker = sessionmaker
            if sessionmaker is None:
                engine = create_engine(settings.database_url, settings.db_pool_size)
                owned.push_async_callback(engine.dispose)
                app.state.sessionmaker = create_sessionmaker(engine)
            # One keyring for the Temporal payloads and the personal data in the database.
            app.state.keyring = keyring or load_keyring(settings)
            await _ensure_bootstrap_key(app.state.sessionmaker, settings)
            # A Temporal client holds no resources that need closing.
            app.state.temporal = client or await temporal_client.connect(settings, app.state.keyring)
            yield

    app = FastAPI(
        title="Order management",
        summary="Orders as durable Temporal workflows: place, follow, review and cancel them; manage stock.",
        version="0.1.0",
        lifespan=lifespan,
        # A source blocked after failed authentications is answered 429 on every path.
        responses=error_responses(429),
    )
    app.state.settings = settings
    # Both count per API process.
    app.state.order_rate = RateLimiter(settings.order_rate_limit_per_minute, window=60.0)
    blocker = SourceBlocker(
        settings.auth_failure_limit, settings.auth_failure_window_seconds, settings.auth_block_seconds
    )
    # The guard is outermost: a blocked source is refused before its body is read.
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes, larger={"/bulk/orders": settings.bulk_max_body_bytes}
    )
    app.add_middleware(Guard, blocker=blocker)
    app.add_middleware(codec.CodecCORS, origins=settings.codec_cors_origins)
    # Outermost of all, so every answer is counted, the guard's refusals included.
    app.state.metrics = ApiMetrics()
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    install_error_handlers(app)
    for router in (
        orders.router,
        returns.router,
        bulk.router,
        inventory.router,
        purchasing.router,
        forecast.suggestions,
        forecast.terms,
        forecast.forecasts,
        analytics.router,
        webhooks.router,
        subscriptions.router,
        keys.router,
        audit.router,
        codec.router,
        health.router,
        metrics.router,
    ):
        app.include_router(router)
    install_console(app)
    return app


async def _ensure_bootstrap_key(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    if not settings.bootstrap_admin_key:
        return
    try:
        async with sessionmaker.begin() as session:
            info = await ensure_admin_key(
                session, settings.bootstrap_admin_key, hash_secret=settings.api_key_hash_secret
            )
    except InvalidKey as error:
        # The message names the setting and the problem, never the key.
        raise StartupError(f"OMS_BOOTSTRAP_ADMIN_KEY cannot be used: {error}") from None
    log.info("bootstrap admin key ready", key_id=info.key_id)
