"""Liveness (the process answers) and readiness (the database and Temporal answer too)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response, status
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.deps import SessionmakerDep, TemporalDep
from api.errors import ERROR_RESPONSES
from api.refusals import RETRY_AFTER_SECONDS
from api.schemas import Health

router = APIRouter(tags=["health"])

# A dependency slower than this counts as down: a load balancer should not wait longer.
CHECK_TIMEOUT_SECONDS = 3.0


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready.", "headers": ERROR_RESPONSES[503]["headers"]}},
)
async def readyz(response: Response, sessionmaker: SessionmakerDep, client: TemporalDep) -> Health:
    database, temporal = await asyncio.gather(_database_ready(sessionmaker), _temporal_ready(client))
    checks = {"database": "ok" if database else "unavailable", "temporal": "ok" if temporal else "unavailable"}
    if database and temporal:
        return Health(status="ok", checks=checks)
    response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return Health(status="unavailable", checks=checks)


async def _database_ready(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), sessionmaker() as session:
            await session.execute(text("SELECT 1"))
        return True
    except Exception:
        # Whatever the failure (refused, timed out, bad credentials), the answer is "not ready".
        return False


async def _temporal_ready(client: Client) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            return await client.service_client.check_health()
    except Exception:
        return False
