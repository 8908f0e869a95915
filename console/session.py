"""The console's session cookie and the CSRF token tied to it.

Signing in exchanges an API key (presented once, in the Authorization header of
POST /console/session) for a cookie holding the key, the moment the session ends, a random nonce and
this service's signature of them. The cookie is HttpOnly, SameSite=Strict and limited to /console; the guard reads
it on every console request (api.guard), so the key is checked as it is now, revoked or locked keys
included. A session ends after SESSION_SECONDS whatever the browser keeps.

Every state-changing form carries a CSRF token derived from the session cookie: a page of another
site can neither read it nor compute it, and it changes with each sign-in.

Which pages a role may open decides where it lands after signing in: a page it may not open is
never where sign-in sends it (the pages themselves refuse it all the same, console.layout).

Nothing here imports the rest of the console, so the guard can read sessions without loading pages.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import quote, urlsplit

from security.api_keys import Role

PREFIX = "/console"
COOKIE = "oms_console_session"
SESSION_SECONDS = 8 * 3600
LOGIN_PATH = f"{PREFIX}/login"
# The console's home, which sends each role on to its first page (HOMES).
HOME = PREFIX
HOMES = {Role.OPERATOR: f"{PREFIX}/orders", Role.PURCHASING: f"{PREFIX}/inventory", Role.ADMIN: f"{PREFIX}/orders"}
# Pages only some roles may open, by path prefix, as the API's routes allow (orders are not purchasing's);
# admins open every page, and every staff role the pages not listed here.
RESTRICTED = {
    f"{PREFIX}/orders": frozenset({Role.OPERATOR, Role.ADMIN}),
    f"{PREFIX}/bulk": frozenset({Role.OPERATOR, Role.ADMIN}),
    f"{PREFIX}/dashboard": frozenset({Role.OPERATOR, Role.ADMIN}),
    f"{PREFIX}/purchasing": frozenset({Role.PURCHASING, Role.ADMIN}),
}
# The form field every state-changing console form sends its CSRF token in.
CSRF_FIELD = "csrf"


def _mac(secret: str, purpose: str, text: str) -> str:
    return hmac.new(secret.encode(), f"console-{purpose}:{text}".encode(), hashlib.sha256).hexdigest()


def session_cookie(key: str, secret: str, now: float) -> str:
    """The cookie's value for a session of `key` opened at `now` (unix seconds); each sign-in's is its own."""
    sealed = f"{key}.{int(now) + SESSION_SECONDS}.{secrets.token_hex(8)}"
    return f"{sealed}.{_mac(secret, 'session', sealed)}"


def signed(cookie: str, secret: str) -> bool:
    """Whether this service signed the cookie, expired or not."""
    sealed, dot, signature = cookie.rpartition(".")
    return bool(dot) and hmac.compare_digest(signature.encode(), _mac(secret, "session", sealed).encode())


def session_key(cookie: str, secret: str, now: float) -> str | None:
    """The key of a session this service opened and that has not ended; None for anything else."""
    if not signed(cookie, secret):
        return None
    key, ends, _nonce, _signature = cookie.rsplit(".", 3) if cookie.count(".") >= 3 else ("", "", "", "")
    return key if key and ends.isdigit() and now < int(ends) else None


def csrf_token(cookie: str, secret: str) -> str:
    """The token the session's forms carry."""
    return _mac(secret, "csrf", cookie)


def csrf_valid(cookie: str | None, token: str | None, secret: str) -> bool:
    return bool(cookie and token) and hmac.compare_digest(str(token).encode(), csrf_token(str(cookie), secret).encode())


def is_console_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def safe_next(target: str | None) -> str:
    """A console page of this service to go to, never another site; the home for anything else."""
    if target and is_console_path(target) and not target.startswith("//") and "\\" not in target:
        return target
    return HOME


def may_open(role: Role, path: str) -> bool:
    """Whether `role` may open the console page at `path`."""
    return all(role in roles for prefix, roles in RESTRICTED.items() if path == prefix or path.startswith(prefix + "/"))


def after_sign_in(target: str | None) -> str:
    """Where the sign-in form goes once the key is accepted: the home, asked to go on to `target`.

    The role is not known before the key is, so the home decides (landing)."""
    target = safe_next(target)
    return target if urlsplit(target).path.rstrip("/") == HOME else f"{HOME}?next={quote(target, safe='/')}"


def landing(target: str | None, role: Role) -> str:
    """The page `role` lands on: `target` if it is a console page the role may open, else the role's first page."""
    target = safe_next(target)
    path = urlsplit(target).path
    return target if path.rstrip("/") != HOME and may_open(role, path) else HOMES[role]


def login_location(path: str, query: str = "") -> str:
    """The sign-in page, asked to come back to `path` (with its query) afterwards."""
    back = f"{path}?{query}" if query else path
    return f"{LOGIN_PATH}?next={quote(back, safe='/')}"
