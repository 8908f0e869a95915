"""API keys, for admins: make one (shown once), list them, revoke one for good, lock or unlock one at once."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status

from api.auth import require_role
from api.deps import SessionmakerDep, SettingsDep
from api.errors import error_responses
from api.guard import set_audit_target
from api.refusals import KeyNotFound
from api.schemas import KeyCreated, KeyList, KeyRequest
from security.api_keys import KeyInfo, create_key, list_keys, lock_key, log_key_event, revoke_key

# Admins only.
router = APIRouter(
    prefix="/keys", tags=["keys"], dependencies=[Depends(require_role())], responses=error_responses(401, 403)
)

KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="The key id: the 16 hex digits after `oms_`.")]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
async def create(
    new: KeyRequest, request: Request, response: Response, sessionmaker: SessionmakerDep, settings: SettingsDep
) -> KeyCreated:
    """A new random key. The answer holds the key itself, which is kept nowhere: store it now."""
    async with sessionmaker.begin() as session:
        key, info = await create_key(
            session, name=new.name, role=new.role, client_id=new.client_id, hash_secret=settings.api_key_hash_secret
        )
    set_audit_target(request, key_id=info.key_id)
    log_key_event("key_created", info)
    response.headers["Cache-Control"] = "no-store"
    return KeyCreated(**info.model_dump(), key=key)


@router.get("", response_model=KeyList)
async def keys(sessionmaker: SessionmakerDep) -> KeyList:
    """Every key, oldest first, revoked and locked ones included."""
    async with sessionmaker.begin() as session:
        return KeyList(items=await list_keys(session))


@router.post("/{key_id}/revoke", response_model=KeyInfo)
async def revoke(key_id: KeyId, sessionmaker: SessionmakerDep) -> KeyInfo:
    """Revoke for good: the key answers 401 from this moment. Revoking twice changes nothing."""
    async with sessionmaker.begin() as session:
        info = await revoke_key(session, key_id)
    return _changed("key_revoked", key_id, info)


@router.post("/{key_id}/lock", response_model=KeyInfo)
async def lock(key_id: KeyId, sessionmaker: SessionmakerDep) -> KeyInfo:
    """Lock at once, e.g. a key suspected stolen: it answers 401 until unlocked."""
    async with sessionmaker.begin() as session:
        info = await lock_key(session, key_id)
    return _changed("key_locked", key_id, info)


@router.post("/{key_id}/unlock", response_model=KeyInfo)
async def unlock(key_id: KeyId, sessionmaker: SessionmakerDep) -> KeyInfo:
    """Lift a lock (a revoked key stays revoked)."""
    async with sessionmaker.begin() as session:
        info = await lock_key(session, key_id, locked=False)
    return _changed("key_unlocked", key_id, info)


def _changed(event: str, key_id: str, info: KeyInfo | None) -> KeyInfo:
    if info is None:
        raise KeyNotFound(key_id)
    log_key_event(event, info)
    return info
