"""Signing in to the console and out of it.

The sign-in page sends the key once, in the Authorization header of POST /console/session, so the
guard checks it as it checks any key (a wrong one counts towards blocking the address); the answer
sets the session cookie (console.session). A client key is refused: the console is for staff.
The page then goes to the console's home, which sends the role on to the page that sent it to sign
in if the role may open it, to the role's first page otherwise (console.session.landing).
Signing out is a form (with its CSRF token) that clears the cookie.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from api.deps import SettingsDep
from api.refusals import Unauthenticated
from console.layout import CsrfChecked, Viewer, render
from console.session import COOKIE, LOGIN_PATH, PREFIX, SESSION_SECONDS, after_sign_in, landing, session_cookie

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _set(response: Response, request: Request, value: str | None) -> None:
    if value is None:
        response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
        return
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_SECONDS,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


Next = Annotated[str | None, Query(alias="next", max_length=2000)]


@router.get("", include_in_schema=False)
async def home(viewer: Viewer, target: Next = None) -> RedirectResponse:
    return RedirectResponse(landing(target, viewer.role), status_code=status.HTTP_303_SEE_OTHER)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, back: Next = None) -> HTMLResponse:
    return render(request, "login.html", None, next=after_sign_in(back))


@router.post("/session", status_code=status.HTTP_204_NO_CONTENT)
async def open_session(request: Request, response: Response, settings: SettingsDep, _viewer: Viewer) -> None:
    """Keep the key presented in the Authorization header in the session cookie."""
    key = request.headers.get("authorization", "").partition(" ")[2].strip()
    if not key:
        # Only a key presented in the header opens a session; a session does not renew itself.
        raise Unauthenticated()
    _set(response, request, session_cookie(key, settings.api_key_hash_secret, time.time()))


@router.post("/logout", dependencies=[CsrfChecked])
async def logout(request: Request, _viewer: Viewer) -> RedirectResponse:
    response = RedirectResponse(LOGIN_PATH, status_code=status.HTTP_303_SEE_OTHER)
    _set(response, request, None)
    return response
