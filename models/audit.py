"""The audit log as admins read it: who did what to which target, with what outcome, from where."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel


class AuditOutcome(StrEnum):
    OK = "ok"
    # Any other 4xx: invalid input, an unknown id, a conflict.
    REFUSED = "refused"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    # The source address is blocked after repeated failed authentications.
    BLOCKED = "blocked"
    # The key sent more requests than its rate limit allows.
    RATE_LIMITED = "rate_limited"
    ERROR = "error"


class AuditEntry(BaseModel):
    """One request: never its body, never personal data; the target is the ids in its path."""

    id: int | None = None
    at: datetime
    key_id: str | None = None
    actor: str | None = None
    role: str | None = None
    action: str
    target: str | None = None
    outcome: AuditOutcome
    status_code: int
    source: str | None = None
    request_id: str | None = None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None = None
