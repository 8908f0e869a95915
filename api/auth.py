"""Who is calling: every route but health and the docs requires an API key of an allowed role.

`Depends(require_role(Role.OPERATOR))` answers 401 for a missing, malformed, unknown, revoked
or locked key (never saying which), 403 for a key whose role may not call the route (admins
may call everything), and hands the route the caller's `Principal`, also kept on
`request.state.principal` for the audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import SessionmakerDep, SettingsDep
from api.errors import Forbidden, Unauthenticated
from security.api_keys import Principal, Role, authenticate

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer oms_…`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def current_principal(
    request: Request, credentials: Credentials, sessionmaker: SessionmakerDep, settings: SettingsDep
) -> Principal:
    """The caller behind the request's key; 401 without a usable one."""
    principal = None
    if credentials is not None:
        async with sessionmaker() as session:
            principal = await authenticate(session, credentials.credentials, hash_secret=settings.api_key_hash_secret)
    if principal is None:
        raise Unauthenticated()
    request.state.principal = principal
    return principal


def require_role(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting keys of `roles` and admin keys."""
    allowed = frozenset(roles) | {Role.ADMIN}

    async def admitted(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(principal.role.value)
        return principal

    return admitted
