"""Every error the API answers with, mapped to a status code in one place.

Routes raise domain exceptions (from db/ and from the order client) and never build
error responses themselves; `install_error_handlers` turns each into {"detail": ...}.
Anything not listed here is a bug and surfaces as a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from temporalio.service import RPCError, RPCStatusCode

from db.orders import IdempotencyConflict, InvalidCursor
from db.stock import StockBelowReserved, StockError, UnknownSku


class ApiError(Exception):
    """A refusal the API explains to the caller; subclasses fix the status code."""

    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    headers: dict[str, str] = {}

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class Unauthenticated(ApiError):
    """No usable API key: missing, malformed, unknown, revoked or locked (never said which)."""

    status_code = status.HTTP_401_UNAUTHORIZED
    headers = {"WWW-Authenticate": "Bearer"}

    def __init__(self) -> None:
        super().__init__("a valid API key is required: Authorization: Bearer <key>")


class Forbidden(ApiError):
    status_code = status.HTTP_403_FORBIDDEN

    def __init__(self, role: str) -> None:
        super().__init__(f"a {role} key may not do this")


class TooManyRequests(ApiError):
    """The caller sent more requests than it may; Retry-After says when to try again."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS


class KeyNotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key {key_id} not found")


class OrderNotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} not found")


class OrderClosed(ApiError):
    """The order has finished; nothing can change it any more."""

    status_code = status.HTTP_409_CONFLICT

    def __init__(self, order_status: str) -> None:
        super().__init__(f"order is {order_status}")


class ActionRefused(ApiError):
    """The order workflow refused an operator's action; the detail is its reason."""

    status_code = status.HTTP_409_CONFLICT


class OrderUnavailable(ApiError):
    """The order workflow did not answer in time (no worker, or a worker too busy)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


# Domain exceptions raised below the API, most specific first.
_DOMAIN_ERRORS: list[tuple[type[Exception], int, str | None]] = [
    (UnknownSku, status.HTTP_404_NOT_FOUND, None),
    (StockBelowReserved, status.HTTP_409_CONFLICT, None),
    (StockError, status.HTTP_409_CONFLICT, None),
    (InvalidCursor, status.HTTP_422_UNPROCESSABLE_CONTENT, None),
    (IdempotencyConflict, status.HTTP_422_UNPROCESSABLE_CONTENT, "Idempotency-Key was used with a different request"),
]


def _detail(
    status_code: int, detail: str, retry_after: int | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    headers = dict(headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def error_response(
    status_code: int, detail: str, *, retry_after: int | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error body for answers given before a route is reached (by the guard at the door)."""
    return _detail(status_code, detail, retry_after, headers)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _detail(exc.status_code, exc.detail, exc.retry_after, exc.headers)


def _domain_handler(
    status_code: int, fixed_detail: str | None
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        return _detail(status_code, fixed_detail or str(exc))

    return handle


async def _temporal_error(_request: Request, exc: Exception) -> JSONResponse:
    # Only an unreachable server is an expected condition; any other RPC error is a bug.
    assert isinstance(exc, RPCError)
    if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return _detail(status.HTTP_503_SERVICE_UNAVAILABLE, "Temporal is unavailable", retry_after=5)
    raise exc


async def _database_down(_request: Request, _exc: Exception) -> JSONResponse:
    return _detail(status.HTTP_503_SERVICE_UNAVAILABLE, "the database is unavailable", retry_after=5)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    for exc_type, status_code, fixed_detail in _DOMAIN_ERRORS:
        app.add_exception_handler(exc_type, _domain_handler(status_code, fixed_detail))
    app.add_exception_handler(RPCError, _temporal_error)
    app.add_exception_handler(OperationalError, _database_down)
