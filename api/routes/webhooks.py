"""Webhooks of outside systems: the carrier reports tracking events here, of orders' parcels and of
return labels (a tracking number a return holds goes to that return's workflow, any other to its order).

A delivery is taken only when it is signed with the carrier's secret (security.signing),
recent, and not seen before. The signature is checked on the raw body before anything reads
it; a refusal is a 401 saying why, logged as a security event, and signals no workflow.

A taken delivery is remembered and committed first, then signalled to its order with no
database connection held: a Temporal that is slow or away never ties up the pool. A delivery
that could not be signalled (Temporal not answering: 503 with Retry-After; the order unknown:
404) is forgotten again, so the carrier's retry of it is taken, not refused as a replay. A
signal that timed out but did arrive is harmless to repeat: the order keeps one of each event id.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import APIRouter, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from api.deps import OrdersDep, SessionmakerDep, SettingsDep, TemporalDep
from api.errors import BODY_ERRORS, error_responses
from api.refusals import WebhookRefused
from api.return_client import track_return
from api.schemas import Accepted
from db import webhooks
from models.order import TrackingEvent
from security import signing

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

CARRIER = "carrier"
# Remembered deliveries older than the tolerance are refused as stale anyway; they are dropped
# at most this often per process, so the replay table stays small without a delete per request.
PURGE_INTERVAL_SECONDS = 60.0


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of `model` with its definitions written in place, for a body read by hand."""
    schema = model.model_json_schema()
    definitions: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                return resolve(definitions[reference.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


SIGNATURE_HEADERS = [
    {
        "name": signing.TIMESTAMP_HEADER,
        "in": "header",
        "required": True,
        "description": "Unix seconds when the delivery was signed; refused beyond the tolerance (5 minutes).",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    {
        "name": signing.SIGNATURE_HEADER,
        "in": "header",
        "required": True,
        "description": "`v1=` and the hex HMAC-SHA256, under the carrier's secret, of the timestamp, "
        "a full stop and the raw body; several comma-separated values are accepted.",
        "schema": {"type": "string"},
    },
]


@router.post(
    "/carrier",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(401, 404, *BODY_ERRORS),
    openapi_extra={
        "parameters": SIGNATURE_HEADERS,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(TrackingEvent)}},
        },
    },
)
async def carrier_event(
    request: Request, orders: OrdersDep, sessionmaker: SessionmakerDep, settings: SettingsDep, client: TemporalDep
) -> Accepted:
    """A signed tracking event for an order; one for an order that has already finished is accepted and dropped."""
    body = await request.body()
    try:
        verified = signing.verify(
            settings.carrier_webhook_secret,
            request.headers,
            body,
            tolerance_seconds=settings.webhook_tolerance_seconds,
        )
    except signing.SignatureError as error:
        raise _refused(request, type(error).__name__, str(error)) from error

    event = _tracking_event(body)
    await _purge_now_and_then(request, sessionmaker, settings.webhook_tolerance_seconds)
    async with sessionmaker.begin() as session:
        if not await webhooks.remember_delivery(session, verified.signature, CARRIER, datetime.now(UTC)):
            raise _refused(request, "Replay", "this delivery was already received")
    try:
        if not await track_return(
            client, sessionmaker, event, timedelta(seconds=settings.api_workflow_timeout_seconds)
        ):
            await orders.track(event)
    except BaseException:
        # Shielded: a request cancelled mid-signal (the carrier hung up) still forgets its delivery.
        await asyncio.shield(_forget(sessionmaker, verified.signature))
        raise
    return Accepted()


async def _forget(sessionmaker: SessionmakerDep, signature: str) -> None:
    try:
        async with sessionmaker.begin() as session:
            await webhooks.forget_delivery(session, signature)
    except Exception:
        # The database failing too: the carrier's verbatim retry is refused as a replay until the note
        # expires, while a retry signed afresh (as carriers sign each attempt) is taken.
        log.exception("webhook delivery not forgotten", source=CARRIER)


def _tracking_event(body: bytes) -> TrackingEvent:
    try:
        return TrackingEvent.model_validate_json(body)
    except ValidationError as invalid:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in invalid.errors(include_url=False)]
        ) from invalid


def _refused(request: Request, kind: str, reason: str) -> WebhookRefused:
    log.warning(
        "webhook refused",
        security_event="webhook_refused",
        source=CARRIER,
        kind=kind,
        reason=reason,
        client=request.client.host if request.client else None,
    )
    return WebhookRefused(reason)


async def _purge_now_and_then(request: Request, sessionmaker: SessionmakerDep, tolerance_seconds: int) -> None:
    last: float = getattr(request.app.state, "webhook_deliveries_purged_at", float("-inf"))
    if time.monotonic() - last < PURGE_INTERVAL_SECONDS:
        return
    request.app.state.webhook_deliveries_purged_at = time.monotonic()
    # Twice the tolerance: a delivery stamped in the future stays replayable that much longer.
    before = datetime.now(UTC) - timedelta(seconds=2 * tolerance_seconds)
    async with sessionmaker.begin() as session:
        await webhooks.forget_deliveries(session, before)
