"""Order, return and refund events to webhook subscribers: the worker's dispatcher of the outbox (db/webhooks.py).

It runs inside the worker process, beside the Temporal worker. Every poll it claims a batch of
due outbox rows (several workers share them, none sends a row another has claimed), sends each
as a signed POST to its subscription's URL, and writes down the outcome: delivered, or failed
with the reason and a next attempt after an exponentially growing wait, until the attempts run
out and the row is given up, keeping its last error. Delivery is at least once: every attempt
of one event carries the same Webhook-Id, so a receiver can drop a repeat.

Subscribers' URLs are outsiders' choice: requests go through security.ssrf's guarded client,
which reaches only public (or allow-listed) addresses, checked again at every connection, and
never follows a redirect (a 3xx answer is a failed attempt).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import webhooks
from db.webhooks import Delivery
from security.keyring import Keyring
from security.signing import ID_HEADER, sign
from security.ssrf import AllowList, guarded_client
from settings import Settings

log = structlog.get_logger(__name__)

USER_AGENT = "order-management-webhooks/1"
# A claimed row stays hidden from other dispatchers this much longer than an attempt may take.
LEASE_MARGIN = timedelta(seconds=30)


class WebhookDispatcher:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, keyring: Keyring) -> None:
        self._sessionmaker = sessionmaker
        self._keyring = keyring
        self._settings = settings
        self._allowed = AllowList.parse(settings.webhook_allowed_hosts)
        self._timeout = settings.webhook_timeout_seconds
        self._lease = timedelta(seconds=self._timeout) + LEASE_MARGIN
        self._stop = asyncio.Event()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Dispatch in the background until the block ends; the batch in flight is finished first."""
        self._stop.clear()
        http = guarded_client(
            self._allowed,
            timeout_seconds=self._timeout,
            max_connections=max(self._settings.webhook_batch_size, 1),
            headers=[("User-Agent", USER_AGENT)],
        )
        async with http:
            task = asyncio.create_task(self._run(http), name="webhook-dispatcher")
            log.info("webhook dispatcher started")
            try:
                yield
            finally:
                self._stop.set()
                await task
                log.info("webhook dispatcher stopped")

    async def _run(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            try:
                sent = await self.dispatch_due(http)
            except Exception:
                # The database may be away for a moment; the rows wait in the outbox.
                log.exception("webhook dispatch round failed")
                sent = 0
            if sent < self._settings.webhook_batch_size:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=self._settings.webhook_poll_seconds)

    async def dispatch_due(self, http: httpx.AsyncClient) -> int:
        """Claim the rows due now and make one attempt at each; how many were claimed."""
        async with self._sessionmaker.begin() as session:
            claimed = await webhooks.claim_due(
                session,
                self._keyring,
                now=datetime.now(UTC),
                lease=self._lease,
                limit=self._settings.webhook_batch_size,
                max_attempts=self._settings.webhook_delivery_attempts,
            )
        outcomes = await asyncio.gather(
            *(self._attempt(http, delivery) for delivery in claimed), return_exceptions=True
        )
        for delivery, outcome in zip(claimed, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                # Its outcome was not written down; the row is tried again once its claim has lapsed.
                log.error("webhook attempt not recorded", outbox_id=delivery.outbox_id, exc_info=outcome)
        return len(claimed)

    async def _attempt(self, http: httpx.AsyncClient, delivery: Delivery) -> None:
        bound = log.bind(
            subscription_id=delivery.subscription_id,
            order_id=delivery.order_id,
            seq=delivery.seq,
            attempt=delivery.attempts,
        )
        error = await self._send(http, delivery)
        now = datetime.now(UTC)
        last_attempt = delivery.attempts >= self._settings.webhook_delivery_attempts
        async with self._sessionmaker.begin() as session:
            if error is None:
                await webhooks.mark_delivered(session, delivery.outbox_id, now)
            else:
                retry_at = None if last_attempt else now + self._backoff(delivery.attempts)
                await webhooks.mark_failed(session, delivery.outbox_id, error, retry_at)
        if error is None:
            bound.info("webhook delivered")
        elif last_attempt:
            bound.error("webhook delivery given up", error=error)
        else:
            bound.warning("webhook delivery failed, will retry", error=error)

    async def _send(self, http: httpx.AsyncClient, delivery: Delivery) -> str | None:
        """Make the attempt; None when the receiver took it, else why not."""
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
        # Signed afresh on every attempt, so a retry is never refused as stale.
        headers = {"Content-Type": "application/json", ID_HEADER: delivery.delivery_id, **sign(delivery.secret, body)}
        try:
            # The whole attempt is bounded: httpx's own timeouts are per read or write.
            async with asyncio.timeout(self._timeout):
                # Streamed and never read: a receiver's answer body is of no interest, however large.
                async with http.stream("POST", delivery.url, content=body, headers=headers) as response:
                    status = response.status_code
        except TimeoutError:
            return f"no answer within {self._timeout:g} s"
        except httpx.HTTPError as error:
            return f"{type(error).__name__}: {error}"
        if 200 <= status < 300:
            return None
        if 300 <= status < 400:
            return f"answered {status}, a redirect, which is never followed"
        return f"answered {status}"

    def _backoff(self, attempts: int) -> timedelta:
        settings = self._settings
        delay = min(settings.webhook_retry_seconds * 2 ** (attempts - 1), settings.webhook_retry_max_seconds)
        # Jitter spreads the retries of many events that failed together (one receiver down).
        return timedelta(seconds=delay * random.uniform(0.8, 1.2))
