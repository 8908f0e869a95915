"""The refusals the API explains to its callers, and whether a dependency answered at all.

Raised by the order, return, refund and bulk clients (also inside the worker, whose bulk jobs and
exchanges act through them) and answered by api/errors.py, which maps each to its response. Kept
apart from the web framework, so that the worker does not load it.
"""

from __future__ import annotations

from http import HTTPStatus

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from temporalio.service import RPCError, RPCStatusCode

# Seconds a caller should wait before sending again a request a dependency did not answer.
RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """A refusal the API explains to the caller; subclasses fix the status code."""

    status_code: int = HTTPStatus.INTERNAL_SERVER_ERROR
    headers: dict[str, str] = {}

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class Unauthenticated(ApiError):
    """No usable API key: missing, malformed, unknown, revoked or locked (never said which)."""

    status_code = HTTPStatus.UNAUTHORIZED
    headers = {"WWW-Authenticate": "Bearer"}

    def __init__(self) -> None:
        super().__init__("a valid API key is required: Authorization: Bearer <key>")


class WebhookRefused(ApiError):
    """An inbound webhook delivery not accepted as the sender's: unsigned, stale, forged or replayed."""

    status_code = HTTPStatus.UNAUTHORIZED
    headers = {"WWW-Authenticate": "Webhook-Signature"}

    def __init__(self, reason: str) -> None:
        super().__init__(f"webhook refused: {reason}")


class Forbidden(ApiError):
    status_code = HTTPStatus.FORBIDDEN

    def __init__(self, role: str) -> None:
        super().__init__(f"a {role} key may not do this")


class TooManyRequests(ApiError):
    """The caller sent more requests than it may; Retry-After says when to try again."""

    status_code = HTTPStatus.TOO_MANY_REQUESTS


class KeyNotFound(ApiError):
    status_code = HTTPStatus.NOT_FOUND

    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key {key_id} not found")


class OrderNotFound(ApiError):
    status_code = HTTPStatus.NOT_FOUND

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} not found")


class SubscriptionNotFound(ApiError):
    status_code = HTTPStatus.NOT_FOUND

    def __init__(self, subscription_id: str) -> None:
        super().__init__(f"webhook subscription {subscription_id} not found")


class OrderClosed(ApiError):
    """The order has finished; nothing can change it any more."""

    status_code = HTTPStatus.CONFLICT

    def __init__(self, order_status: str) -> None:
        super().__init__(f"order is {order_status}")


class ActionRefused(ApiError):
    """The order workflow refused an operator's action; the detail is its reason."""

    status_code = HTTPStatus.CONFLICT


class RevisionMismatch(ApiError):
    """The order was changed since the caller read it (If-Match names another revision)."""

    status_code = HTTPStatus.PRECONDITION_FAILED

    def __init__(self, detail: str, revision: int) -> None:
        super().__init__(detail)
        self.revision = revision
        self.headers = {"ETag": f'"{revision}"'}


class OrderUnavailable(ApiError):
    """The order workflow did not answer in time (no worker, or a worker too busy)."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE


class ReceiptNotPassedOn(ApiError):
    """A stock receipt booked, whose replenishment workflow Temporal did not take the news of in time."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(self, sku: str, receipt_id: str) -> None:
        super().__init__(
            f"receipt {receipt_id} is booked, but the orders waiting for {sku} could not be told (Temporal did "
            f"not answer in time); send it again with Idempotency-Key: {receipt_id}, which books nothing twice",
            retry_after=RETRY_AFTER_SECONDS,
        )


# How a Temporal call that got no usable answer ends, as the SDK reports it: the server down
# (UNAVAILABLE), past its deadline or the client's RPC timeout (DEADLINE_EXCEEDED; the SDK reports
# its own rpc_timeout as CANCELLED, and the API never cancels a call otherwise), or rate-limited.
_TEMPORAL_UNAVAILABLE = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
    }
)


def temporal_unavailable(error: BaseException) -> bool:
    """Whether a Temporal call failed for want of an answer (retry later), not because it was refused."""
    if not isinstance(error, RPCError):
        return False
    # A connection that breaks mid-call, once the SDK's own retries are spent, is UNKNOWN "transport error".
    broken = error.status == RPCStatusCode.UNKNOWN and error.message.startswith("transport error")
    return error.status in _TEMPORAL_UNAVAILABLE or broken


def database_unavailable(error: BaseException) -> bool:
    """Whether a database call failed for want of a connection: refused, lost, or none free in the pool in time."""
    if isinstance(error, (PoolTimeout, OperationalError)):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated
