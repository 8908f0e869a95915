"""The carrier's tracking webhook: after a booking is confirmed, post "in_transit" and then "delivered";
the same for a return label once issued (the customer's parcel on its way back), until it is voided.

Events of one booking go out in order from one background task; each is retried with backoff
when our webhook does not answer 2xx, and given up after a few attempts, as real carriers do.
Every attempt is signed afresh with the carrier's webhook secret (security.signing), so a
retry is never stale.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from security.signing import sign
from standins.config import StandinConfig
from standins.state import Outcome, RecordKind, Store

log = structlog.get_logger(__name__)

TRACKING_STEPS = ("in_transit", "delivered")


class TrackingDispatcher:
    def __init__(self, store: Store, config: StandinConfig) -> None:
        self._store = store
        self._config = config
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def start(self, booking_id: str, kind: RecordKind = "bookings") -> None:
        """Begin the tracking of a confirmed booking (or an issued return label); must be called from the event loop."""
        task = asyncio.get_running_loop().create_task(self._track(booking_id, kind))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def close(self) -> None:
        self.cancel_all()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _track(self, booking_id: str, kind: RecordKind) -> None:
        for status in TRACKING_STEPS:
            await asyncio.sleep(self._config.tracking_delay_seconds)
            event = self._advance(booking_id, status, kind)
            if event is None:
                return
            await self._deliver(event)

    def _advance(self, booking_id: str, status: str, kind: RecordKind) -> dict[str, Any] | None:
        """Move the booking to `status` and return its event; None when it was cancelled (voided) meanwhile."""
        event: dict[str, Any] = {}
        id_field = "booking_id" if kind == "bookings" else "label_id"

        def change(booking: dict[str, Any]) -> Outcome:
            if booking["status"] in ("cancelled", "void"):
                return Outcome(409, {})
            booking["status"] = status
            event.update(
                event_id=f"{booking[id_field]}:{status}",
                order_id=booking["reference"],
                tracking_number=booking["tracking_number"],
                status=status,
                at=datetime.now(UTC).isoformat(),
            )
            return Outcome(200, {})

        outcome = self._store.update(kind, booking_id, change)
        return event if outcome.status == 200 else None

    async def _deliver(self, event: dict[str, Any]) -> None:
        client = self._http()
        delay = self._config.webhook_backoff_seconds
        body = json.dumps(event).encode()
        for attempt in range(1, self._config.webhook_attempts + 1):
            headers = {"Content-Type": "application/json", **sign(self._config.webhook_secret, body)}
            try:
                response = await client.post(self._config.webhook_url, content=body, headers=headers)
                if response.is_success:
                    return
                problem = f"status {response.status_code}"
            except httpx.HTTPError as exc:
                problem = repr(exc)
            log.warning("tracking webhook failed", event_id=event["event_id"], attempt=attempt, problem=problem)
            if attempt < self._config.webhook_attempts:
                await asyncio.sleep(delay)
                delay *= 2
        log.error("tracking webhook given up", event_id=event["event_id"])

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0, headers={"Authorization": f"Bearer {self._config.api_key}"})
        return self._client
