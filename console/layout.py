"""What every console page shares: the templates, the navigation, who is signed in, and CSRF checks.

`render` answers a page of `base.html`'s layout with the navigation entries the signed-in role
may see, the key's name and role, and the CSRF token of the session for the page's forms.
See the package docstring for how a new page joins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Form, Request, status
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup, escape

from api.auth import require_role
from api.deps import SettingsDep
from api.refusals import ApiError
from console.session import COOKIE, CSRF_FIELD, HOMES, PREFIX, RESTRICTED, csrf_token, csrf_valid
from security.api_keys import Principal, Role

HERE = Path(__file__).resolve().parent
STATIC_PATH = f"{PREFIX}/static"
# No script, style or frame from anywhere else, no inline script, forms post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

STAFF = frozenset({Role.OPERATOR, Role.PURCHASING, Role.ADMIN})
OPERATORS = RESTRICTED[f"{PREFIX}/orders"]


@dataclass(frozen=True)
class NavEntry:
    label: str
    path: str
    # Who sees the entry (admins see every entry).
    roles: frozenset[Role]
    # The letter after `g` that goes there.
    key: str


NAV: list[NavEntry] = [
    NavEntry("Orders", f"{PREFIX}/orders", OPERATORS, "o"),
    NavEntry("Inventory", f"{PREFIX}/inventory", STAFF, "i"),
    NavEntry("Dashboard", f"{PREFIX}/dashboard", frozenset({Role.OPERATOR}), "d"),
    NavEntry("Purchasing", f"{PREFIX}/purchasing", frozenset({Role.PURCHASING}), "p"),
]


@dataclass(frozen=True)
class Abilities:
    """What the signed-in role may do; a page shows a control only when its ability is set."""

    review: bool
    cancel: bool
    receive: bool
    shortages: bool
    # Open the order list and order pages (customers' personal data).
    read_orders: bool

    @classmethod
    def of(cls, role: Role) -> Abilities:
        operator = role in OPERATORS
        purchasing = role in (Role.PURCHASING, Role.ADMIN)
        return cls(review=operator, cancel=operator, receive=purchasing, shortages=purchasing, read_orders=operator)


class CsrfRefused(ApiError):
    """A console form without the CSRF token of the session it was sent with."""

    status_code = status.HTTP_403_FORBIDDEN

    def __init__(self) -> None:
        super().__init__("the form's security token is missing or out of date: reload the page and send it again")


def _age(moment: datetime, now: datetime | None = None) -> str:
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def _money(amount: Decimal, currency: str = "") -> str:
    return f"{amount:,.2f} {currency}".strip()


@pass_context
def _csrf_field(context: Any) -> Markup:
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, escape(context["csrf_token"]))


templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(age=_age, when=_when, money=_money)
templates.env.globals.update(csrf_field=_csrf_field, static=STATIC_PATH, prefix=PREFIX)


def render(
    request: Request, template: str, viewer: Principal | None, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A console page: `template` with `context`, in the layout for `viewer` (None on the sign-in page)."""
    cookie = request.cookies.get(COOKIE)
    secret = request.app.state.settings.api_key_hash_secret
    page = {
        "viewer": viewer,
        "can": Abilities.of(viewer.role) if viewer else None,
        "home": HOMES[viewer.role] if viewer else PREFIX,
        "nav": [entry for entry in NAV if viewer and (viewer.role in entry.roles or viewer.role == Role.ADMIN)],
        "current": request.url.path,
        "csrf_token": csrf_token(cookie, secret) if cookie else "",
        **context,
    }
    return templates.TemplateResponse(request, template, page, status_code=status_code, headers=SECURITY_HEADERS)


async def _csrf_checked(
    request: Request, settings: SettingsDep, csrf: Annotated[str, Form(alias=CSRF_FIELD)] = ""
) -> None:
    """Forms sent with the session cookie must carry its token; a key in the Authorization header needs none."""
    cookie = request.cookies.get(COOKIE)
    if request.headers.get("authorization") and not cookie:
        return
    if not csrf_valid(cookie, csrf, settings.api_key_hash_secret):
        raise CsrfRefused()


# Anyone who may sign in to the console; operators (and admins) who may act on orders; purchasing (and admins).
Viewer = Annotated[Principal, Depends(require_role(Role.OPERATOR, Role.PURCHASING))]
Operator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
Purchaser = Annotated[Principal, Depends(require_role(Role.PURCHASING))]
CsrfChecked = Depends(_csrf_checked)
