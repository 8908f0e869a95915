"""Purchasing: shortages reported to the per-SKU replenishment workflow, recorded, and sent to the buyers."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.http import call_provider, idempotency_key
from db import shortages
from models.integrations import PurchasingNotice
from models.purchasing import (
    NoticeStatus,
    ReportShortageInput,
    ShortageRecordInput,
    ShortageReport,
    ShortageResolvedInput,
)
from settings import Settings
from temporal_client import signal_replenishment

PURCHASING_REFUSED = "PurchasingRefused"
LAST_ERROR_LENGTH = 500


def notice_key(notice: PurchasingNotice) -> str:
    """The Idempotency-Key of a notice: one per order, SKU, allocation round and quantity.

    A second backorder of the same order, or a changed quantity, is news to purchasing, not a
    repeat; a notice sent again after a lost answer is the same notice.
    """
    round_part = () if notice.round is None else (f"round-{notice.round}",)
    return idempotency_key(notice.order_id, "purchasing", notice.sku, *round_part, f"qty-{notice.quantity}")


class PurchasingActivities:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        client: Client,
        settings: Settings,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._http = http
        self._client = client
        self._settings = settings

    @activity.defn
    async def report_shortage(self, request: ReportShortageInput) -> None:
        """Signal-with-start replenish-<sku> with the order's shortage; a call Temporal does not answer is retried."""
        await signal_replenishment(
            self._client,
            request.sku,
            ShortageReport(order_id=request.order_id, quantity=request.quantity, round=request.round),
            task_queue=activity.info().task_queue,
        )

    @activity.defn
    async def record_shortage(self, request: ShortageRecordInput) -> None:
        async with self._sessionmaker.begin() as session:
            await shortages.record_shortage(
                session, request.sku, request.order_id, request.quantity, request.since, notice_key=request.notice_key
            )

    @activity.defn
    async def resolve_shortages(self, request: ShortageResolvedInput) -> None:
        async with self._sessionmaker.begin() as session:
            await shortages.resolve_shortages(session, request.sku, request.order_ids)

    @activity.defn
    async def notify_purchasing(self, notice: PurchasingNotice) -> None:
        """Post the notice to purchasing's inbox, signed with the purchasing webhook secret.

        Each try's outcome is noted on the order's shortage, so that purchasing and the metrics
        see a notice that has not arrived while it is still being tried.
        """
        key = notice_key(notice)
        try:
            await call_provider(
                self._http,
                "POST",
                f"{self._settings.purchasing_url}/shortages",
                idempotency_key=key,
                json=notice.model_dump(mode="json"),
                refusal=PURCHASING_REFUSED,
                signing_secret=self._settings.purchasing_webhook_secret,
            )
        except ApplicationError as error:
            status = NoticeStatus.REFUSED if error.non_retryable else NoticeStatus.FAILING
            await self._note_try(notice, key, status, _describe(error))
            raise
        await self._note_try(notice, key, NoticeStatus.DELIVERED, None)

    async def _note_try(self, notice: PurchasingNotice, key: str, status: NoticeStatus, error: str | None) -> None:
        async with self._sessionmaker.begin() as session:
            await shortages.note_notice_try(session, notice.sku, notice.order_id, key, status, error)


def _describe(error: ApplicationError) -> str:
    """What went wrong, without the provider's address: its status and error code, or the failure's kind."""
    details = error.details[0] if error.details and isinstance(error.details[0], dict) else {}
    if "status" in details:
        described = f"{details['status']} {details.get('error')}"
        if details.get("detail"):
            described += f": {details['detail']}"
    else:
        described = f"{error.type}: no answer"
    return described[:LAST_ERROR_LENGTH]
