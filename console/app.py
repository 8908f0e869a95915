"""The console's routers and assets, joined to the API by `install(app)`."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.responses import Response

from api.refusals import ApiError
from console import auth, bulk, insight, inventory, orders
from console.layout import HERE, STATIC_PATH, render
from console.session import is_console_path

ROUTERS: list[APIRouter] = [auth.router, orders.router, bulk.router, inventory.router, insight.router]


def install(app: FastAPI) -> None:
    """Serve the console's pages and assets; call after the API's error handlers are installed."""
    for router in ROUTERS:
        app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="console-static")
    _explain_refusals_as_pages(app)


def _explain_refusals_as_pages(app: FastAPI) -> None:
    """A refusal on a console page (403 for a role, a form that does not validate, a page that does not
    exist) reads as a page there; elsewhere, and to a program sending its key in the header, it stays
    the API's JSON. A visitor without a session never gets this far: the guard sends them to sign in."""
    api_error = app.exception_handlers[ApiError]
    invalid = app.exception_handlers[RequestValidationError]
    http_error = app.exception_handlers[HTTPException]

    def for_a_person(request: Request) -> bool:
        return is_console_path(request.url.path) and not request.headers.get("authorization")

    async def refused(request: Request, exc: Exception) -> Response:
        if not for_a_person(request) or not isinstance(exc, ApiError):
            return await _answer(api_error(request, exc))
        viewer = getattr(request.state, "principal", None)
        return render(request, "problem.html", viewer, status_code=exc.status_code, problem=exc.detail)

    async def unreadable(request: Request, exc: Exception) -> Response:
        if not for_a_person(request):
            return await _answer(invalid(request, exc))
        viewer = getattr(request.state, "principal", None)
        return render(request, "problem.html", viewer, status_code=422, problem="the form could not be read")

    async def missing(request: Request, exc: Exception) -> Response:
        if not for_a_person(request) or not isinstance(exc, HTTPException) or exc.status_code != 404:
            return await _answer(http_error(request, exc))
        viewer = getattr(request.state, "principal", None)
        return render(request, "problem.html", viewer, status_code=404, problem="there is no such page in the console")

    app.add_exception_handler(ApiError, refused)
    app.add_exception_handler(RequestValidationError, unreadable)
    app.add_exception_handler(HTTPException, missing)


async def _answer(answer: Response | Awaitable[Response]) -> Response:
    return await answer if inspect.isawaitable(answer) else answer
