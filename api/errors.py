"""Every error the API answers with, mapped to a status code in one place.

Routes raise domain exceptions (from db/ and from the order client) and never build
error responses themselves; `install_error_handlers` turns each into {"detail": "..."},
or, for a request that is invalid, into {"detail": [{"loc", "msg", "type"}, ...]} naming
each field at fault. `error_responses` documents the same shapes in the OpenAPI schema.
Anything not listed here is a bug and surfaces as a 500.

A dependency that does not answer is the same 503 with Retry-After on every route: the
database down or every pooled connection busy (`database_unavailable`), Temporal down,
busy or slower than the call's RPC timeout (`temporal_unavailable`). Code that degrades
instead of failing (readiness, metrics) asks the same two questions.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from temporalio.service import RPCError

from api.refusals import (
    RETRY_AFTER_SECONDS,
    ApiError,
    database_unavailable,
    temporal_unavailable,
)
from db.orders import IdempotencyConflict, InvalidCursor
from db.stock import StockBelowReserved, StockError, UnknownSku
from domain.bulk import ImportRefused, InvalidPageCursor, TooManyOrders
from models.bulk import RowsInvalid
from security.codec import CodecRequestError
from security.keyring import DecryptionFailed, KeyringError
from security.ssrf import UnsafeUrl


class ErrorMessage(BaseModel):
    """A refusal, explained in one sentence."""

    detail: str


class FieldError(BaseModel):
    loc: list[str | int] = Field(
        description='Where the problem is: "body", "query", "path" or "header", then the path of the field in it.'
    )
    msg: str
    type: str


class ValidationFailed(BaseModel):
    """An invalid request: one entry per problem, each naming its field."""

    detail: list[FieldError]


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}}

# Every error status the API answers with, and what it means.
ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "No valid credentials."},
    403: {"model": ErrorMessage, "description": "The caller may not do this."},
    404: {"model": ErrorMessage, "description": "Not found."},
    409: {"model": ErrorMessage, "description": "Refused in the current state of the resource; the detail says why."},
    412: {
        "model": ErrorMessage,
        "description": "If-Match names another revision than the current one, given in the detail and in ETag.",
        "headers": {"ETag": {"description": 'The current revision, quoted: "3".', "schema": {"type": "string"}}},
    },
    413: {"model": ErrorMessage, "description": "The body is larger than the limit."},
    415: {"model": ErrorMessage, "description": "The body is not JSON."},
    422: {"model": ValidationFailed, "description": "The request is invalid; each problem names its field."},
    429: {"model": ErrorMessage, "description": "Too many requests.", "headers": _RETRY_AFTER},
    503: {"model": ErrorMessage, "description": "The database or Temporal is unavailable.", "headers": _RETRY_AFTER},
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer with these error statuses."""
    return {code: ERROR_RESPONSES[code] for code in statuses}


# What a route that reads a JSON body can answer besides its own errors.
BODY_ERRORS = (413, 415, 422)


class BodyTooLarge(HTTPException):
    """Raised while the body streams in, as soon as it passes the limit.

    An HTTPException, so that FastAPI passes it on from reading the body instead of
    turning it into a 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE, f"the request body is larger than the limit of {limit} bytes"
        )


# Domain exceptions raised below the API, most specific first.
_DOMAIN_ERRORS: list[tuple[type[Exception], int]] = [
    (UnknownSku, status.HTTP_404_NOT_FOUND),
    (StockBelowReserved, status.HTTP_409_CONFLICT),
    (StockError, status.HTTP_409_CONFLICT),
]

# Domain exceptions that refuse one field of the request: answered like any invalid request.
# (exception, where, error type, message; None to use the exception's own).
_FIELD_REFUSALS: list[tuple[type[Exception], list[str | int], str, str | None]] = [
    (InvalidCursor, ["query", "cursor"], "invalid_cursor", "not a cursor this service handed out"),
    (InvalidPageCursor, ["query", "cursor"], "invalid_cursor", "not a cursor this service handed out"),
    (TooManyOrders, ["body", "filter"], "too_many_orders", None),
    (
        IdempotencyConflict,
        ["header", "Idempotency-Key"],
        "idempotency_conflict",
        "Idempotency-Key was used with a different request",
    ),
    (UnsafeUrl, ["body", "url"], "unsafe_url", None),
    (CodecRequestError, ["body"], "invalid_payloads", None),
    (KeyringError, ["body", "payloads"], "undecryptable", None),
    (DecryptionFailed, ["body", "payloads"], "undecryptable", None),
]

# Longest field name echoed back in a `loc`: an unknown field's name is the caller's input.
_MAX_NAME_ECHO = 100
# Most problems reported for one request: a body of a thousand unknown fields gets no answer ten times its size.
_MAX_FIELD_ERRORS = 50


def _detail(
    status_code: int, detail: str, retry_after: int | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    all_headers = dict(headers or {})
    if retry_after is not None:
        all_headers["Retry-After"] = str(retry_after)
    return JSONResponse({"detail": detail}, status_code=status_code, headers=all_headers or None)


def _invalid(*errors: FieldError) -> JSONResponse:
    body = ValidationFailed(detail=list(errors))
    return JSONResponse(body.model_dump(mode="json"), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _echo(part: str | int) -> str | int:
    # Names of unknown fields come from the caller: bounded, and never a lone surrogate that cannot be encoded.
    if isinstance(part, int):
        return part
    return part[:_MAX_NAME_ECHO].encode("utf-8", "replace").decode("utf-8")


def _field_error(error: Mapping[str, Any]) -> FieldError:
    """One of pydantic's errors as the API reports it: where, what and why, without echoing the input."""
    loc = [_echo(part) for part in error["loc"]]
    kind, msg = str(error["type"]), str(error["msg"])
    if kind == "json_invalid":
        # FastAPI puts the character position where the field would be.
        position = loc[1] if len(loc) > 1 else 0
        loc, msg = ["body"], f"malformed JSON at character {position}: {error.get('ctx', {}).get('error', msg)}"
    elif loc == ["body"] and kind == "missing":
        msg = "a JSON body is required"
    elif loc == ["body"]:
        msg = "the body must be a JSON object"
    elif kind == "extra_forbidden":
        msg = "unknown field"
    return FieldError(loc=loc, msg=msg, type=kind)


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI hands on the raw bytes of a body it did not parse because it was not sent as JSON.
    if isinstance(exc.body, bytes):
        return _detail(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "the body must be JSON, sent with Content-Type: application/json"
        )
    return _invalid(*(_field_error(error) for error in exc.errors()[:_MAX_FIELD_ERRORS]))


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "options", "head", "trace"})


def _documented_methods(request: Request) -> list[str] | None:
    """The methods the OpenAPI schema documents for the request's path; None for an undocumented path."""
    path = request.scope["path"]
    for template, operations in request.app.openapi()["paths"].items():
        parts = re.split(r"(\{[^}]+\})", template)
        pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
        if re.fullmatch(pattern, path):
            methods = {method.upper() for method in operations if method in _HTTP_METHODS}
            return sorted(methods | {"HEAD"} if "GET" in methods else methods)
    return None


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == status.HTTP_400_BAD_REQUEST and exc.__cause__ is not None:
        # FastAPI could not decode the body at all: not UTF-8, or nested too deep.
        return _invalid(
            FieldError(loc=["body"], msg="malformed JSON: the body could not be decoded", type="json_invalid")
        )
    headers = dict(exc.headers or {})
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED and (methods := _documented_methods(request)):
        # Starlette's own Allow names the methods of one route only, where a path may have several.
        headers["Allow"] = ", ".join(methods)
    return _detail(exc.status_code, str(exc.detail), headers=headers)


def error_response(
    status_code: int, detail: str, *, retry_after: int | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error body for answers given before a route is reached (by the guard at the door)."""
    return _detail(status_code, detail, retry_after, headers)


async def _import_refused(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImportRefused)
    body = RowsInvalid(detail=exc.problems)
    return JSONResponse(body.model_dump(mode="json"), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _detail(exc.status_code, exc.detail, exc.retry_after, exc.headers)


def _domain_handler(status_code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        return _detail(status_code, str(exc))

    return handle


def _field_refusal_handler(
    loc: list[str | int], kind: str, message: str | None
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        return _invalid(FieldError(loc=loc, msg=message or str(exc), type=kind))

    return handle


async def _temporal_error(_request: Request, exc: Exception) -> JSONResponse:
    # Only a server that does not answer is an expected condition; any other RPC error is a bug.
    if not temporal_unavailable(exc):
        raise exc
    return _detail(status.HTTP_503_SERVICE_UNAVAILABLE, "Temporal is unavailable", retry_after=RETRY_AFTER_SECONDS)


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    if not database_unavailable(exc):
        raise exc
    return _detail(status.HTTP_503_SERVICE_UNAVAILABLE, "the database is unavailable", retry_after=RETRY_AFTER_SECONDS)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(ImportRefused, _import_refused)
    app.add_exception_handler(HTTPException, _http_error)
    for exc_type, status_code in _DOMAIN_ERRORS:
        app.add_exception_handler(exc_type, _domain_handler(status_code))
    for exc_type, loc, kind, message in _FIELD_REFUSALS:
        app.add_exception_handler(exc_type, _field_refusal_handler(loc, kind, message))
    app.add_exception_handler(RPCError, _temporal_error)
    # PoolTimeout is not a DBAPIError: a pool that hands out no connection never reached the database.
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(DBAPIError, _database_error)
