"""The FastAPI application: `create_app()` for tests and `uvicorn --factory api.app:create_app`.

Whatever the caller does not inject (a Temporal client, a sessionmaker, the encryption keyring)
the lifespan creates at start-up and disposes of at shut-down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

import temporal_client
from api.body_limit import BodySizeLimit
from api.errors import install_error_handlers
from api.routes import health, inventory, orders, purchasing, subscriptions, webhooks
from db.engine import create_engine, create_sessionmaker
from security.keyring import Keyring, load_keyring
from settings import Settings, get_settings


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
            # A Temporal client holds no resources that need closing.
            app.state.temporal = client or await temporal_client.connect(settings, app.state.keyring)
            yield

    app = FastAPI(
        title="Order management",
        summary="Orders as durable Temporal workflows: place, follow, review and cancel them; manage stock.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    for router in (
        orders.router,
        inventory.router,
        purchasing.router,
        webhooks.router,
        subscriptions.router,
        health.router,
    ):
        app.include_router(router)
    return app
