"""The Temporal worker: runs the order and replenishment workflows and every activity.

`python worker.py` runs it until SIGINT or SIGTERM, then drains in-flight tasks.
"""

from __future__ import annotations

import asyncio
import signal

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.carrier import CarrierActivities
from activities.customers import CustomerActivities
from activities.finance import FinanceActivities
from activities.http import create_http_client
from activities.inventory import InventoryActivities
from activities.orders import OrderRecordActivities
from activities.purchasing import PurchasingActivities
from activities.review import ReviewActivities
from db.engine import create_engine, create_sessionmaker
from logging_config import configure_logging
from settings import Settings, get_settings
from temporal_client import connect
from workflows.order import OrderWorkflow
from workflows.replenishment import ReplenishmentWorkflow

log = structlog.get_logger(__name__)


def build_worker(
    client: Client,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    task_queue: str | None = None,
) -> Worker:
    inventory = InventoryActivities(sessionmaker, settings.warehouse_priority)
    records = OrderRecordActivities(sessionmaker)
    review = ReviewActivities(sessionmaker, settings)
    carrier = CarrierActivities(http, settings)
    finance = FinanceActivities(http, settings)
    customers = CustomerActivities(http, settings)
    purchasing = PurchasingActivities(sessionmaker, http, client, settings)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[OrderWorkflow, ReplenishmentWorkflow],
        activities=[
            records.record_order,
            records.record_status,
            review.review_order,
            inventory.reserve_line,
            inventory.release_line,
            inventory.release_order,
            inventory.commit_order,
            inventory.available_stock,
            carrier.check_address,
            carrier.quote_rate,
            carrier.draft_booking,
            carrier.confirm_booking,
            carrier.cancel_booking,
            finance.create_invoice,
            finance.void_invoice,
            customers.upsert_customer,
            customers.record_purchase,
            customers.notify_customer,
            purchasing.report_shortage,
            purchasing.record_shortage,
            purchasing.resolve_shortages,
            purchasing.notify_purchasing,
        ],
    )


async def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    client = await connect(settings)
    engine = create_engine(settings.database_url, settings.db_pool_size)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with create_http_client(settings) as http:
        worker = build_worker(client, settings, create_sessionmaker(engine), http)
        async with worker:
            log.info("worker started", task_queue=settings.task_queue)
            await stop.wait()
            log.info("worker stopping")
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
