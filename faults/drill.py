"""One drill: stock up, place a batch at a steady pace while a disruption strikes, let every order finish, audit.

The disruption runs beside the clients and watches the order records to strike at the right
moment (e.g. while orders are being settled); it notes what it did for the figures. Purchasing's
delivery of the scarce SKU is booked once every order waiting for it is backordered. Then the
drill waits until every order has finished, asks the API for each one's final status as its
client would, and audits the books.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from faults.batch import Batch, Kind, PlannedOrder
from faults.books import TERMINAL, Audit, audit
from faults.diagnosis import write_diagnosis
from faults.harness import FaultStack
from faults.report import Figures
from faults.shop import NoAnswer, Refused, Shop
from models.tables import OrderRow

POLL_SECONDS = 0.2
# An order whose record changed this recently is being worked on.
MOVING_SECONDS = 1.0


class DrillError(Exception):
    """The drill could not do what it meant to, e.g. a fault that never found orders in flight."""


@dataclass
class Drill:
    stack: FaultStack
    batch: Batch
    shop: Shop
    # Order id per Idempotency-Key, as the client learned it.
    placed: dict[str, str] = field(default_factory=dict)
    # Clients that gave up, and why.
    failures: dict[str, str] = field(default_factory=dict)
    # What the disruption did, timed from the start of the batch.
    steps: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    # Each order's (status, last timeline entry) as last read, and when it was seen to change.
    records: dict[str, tuple[str, int]] = field(default_factory=dict)
    changed_at: dict[str, float] = field(default_factory=dict)

    async def watch(self) -> None:
        """Read the order records every POLL_SECONDS and note when each changed; runs through the drill."""
        previous_read = time.monotonic()
        while True:
            reading = time.monotonic()
            try:
                async with self.stack.sessionmaker() as session:
                    rows = (await session.execute(select(OrderRow.order_id, OrderRow.status, OrderRow.last_seq))).all()
            except (DBAPIError, OSError):
                rows = []  # the database is down: nothing new to see
            # A change seen now was not there when the previous read began: that is when it happened, at the earliest.
            for order_id, status, seq in rows:
                if self.records.get(order_id) != (status, seq):
                    self.records[order_id] = (status, seq)
                    self.changed_at[order_id] = previous_read
            previous_read = reading
            await asyncio.sleep(POLL_SECONDS)

    def statuses(self) -> Counter[str]:
        """How many orders are in each status, as the workflows last recorded it."""
        return Counter(status for status, _ in self.records.values())

    async def until_in_flight(self, *statuses: str, at_least: int = 1, timeout: float = 60.0) -> Counter[str]:
        """Wait until at least `at_least` orders are seen being worked on in one of `statuses`; their counts then.

        Being worked on: the order's record changed after this call began, in the last MOVING_SECONDS.
        Orders left waiting by a crash (their record unchanged since) do not count.
        """
        began = time.monotonic()
        while True:
            now = time.monotonic()
            moving = Counter(
                status
                for order_id, (status, _) in self.records.items()
                if status in statuses and self.changed_at[order_id] > max(began, now - MOVING_SECONDS)
            )
            if sum(moving.values()) >= at_least:
                return moving
            if now > began + timeout:
                raise DrillError(f"not {at_least} orders {' or '.join(statuses)} within {timeout:.0f} s")
            await asyncio.sleep(POLL_SECONDS)

    async def until_recorded(self, status: str, *, at_least: int, timeout: float) -> None:
        """Wait until at least `at_least` orders are recorded in `status`, moving or not."""
        deadline = time.monotonic() + timeout
        while self.statuses()[status] < at_least:
            if time.monotonic() > deadline:
                raise DrillError(f"not {at_least} orders {status} within {timeout:.0f} s: {self.statuses()}")
            await asyncio.sleep(POLL_SECONDS)

    async def until_placed(self, share: float, timeout: float = 120.0) -> None:
        """Wait until the client has placed `share` of the batch."""
        wanted = int(len(self.batch.orders) * share)
        deadline = time.monotonic() + timeout
        while len(self.placed) < wanted:
            if time.monotonic() > deadline:
                raise DrillError(f"only {len(self.placed)} of {wanted} orders placed within {timeout:.0f} s")
            await asyncio.sleep(POLL_SECONDS)

    def note(self, what: str) -> None:
        """Add a step to the disruption's account: '+3.2 s worker killed'."""
        self.steps.append(f"+{time.monotonic() - self.started:.1f} s {what}")


Disruption = Callable[[Drill], Coroutine[Any, Any, None]]


@dataclass
class DrillResult:
    figures: Figures
    books: Audit
    drill: Drill


async def run_drill(
    stack: FaultStack, batch: Batch, disruption: Disruption, *, scenario: str, patience: float
) -> DrillResult:
    shop = Shop(stack.api, patience=patience)
    for (sku, warehouse), units in batch.stock.items():
        await shop.count_stock(sku, warehouse, units)
    drill = Drill(stack, batch, shop)
    started = time.monotonic()
    watcher = asyncio.create_task(drill.watch())
    try:
        # A disruption that cannot strike as meant ends the drill, its clients with it.
        async with asyncio.TaskGroup() as group:
            for order in batch.orders:
                group.create_task(_client(drill, order))
            group.create_task(disruption(drill))
            group.create_task(_deliver_scarce_stock(drill, patience))
        seen = await _final_statuses(drill, patience)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    books = await audit(stack, batch, shop.counts, seen)
    if books.problems():
        await write_diagnosis(stack, books, stack.local.config.data_dir.parent / "diagnosis.txt")
    strikes = await stack.strikes()
    details: dict[str, object] = {
        "statuses": dict(sorted(books.statuses.items())),
        "client retries": f"{shop.counts.lost_answers} after a lost answer, {shop.counts.error_answers} after an error",
        "workflow tasks timed out or failed": f"{books.lost_tasks} in {books.orders_with_lost_tasks} orders",
        "compensations": (
            f"{books.voided_invoices} invoices voided, {books.cancelled_bookings} bookings cancelled, "
            f"{books.released_reservations} reservations released"
        ),
    }
    if drill.steps:
        details["disruption"] = drill.steps
    if strikes:
        details["faults struck"] = strikes
    if drill.failures:
        details["clients gave up"] = drill.failures
    problems = books.problems()
    if problems:
        details["problems"] = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
    figures = Figures(
        scenario=scenario,
        submitted=books.submitted,
        completed=books.completed,
        lost=len(books.lost),
        unexpected=len(books.unexpected),
        duplicated=len(books.duplicated),
        balanced=books.balanced,
        seconds=time.monotonic() - started,
        details=details,
    )
    return DrillResult(figures, books, drill)


async def _client(drill: Drill, order: PlannedOrder) -> None:
    """One client: place its order at its moment in the batch, and cancel it later if it means to."""
    await asyncio.sleep(order.number / drill.batch.rate)
    try:
        order_id = await drill.shop.place(order)
        drill.placed[order.key] = order_id
        if order.cancel_after is not None:
            await asyncio.sleep(order.cancel_after)
            await drill.shop.cancel(order_id)
    except (NoAnswer, Refused) as error:
        drill.failures[order.key] = str(error)


async def _deliver_scarce_stock(drill: Drill, patience: float) -> None:
    """Purchasing's delivery arrives once the orders waiting for it are backordered (or after a while)."""
    waiting = sum(1 for order in drill.batch.orders if order.kind == Kind.BACKORDER)
    if not waiting:
        return
    await asyncio.sleep(drill.batch.seconds_to_place)
    try:
        await drill.until_recorded("backordered", at_least=waiting, timeout=patience / 2)
    except DrillError as late:
        drill.note(f"receipt booked before every order was backordered: {late}")
    sku, warehouse, units = drill.batch.receipt
    await drill.shop.receive_stock(sku, warehouse, units, f"{drill.batch.name}-receipt-1")


async def _final_statuses(drill: Drill, patience: float) -> dict[str, str]:
    """Once no order is left moving (or patience runs out), each order's status as GET /orders/{id} tells it."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        counts = drill.statuses()
        if set(counts) <= TERMINAL and sum(counts.values()) >= len(drill.placed):
            break
        await asyncio.sleep(1.0)
    limit = asyncio.Semaphore(8)

    async def status(order_id: str) -> tuple[str, str]:
        async with limit:
            return order_id, str((await drill.shop.order(order_id))["status"])

    answers: Iterable[tuple[str, str]] = await asyncio.gather(*(status(oid) for oid in drill.placed.values()))
    return dict(answers)
