"""Purchasing: shortages reported to the per-SKU replenishment workflow, recorded, and sent to the buyers."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client

from activities.http import call_provider, idempotency_key
from db import shortages
from models.integrations import PurchasingNotice
from models.purchasing import (
    ReportShortageInput,
    ShortageRecordInput,
    ShortageReport,
    ShortageResolvedInput,
)
from settings import Settings
from temporal_client import signal_replenishment

PURCHASING_REFUSED = "PurchasingRefused"


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
            ShortageReport(order_id=request.order_id, quantity=request.quantity),
            task_queue=activity.info().task_queue,
        )

    @activity.defn
    async def record_shortage(self, request: ShortageRecordInput) -> None:
        async with self._sessionmaker.begin() as session:
            await shortages.record_shortage(session, request.sku, request.order_id, request.quantity, request.since)

    @activity.defn
    async def resolve_shortages(self, request: ShortageResolvedInput) -> None:
        async with self._sessionmaker.begin() as session:
            await shortages.resolve_shortages(session, request.sku, request.order_ids)

    @activity.defn
    async def notify_purchasing(self, notice: PurchasingNotice) -> None:
        """Post the notice to purchasing's inbox, signed with the purchasing webhook secret."""
        await call_provider(
            self._http,
            "POST",
            f"{self._settings.purchasing_url}/shortages",
            idempotency_key=idempotency_key(notice.order_id, "purchasing", notice.sku),
            json=notice.model_dump(mode="json"),
            refusal=PURCHASING_REFUSED,
            signing_secret=self._settings.purchasing_webhook_secret,
        )
