"""GET /metrics: the API's metrics (api.metrics) in the Prometheus text format, for an operator key.

Aggregates only, but of the business (order volumes, shortages), so not public: Prometheus sends an
operator key as a bearer token. Left out of the OpenAPI description, which is for the API's clients.
"""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import require_role
from api.deps import SessionmakerDep
from api.metrics import ApiMetrics
from api.refusals import database_unavailable
from db.metrics import ServiceState, read_state
from security.api_keys import Role

router = APIRouter(tags=["metrics"])
log = structlog.get_logger(__name__)

# A scrape waits no longer than this for the database: the request metrics are worth having without it.
STATE_TIMEOUT_SECONDS = 3.0


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require_role(Role.OPERATOR))])
async def metrics(request: Request, sessionmaker: SessionmakerDep) -> Response:
    registry: ApiMetrics = request.app.state.metrics
    state = await _state(sessionmaker)
    return Response(registry.exposition(state), media_type=CONTENT_TYPE_LATEST)


async def _state(sessionmaker: async_sessionmaker[AsyncSession]) -> ServiceState | None:
    try:
        async with asyncio.timeout(STATE_TIMEOUT_SECONDS), sessionmaker() as session:
            return await read_state(session)
    except Exception as error:
        # The database not answering in time, in the words of the one error table; anything else is a bug.
        if not (isinstance(error, TimeoutError) or database_unavailable(error)):
            raise
        log.warning("metrics_state_unavailable", exc_info=True)
        return None
