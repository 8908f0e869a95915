"""The audit log, for admins: every mutating request and every refusal of who the caller is, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import require_role
from api.deps import SessionmakerDep
from api.errors import error_responses
from db.audit import list_entries
from models.audit import AuditOutcome, AuditPage

# Admins only.
router = APIRouter(
    prefix="/audit", tags=["audit"], dependencies=[Depends(require_role())], responses=error_responses(401, 403)
)


@router.get("", response_model=AuditPage)
async def audit_log(
    sessionmaker: SessionmakerDep,
    key_id: Annotated[str | None, Query(max_length=32)] = None,
    action: Annotated[str | None, Query(max_length=100, description='e.g. "POST /orders/{order_id}/cancel"')] = None,
    outcome: AuditOutcome | None = None,
    since: Annotated[datetime | None, Query(description="From this moment on (inclusive); UTC unless zoned.")] = None,
    until: Annotated[datetime | None, Query(description="Before this moment (exclusive); UTC unless zoned.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AuditPage:
    """Entries newest first, filtered; pass `next_cursor` back as `cursor` for the next page."""
    async with sessionmaker.begin() as session:
        return await list_entries(
            session, key_id=key_id, action=action, outcome=outcome, since=since, until=until, limit=limit, cursor=cursor
        )
