"""The restore drill: orders in every stage, a backup, the loss of everything, a restore, and every order
goes on from where the backup saw it.

The stack runs as `make run` runs it, with the backup-periodic schedule registered. Five orders are
brought to a stage each (delivered; shipped, its tracking events still to come; fulfilling, finance
failing every call; backordered; pending review); the schedule is triggered and its run, in the
worker, backs up the Temporal file while the server runs and then the order database. Then the
Temporal server, the worker and the API are stopped, the data folder and the database wiped, the
backup restored with `python -m scripts.backup restore` and the three started again. Each order must
answer the status it had when the backup was taken; then the review is approved, the stock received,
finance mended, and every order must be delivered with the books balanced.

The stand-ins play the outside world, which a restore of our stores does not roll back: they keep
running, and keep their records (in memory), across the restore. So "applied twice" is judged on
those records of the whole drill: every idempotency key applied once, one invoice and one live
booking per order, even for the steps the restored workflows run again because their histories
were copied before the steps were recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from backup import BACKUP_SCHEDULE_ID
from db.engine import create_engine, create_sessionmaker
from faults.batch import EAST, PLENTY, SCARCE, WEST, Batch, Kind, PlannedOrder
from faults.books import audit
from faults.harness import API, TEMPORAL, WORKER, FaultStack, running_stack
from faults.postgres import PostgresServer
from faults.report import Figures
from faults.shop import Shop
from models.backup import BackupTaken

Report = Callable[[Figures], None]

DATABASE = "restore_drill"
# The carrier reports "in_transit" this long after the booking is confirmed, "delivered" twice as long:
# long enough that the shipped order's events come after the restore, retried by the carrier meanwhile.
TRACKING_DELAY_SECONDS = 15
PATIENCE = 120.0
# A total above the review threshold (10,000.00) sends an order to an operator.
REVIEW_PRICE = "12000.00"


@pytest.fixture
async def stack(postgres: PostgresServer, tmp_path: Path) -> AsyncIterator[FaultStack]:
    async with running_stack(
        postgres,
        tmp_path,
        DATABASE,
        environment={"STANDINS_TRACKING_DELAY_SECONDS": str(TRACKING_DELAY_SECONDS)},
        settings={"backup_interval": timedelta(days=1)},
    ) as running:
        yield running


def _order(number: int, kind: Kind, lines: list[tuple[str, str]]) -> PlannedOrder:
    customer = f"restore-{number:03d}"
    body: dict[str, Any] = {
        "customer": {
            "id": customer,
            "name": "Drill Customer",
            "email": f"{customer}@example.com",
            "phone": "+31201234567",
        },
        "lines": [{"sku": sku, "quantity": 1, "unit_price": price} for sku, price in lines],
        "shipping_address": {
            "name": "Drill Customer",
            "line1": "Damrak 1",
            "city": "Amsterdam",
            "postal_code": "1012LG",
            "country": "NL",
        },
        "backorder_policy": "wait",
    }
    return PlannedOrder(number, f"restore-order-{number:03d}", kind, body)


MUG, TEE = PLENTY
ORDERS = {
    "delivered": _order(0, Kind.SHIP, [(MUG, "12.50")]),
    "shipped": _order(1, Kind.SHIP, [(TEE, "19.00")]),
    "fulfilling": _order(2, Kind.SHIP, [(MUG, "12.50"), (TEE, "19.00")]),
    "backordered": _order(3, Kind.BACKORDER, [(MUG, "12.50"), (SCARCE, "89.00")]),
    "pending_review": _order(4, Kind.SHIP, [(TEE, REVIEW_PRICE)]),
}
BATCH = Batch(
    name="restore",
    orders=list(ORDERS.values()),
    stock={(MUG, WEST): 20, (TEE, WEST): 20, (MUG, EAST): 0, (TEE, EAST): 0, (SCARCE, WEST): 0},
    rate=1.0,
)


async def _until(shop: Shop, order_id: str, status: str, timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while (seen := (await shop.order(order_id))["status"]) != status:
        assert time.monotonic() < deadline, f"order {order_id} is {seen}, not {status}, after {timeout:.0f} s"
        await asyncio.sleep(0.3)


async def _take_backup(stack: FaultStack) -> BackupTaken:
    """Trigger the schedule as an operator would in the UI, and wait for its run's answer."""
    client = await stack.temporal()
    schedule = client.get_schedule_handle(BACKUP_SCHEDULE_ID)
    await schedule.trigger()
    deadline = time.monotonic() + 60
    while not (actions := (await schedule.describe()).info.recent_actions):
        assert time.monotonic() < deadline, "the triggered backup did not start"
        await asyncio.sleep(0.3)
    workflow_id = actions[-1].action.workflow_id  # type: ignore[attr-defined]
    return await client.get_workflow_handle(workflow_id, result_type=BackupTaken).result()


def _wipe(stack: FaultStack) -> None:
    """Lose the data folder and the database; the keyring comes back from where operators keep it."""
    data_dir = stack.local.config.data_dir
    keyring_file = Path(stack.local.env["OMS_ENCRYPTION_KEY_FILE"])
    keyring = keyring_file.read_bytes()
    shutil.rmtree(data_dir)
    data_dir.mkdir()
    keyring_file.write_bytes(keyring)
    keyring_file.chmod(0o600)
    with psycopg.connect(stack.postgres.url("postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


async def _restore(stack: FaultStack, name: str) -> list[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scripts.backup",
        "restore",
        name,
        env={**stack.local.env, "OMS_LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode().splitlines()


async def test_orders_in_every_stage_go_on_from_the_backup_after_everything_is_lost_and_restored(
    stack: FaultStack, report: Report
) -> None:
    started = time.monotonic()
    shop = Shop(stack.api, patience=PATIENCE)
    for (sku, warehouse), units in BATCH.stock.items():
        await shop.count_stock(sku, warehouse, units)
    ids: dict[str, str] = {}

    ids["delivered"] = await shop.place(ORDERS["delivered"])
    await _until(shop, ids["delivered"], "delivered")
    ids["shipped"] = await shop.place(ORDERS["shipped"])
    await _until(shop, ids["shipped"], "shipped")
    await stack.set_fault("finance", failure_rate=1.0)
    ids["fulfilling"] = await shop.place(ORDERS["fulfilling"])
    ids["backordered"] = await shop.place(ORDERS["backordered"])
    ids["pending_review"] = await shop.place(ORDERS["pending_review"])
    for stage, order_id in ids.items():
        await _until(shop, order_id, stage)

    taken = await _take_backup(stack)
    at_backup = {order_id: (await shop.order(order_id))["status"] for order_id in ids.values()}

    for child in (API, WORKER, TEMPORAL):
        await stack.stop(child)
    await asyncio.to_thread(_wipe, stack)
    restored = await _restore(stack, taken.name)
    for child in (TEMPORAL, WORKER, API):
        await stack.start(child)
    # The harness's pooled connections went with the old database.
    engine = create_engine(stack.postgres.url(DATABASE), pool_size=2)
    stack = dataclasses.replace(stack, sessionmaker=create_sessionmaker(engine))
    after_restore = {order_id: (await shop.order(order_id))["status"] for order_id in ids.values()}

    review = await stack.api.post(
        f"/orders/{ids['pending_review']}/review", json={"decision": "approve", "note": "after the restore"}
    )
    assert review.status_code == 200, review.text
    sku, warehouse, units = BATCH.receipt
    await shop.receive_stock(sku, warehouse, units, "restore-receipt-1")
    await stack.clear_faults()
    for order_id in ids.values():
        await _until(shop, order_id, "delivered")
    seen = {order_id: str((await shop.order(order_id))["status"]) for order_id in ids.values()}
    try:
        books = await audit(stack, BATCH, shop.counts, seen)
    finally:
        await engine.dispose()
    figures = Figures(
        scenario="backup, wipe, restore",
        submitted=books.submitted,
        completed=books.completed,
        lost=len(books.lost),
        unexpected=len(books.unexpected),
        duplicated=len(books.duplicated),
        balanced=books.balanced,
        seconds=time.monotonic() - started,
        details={
            "backup": f"{taken.name}, {taken.bytes} bytes: {', '.join(taken.files)}",
            "statuses at the backup": sorted(at_backup.values()),
            "restore": restored,
            "problems": books.problems(),
        },
    )
    report(figures)

    assert after_restore == at_backup
    assert sorted(at_backup.values()) == sorted(ORDERS)
    assert books.problems() == []
    assert (books.completed, books.balanced) == (len(ORDERS), True)
