"""What purchasing needs to know: which SKUs orders are waiting for, and how many units."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.auth import require_role
from api.deps import SessionmakerDep
from api.errors import error_responses
from db.shortages import open_shortages
from models.purchasing import ShortageList
from security.api_keys import Role

router = APIRouter(prefix="/purchasing", tags=["purchasing"], responses=error_responses(401, 403))


@router.get(
    "/shortages",
    response_model=ShortageList,
    responses=error_responses(503),
    dependencies=[Depends(require_role(Role.PURCHASING))],
)
async def shortages(sessionmaker: SessionmakerDep) -> ShortageList:
    """Open shortages, one per SKU, with the orders waiting for it."""
    async with sessionmaker.begin() as session:
        return await open_shortages(session)
