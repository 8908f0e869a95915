"""The id of the API request an action is taken for, carried from the HTTP request into workflows and activities.

The API's guard binds each request's id to the log context (structlog contextvars) while it serves the
request. A Temporal call made meanwhile carries the id in a header (models.names.HEADER_REQUEST_ID); the
worker binds it again while the workflow runs and while each activity the workflow starts runs, so the
lines every process writes for that request carry the same request_id.

The log context is the only place the id is kept, so a line and a call made in the same context always
agree on it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext

import structlog
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadConverter

from models.names import HEADER_REQUEST_ID

KEY = "request_id"
# What a caller may choose as its X-Request-ID, and all a header may bring into a workflow.
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def well_formed(value: object) -> bool:
    return isinstance(value, str) and _WELL_FORMED.fullmatch(value) is not None


def current() -> str | None:
    """The request id bound to the current context, if any."""
    value = structlog.contextvars.get_contextvars().get(KEY)
    return value if isinstance(value, str) else None


def bound(request_id: str | None) -> AbstractContextManager[object]:
    """Bind `request_id` to the log context for a `with` block; None binds nothing."""
    if request_id is None:
        return nullcontext()
    return structlog.contextvars.bound_contextvars(**{KEY: request_id})


def with_current(headers: Mapping[str, Payload], converter: PayloadConverter) -> Mapping[str, Payload]:
    """`headers` plus the current request id, encoded by `converter` as a plain string payload."""
    request_id = current()
    if request_id is None:
        return headers
    return {**headers, HEADER_REQUEST_ID: converter.to_payload(request_id)}


def from_headers(headers: Mapping[str, Payload], converter: PayloadConverter) -> str | None:
    """The request id in `headers`, or None.

    Anything but a well-formed id is none: a missing header, a value that is not a string, or a payload
    the converter cannot read (one still encrypted, because the sender ran headers through its codec
    and this side does not). A workflow must never fail over its request id.
    """
    payload = headers.get(HEADER_REQUEST_ID)
    if payload is None:
        return None
    try:
        value = converter.from_payload(payload, str)
    except Exception:
        return None
    return value if well_formed(value) else None
