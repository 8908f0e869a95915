"""Who is calling: API keys, roles and the dependency routes use to require a role.

Interface used by every router: `Depends(require_role(Role.OPERATOR))` answers 401 for a
missing, unknown, revoked or locked key, 403 for a key whose role may not call the route
(admins may call everything), and hands the route the caller's `Principal`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    CLIENT = "client"
    OPERATOR = "operator"
    PURCHASING = "purchasing"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: Role
    client_id: str | None = None

    @property
    def owner(self) -> str:
        """Scope of what this caller owns: its client id, or "" for staff keys."""
        return self.client_id or "" if self.role == Role.CLIENT else ""


def require_role(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    raise NotImplementedError
