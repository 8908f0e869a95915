"""Who is calling: every route but health, the docs and the carrier webhook requires an API key of an allowed role.

The guard at the door (api.guard) authenticates every request for a path not listed in
`PUBLIC_PATHS` before the route reads its body, and answers 401 for a missing, malformed,
unknown, revoked or locked key (never saying which). Each route then declares who may call
it with `Depends(require_role(Role.OPERATOR))`: a key of another role is answered 403
(admins may call everything), and the route receives the caller's `Principal`, also kept on
`request.state.principal` for the audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import SessionmakerDep, SettingsDep
from api.refusals import Forbidden, Unauthenticated
from security.api_keys import Principal, Role, authenticate

# Open to anyone: probes, the API's own description, the carrier's webhook (signed instead) and the
# codec's and the console's sign-in pages (which only ask for a key).
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "/webhooks/carrier",
        "/codec/login",
        "/console/login",
    }
)
# Open too: the console's stylesheet and script, which hold nothing secret.
PUBLIC_PREFIXES = ("/console/static/",)
# Probes are answered even for a source blocked after failed authentications, so that a
# load balancer sharing an address with a key guesser does not take the API out of service.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer oms_…`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def current_principal(
    request: Request, credentials: Credentials, sessionmaker: SessionmakerDep, settings: SettingsDep
) -> Principal:
    """The caller behind the request's key, as the guard found it; 401 without a usable one."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None and credentials is not None:
        # Only an app served without the guard gets here; it checks the key itself.
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


def client_scope(principal: Principal) -> str | None:
    """The client whose orders alone this caller may see and touch; None for staff, who see all."""
    return principal.owner if principal.role == Role.CLIENT else None
