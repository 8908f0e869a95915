"""The dashboard's place in the console, until the insight pages fill it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from console.layout import Viewer, render
from console.session import PREFIX

router = APIRouter(prefix=f"{PREFIX}/dashboard", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
async def dashboard(request: Request, viewer: Viewer) -> HTMLResponse:
    return render(request, "dashboard.html", viewer)
