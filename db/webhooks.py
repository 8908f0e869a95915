"""Webhook records: inbound deliveries already accepted, subscriptions, and the outbox of events.

The outbox holds an order's events and its returns' and refunds' (kind, subject_id). The row of an
event is written in the transaction that records the status change, so an event is never lost and
never waits for a subscriber; the dispatcher in the
worker (webhook_dispatcher.py) claims due rows, delivers them and writes down the outcome.
Every function runs inside the caller's transaction.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import dialect_insert
from models.order import TimelineEvent
from models.tables import WebhookDeliveryRow, WebhookOutboxRow, WebhookSubscriptionRow
from models.webhooks import (
    NewWebhookSubscription,
    OrderEvent,
    RefundWebhookEvent,
    ReturnWebhookEvent,
    WebhookSubscription,
)
from security.fields import decrypt_text, encrypt_text
from security.keyring import Keyring

LAST_ERROR_LENGTH = 500


def _secret_context(subscription_id: str) -> str:
    # Bound to its row: a secret copied onto another subscription does not decrypt.
    return f"webhook_subscriptions.secret:{subscription_id}"


def seal_secret(keyring: Keyring, subscription_id: str, secret: str) -> str:
    """A subscription secret as stored: encrypted like the customers' personal data (security.fields)."""
    return encrypt_text(keyring, secret, context=_secret_context(subscription_id))


def open_secret(keyring: Keyring, subscription_id: str, stored: str) -> str:
    return decrypt_text(keyring, stored, context=_secret_context(subscription_id))


def _utc(moment: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; everything stored here is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# Inbound deliveries


async def remember_delivery(session: AsyncSession, signature: str, source: str, received_at: datetime) -> bool:
    """Note an accepted delivery by its signature; False when it was noted before (a replay)."""
    statement = dialect_insert(session, WebhookDeliveryRow).values(
        signature=signature, source=source, received_at=received_at
    )
    # A concurrent copy of the same delivery waits on the primary key, then inserts nothing.
    inserted = await session.execute(
        statement.on_conflict_do_nothing(index_elements=["signature"]).returning(WebhookDeliveryRow.signature)
    )
    return inserted.first() is not None


async def forget_delivery(session: AsyncSession, signature: str) -> None:
    """Drop the note of one delivery that was not handed on after all, so that the same delivery is taken again."""
    await session.execute(
        delete(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.signature == signature)
        .execution_options(synchronize_session=False)
    )


async def forget_deliveries(session: AsyncSession, received_before: datetime) -> int:
    """Drop deliveries received before the given moment; callers pick one after which any replay is stale anyway."""
    result = await session.execute(
        delete(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.received_at < received_before)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# Subscriptions


def _subscription(row: WebhookSubscriptionRow) -> WebhookSubscription:
    return WebhookSubscription(
        subscription_id=row.subscription_id,
        url=row.url,
        events=list(row.events),
        created_at=_utc(row.created_at),
    )


async def create_subscription(
    session: AsyncSession, keyring: Keyring, url: str, events: list[str]
) -> NewWebhookSubscription:
    """A subscription of `url` to the events named (EVENT_NAMES; all when empty), with a new random secret."""
    secret = f"whsec_{secrets.token_urlsafe(32)}"
    subscription_id = str(uuid.uuid4())
    row = WebhookSubscriptionRow(
        subscription_id=subscription_id,
        url=url,
        events=sorted(set(events)),
        secret=seal_secret(keyring, subscription_id, secret),
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    return NewWebhookSubscription(**_subscription(row).model_dump(), secret=secret)


async def list_subscriptions(session: AsyncSession) -> list[WebhookSubscription]:
    """Live subscriptions, oldest first."""
    rows = await session.scalars(
        select(WebhookSubscriptionRow)
        .where(WebhookSubscriptionRow.deleted_at.is_(None))
        .order_by(WebhookSubscriptionRow.created_at, WebhookSubscriptionRow.subscription_id)
    )
    return [_subscription(row) for row in rows]


async def delete_subscription(session: AsyncSession, subscription_id: str) -> bool:
    """End a subscription and drop what it has not been sent yet; False when there is no live one by that id."""
    ended = await session.execute(
        update(WebhookSubscriptionRow)
        .where(WebhookSubscriptionRow.subscription_id == subscription_id, WebhookSubscriptionRow.deleted_at.is_(None))
        .values(deleted_at=datetime.now(UTC))
        .returning(WebhookSubscriptionRow.subscription_id)
    )
    if ended.first() is None:
        return False
    await session.execute(
        delete(WebhookOutboxRow)
        .where(WebhookOutboxRow.subscription_id == subscription_id, WebhookOutboxRow.delivered_at.is_(None))
        .execution_options(synchronize_session=False)
    )
    return True


# The outbox


async def enqueue_order_event(session: AsyncSession, order_id: str, entry: TimelineEvent, version: int) -> int:
    """One outbox row per live subscription that wants this status; a repeat of the entry adds none. Rows added.

    `version` tells apart an entry written again, with other content, by a workflow task that replaced a lost one.
    """
    payload = OrderEvent(
        order_id=order_id, status=entry.status, seq=entry.seq, at=_utc(entry.at), event=entry.event
    ).model_dump(mode="json")
    return await _enqueue(session, Subject("order", order_id), entry.status.value, entry.seq, version, payload)


async def enqueue_return_event(session: AsyncSession, event: ReturnWebhookEvent) -> int:
    """The event of a return's status change, for the subscriptions that want it; a repeat adds none."""
    subject = Subject("return", event.order_id, event.return_id)
    return await _enqueue(session, subject, event.type, event.seq, 0, event.model_dump(mode="json"))


async def enqueue_refund_event(session: AsyncSession, event: RefundWebhookEvent) -> int:
    """The event of a refund's status change, for the subscriptions that want it; a repeat adds none."""
    subject = Subject("refund", event.order_id, event.refund_id)
    return await _enqueue(session, subject, event.type, event.seq, 0, event.model_dump(mode="json"))


@dataclass(frozen=True)
class Subject:
    """What an event is about: an order, or one of its returns or refunds."""

    kind: str
    order_id: str
    subject_id: str = ""


async def _enqueue(
    session: AsyncSession, subject: Subject, name: str, seq: int, version: int, payload: dict[str, Any]
) -> int:
    subscriptions = (
        await session.execute(
            select(WebhookSubscriptionRow.subscription_id, WebhookSubscriptionRow.events).where(
                WebhookSubscriptionRow.deleted_at.is_(None)
            )
        )
    ).all()
    wanted = [sid for sid, events in subscriptions if not events or name in events]
    if not wanted:
        return 0
    now = datetime.now(UTC)
    statement = dialect_insert(session, WebhookOutboxRow).values(
        [
            {
                "subscription_id": subscription_id,
                "order_id": subject.order_id,
                "kind": subject.kind,
                "subject_id": subject.subject_id,
                "seq": seq,
                "version": version,
                "payload": payload,
                "attempts": 0,
                "next_attempt_at": now,
            }
            for subscription_id in wanted
        ]
    )
    added = await session.execute(
        statement.on_conflict_do_nothing(
            index_elements=["subscription_id", "order_id", "kind", "subject_id", "seq", "version"]
        ).returning(WebhookOutboxRow.id)
    )
    return len(added.all())


@dataclass(frozen=True)
class Delivery:
    """One claimed outbox row, with what it takes to send it."""

    outbox_id: int
    subscription_id: str
    order_id: str
    kind: str
    subject_id: str
    seq: int
    version: int
    url: str
    secret: str
    payload: dict[str, Any]
    # Including the attempt now being made.
    attempts: int

    @property
    def delivery_id(self) -> str:
        """The same on every attempt, so the receiver can drop a repeat."""
        about = self.order_id if self.kind == "order" else f"{self.order_id}/{self.kind}/{self.subject_id}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.subscription_id}/{about}/{self.seq}/{self.version}"))


async def claim_due(
    session: AsyncSession, keyring: Keyring, *, now: datetime, lease: timedelta, limit: int, max_attempts: int
) -> list[Delivery]:
    """Take up to `limit` due rows, counting the attempt and hiding them for `lease`, so no other dispatcher
    takes them meanwhile; a dispatcher that dies mid-delivery leaves them due again once the lease is over.
    """
    outbox = WebhookOutboxRow
    # SKIP LOCKED (PostgreSQL) lets dispatchers share the rows; SQLite takes its write lock at BEGIN instead.
    due = (
        await session.scalars(
            select(outbox.id)
            .where(outbox.delivered_at.is_(None), outbox.next_attempt_at <= now, outbox.attempts < max_attempts)
            .order_by(outbox.next_attempt_at, outbox.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not due:
        return []
    await session.execute(
        update(outbox)
        .where(outbox.id.in_(due))
        .values(attempts=outbox.attempts + 1, next_attempt_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    rows = await session.execute(
        select(
            outbox.id,
            outbox.subscription_id,
            outbox.order_id,
            outbox.kind,
            outbox.subject_id,
            outbox.seq,
            outbox.version,
            outbox.payload,
            outbox.attempts,
            WebhookSubscriptionRow.url,
            WebhookSubscriptionRow.secret,
        )
        .join(WebhookSubscriptionRow, WebhookSubscriptionRow.subscription_id == outbox.subscription_id)
        .where(outbox.id.in_(due))
        .order_by(outbox.id)
    )
    return [
        Delivery(
            outbox_id=row.id,
            subscription_id=row.subscription_id,
            order_id=row.order_id,
            kind=row.kind,
            subject_id=row.subject_id,
            seq=row.seq,
            version=row.version,
            url=row.url,
            secret=open_secret(keyring, row.subscription_id, row.secret),
            payload=row.payload,
            attempts=row.attempts,
        )
        for row in rows
    ]


async def mark_delivered(session: AsyncSession, outbox_id: int, at: datetime) -> None:
    await session.execute(
        update(WebhookOutboxRow)
        .where(WebhookOutboxRow.id == outbox_id, WebhookOutboxRow.delivered_at.is_(None))
        .values(delivered_at=at, last_error=None)
        .execution_options(synchronize_session=False)
    )


async def mark_failed(session: AsyncSession, outbox_id: int, error: str, retry_at: datetime | None) -> None:
    """Keep why the attempt failed; try again at `retry_at`, or never again when it is None (given up)."""
    values: dict[str, Any] = {"last_error": error[:LAST_ERROR_LENGTH]}
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    await session.execute(
        update(WebhookOutboxRow)
        .where(WebhookOutboxRow.id == outbox_id, WebhookOutboxRow.delivered_at.is_(None))
        .values(values)
        .execution_options(synchronize_session=False)
    )
