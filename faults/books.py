"""The books at the end of a drill: every order where it should be, every effect once, the stock ledger balanced.

Read from the three places that keep them: PostgreSQL (orders, reservations, stock, receipts), the
stand-in outside systems (invoices and carrier bookings, each with how often the effect of its
Idempotency-Key was applied) and Temporal (no order workflow left running or broken). Nothing
here trusts the code under test: each rule is checked against what was planned and what the
client was told.

- An order is *completed* when it reached a status its client may see at the end, *lost* when it
  was never accepted or has not finished, *unexpected* when it finished elsewhere.
- A *duplicated effect* is anything done twice: a second order for one Idempotency-Key, a second
  invoice or live booking for one order, stock committed twice, any effect or compensation applied
  more than once for one key.
- A *leak* is an undo that did not happen: a cancelled order still invoiced, booked or holding stock.
- The *ledger* balances when, per SKU, on hand + committed = starting stock + receipts, what is
  reserved is what the open reservations hold, and what was committed is what shipped orders took.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.api.enums.v1 import TimeoutType
from temporalio.client import Client

from db import rollups
from faults.batch import Batch, PlannedOrder
from faults.harness import FaultStack
from faults.shop import ShopCounts
from models.names import ORDER_WORKFLOW, order_workflow_id
from models.tables import IdempotencyKeyRow, OrderLineRow, OrderRow, ReservationRow, StockReceiptRow, StockRow

TERMINAL = frozenset({"delivered", "cancelled", "rejected", "failed"})
# The goods have left: the stock is committed.
SHIPPED = frozenset({"shipped", "delivered"})
UNDONE = frozenset({"cancelled", "rejected", "failed"})


@dataclass
class Audit:
    submitted: int
    completed: int = 0
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    ledger: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    # The orders behind the problems, to look into.
    suspects: set[str] = field(default_factory=set)
    # Workflow tasks of orders that timed out or failed, and how many orders had one: each such task
    # is run again from the order's recorded history, after its local activities took effect.
    lost_tasks: int = 0
    orders_with_lost_tasks: int = 0
    # Compensations seen at the outside systems and in the stock ledger.
    voided_invoices: int = 0
    cancelled_bookings: int = 0
    released_reservations: int = 0

    @property
    def balanced(self) -> bool:
        return not (self.duplicated or self.leaks or self.ledger)

    def problems(self) -> list[str]:
        return [*self.lost, *self.unexpected, *self.duplicated, *self.leaks, *self.ledger]


@dataclass
class _Facts:
    orders: dict[str, OrderRow]
    lines: dict[str, list[OrderLineRow]]
    keys: dict[str, str]
    reservations: dict[str, list[ReservationRow]]
    stock: list[StockRow]
    receipts: dict[str, int]
    invoices: dict[str, list[dict[str, Any]]]
    bookings: dict[str, list[dict[str, Any]]]
    all_records: list[dict[str, Any]]
    unfinished_workflows: list[str]
    lost_tasks: dict[str, int]
    rollup_mismatches: list[str]


async def audit(stack: FaultStack, batch: Batch, shop: ShopCounts, seen: dict[str, str]) -> Audit:
    """Check the books; `seen` is the final status GET /orders/{id} answered per order id."""
    facts = await _read(stack)
    books = Audit(submitted=len(batch.orders))
    by_customer: dict[str, list[str]] = defaultdict(list)
    for row in facts.orders.values():
        by_customer[row.customer_id].append(row.order_id)
    shipped: set[str] = set()
    for planned in batch.orders:
        order_id = _one_order(planned, facts, shop, by_customer, books)
        if order_id is None:
            continue
        problems_before = len(books.problems())
        status = facts.orders[order_id].status
        books.statuses[status] += 1
        if status not in TERMINAL:
            books.lost.append(f"{planned.key}: order {order_id} is still {status}")
        elif seen.get(order_id) != status:
            books.lost.append(f"{planned.key}: the API answered {seen.get(order_id)}, the record says {status}")
        elif status not in planned.expected:
            books.unexpected.append(f"{planned.key}: order {order_id} ended {status}, not {sorted(planned.expected)}")
        else:
            books.completed += 1
        if status in SHIPPED:
            shipped.add(order_id)
        _check_effects(order_id, status, facts, books)
        if len(books.problems()) > problems_before:
            books.suspects.add(order_id)
    _check_applied_once(facts.all_records, books)
    _check_ledger(batch, facts, shipped, books)
    # The dashboard's rollups, kept by the same status writes, add up to the orders.
    books.ledger += facts.rollup_mismatches
    books.lost += [f"workflow {workflow_id} has not completed" for workflow_id in facts.unfinished_workflows]
    books.lost_tasks = sum(facts.lost_tasks.values())
    books.orders_with_lost_tasks = sum(1 for count in facts.lost_tasks.values() if count)
    return books


def _one_order(
    planned: PlannedOrder,
    facts: _Facts,
    shop: ShopCounts,
    by_customer: dict[str, list[str]],
    books: Audit,
) -> str | None:
    """The one order placed for `planned`; a second one is a duplicated effect, none a lost order."""
    ids = set(shop.answered.get(planned.key, set())) | set(by_customer.get(planned.customer_id, []))
    if planned.key in facts.keys:
        ids.add(facts.keys[planned.key])
    known = sorted(order_id for order_id in ids if order_id in facts.orders)
    if len(ids) > 1:
        books.duplicated.append(f"{planned.key}: {len(ids)} orders placed: {sorted(ids)}")
    if not known:
        books.lost.append(f"{planned.key}: no order on record (answered: {sorted(ids) or 'never accepted'})")
        return None
    return known[0]


def _check_effects(order_id: str, status: str, facts: _Facts, books: Audit) -> None:
    invoices = facts.invoices.get(order_id, [])
    bookings = facts.bookings.get(order_id, [])
    reservations = facts.reservations.get(order_id, [])
    issued = [invoice for invoice in invoices if invoice["status"] != "void"]
    live = [booking for booking in bookings if booking["status"] != "cancelled"]
    books.voided_invoices += len(invoices) - len(issued)
    books.cancelled_bookings += len(bookings) - len(live)
    books.released_reservations += sum(1 for row in reservations if row.state == "released")
    if len(invoices) > 1:
        books.duplicated.append(f"order {order_id}: {len(invoices)} invoices")
    if len(live) > 1:
        books.duplicated.append(f"order {order_id}: {len(live)} live carrier bookings")
    committed: dict[int, list[ReservationRow]] = defaultdict(list)
    for row in reservations:
        if row.state == "committed":
            committed[row.line_no].append(row)
    for line in facts.lines.get(order_id, []):
        rounds = {row.attempt for row in committed.get(line.line_no, [])}
        units = sum(row.quantity for row in committed.get(line.line_no, []))
        if len(rounds) > 1 or units > line.quantity:
            books.duplicated.append(f"order {order_id} line {line.line_no}: {units} units committed in rounds {rounds}")
        elif status in SHIPPED and units != line.quantity:
            books.leaks.append(f"order {order_id} line {line.line_no}: {status} with {units}/{line.quantity} committed")
    held = sum(row.quantity for row in reservations if row.state == "reserved")
    if held and status in TERMINAL:
        books.leaks.append(f"order {order_id} ended {status} still holding {held} units")
    if status == "delivered":
        if len(issued) != 1:
            books.leaks.append(f"order {order_id} delivered with {len(issued)} issued invoices")
        if [booking["status"] for booking in live] != ["delivered"]:
            books.leaks.append(f"order {order_id} delivered, carrier bookings: {[b['status'] for b in bookings]}")
    if status in UNDONE:
        # The workflow flags an undo that failed for an operator; the books stay unbalanced until one acts.
        flagged = (facts.orders[order_id].state or {}).get("needs_attention")
        note = f" (flagged for an operator: {flagged})" if flagged else ""
        if issued:
            books.leaks.append(f"order {order_id} ended {status} with an invoice not voided{note}")
        if live:
            books.leaks.append(f"order {order_id} ended {status} with a carrier booking {live[0]['status']}{note}")
        if committed:
            books.leaks.append(f"order {order_id} ended {status} with stock committed{note}")


def _check_applied_once(records: Iterable[dict[str, Any]], books: Audit) -> None:
    for record in records:
        what = record.get("invoice_id") or record.get("booking_id")
        if record["applied"] != 1:
            books.duplicated.append(f"{what}: applied {record['applied']} times ({record['idempotency_key']})")
        actions = Counter(step["action"] for step in record.get("history", []))
        for action, times in actions.items():
            if times > 1:
                books.duplicated.append(f"{what}: {action} recorded {times} times")
        for step in record.get("history", []):
            if step["applied"] != 1:
                books.duplicated.append(f"{what}: {step['action']} applied {step['applied']} times")


def _check_ledger(batch: Batch, facts: _Facts, shipped_orders: set[str], books: Audit) -> None:
    skus = sorted({sku for sku, _ in batch.stock})
    for sku in skus:
        start = sum(units for (stocked, _), units in batch.stock.items() if stocked == sku)
        rows = [row for row in facts.stock if row.sku == sku]
        on_hand = sum(row.on_hand for row in rows)
        reserved = sum(row.reserved for row in rows)
        reservations = [row for rows_ in facts.reservations.values() for row in rows_ if row.sku == sku]
        committed = sum(row.quantity for row in reservations if row.state == "committed")
        held = sum(row.quantity for row in reservations if row.state == "reserved")
        shipped = sum(
            line.quantity for order_id in shipped_orders for line in facts.lines.get(order_id, []) if line.sku == sku
        )
        receipts = facts.receipts.get(sku, 0)
        if on_hand + committed != start + receipts:
            books.ledger.append(
                f"{sku}: on hand {on_hand} + committed {committed} != start {start} + receipts {receipts}"
            )
        if reserved != held:
            books.ledger.append(f"{sku}: stock says {reserved} reserved, open reservations hold {held}")
        if committed != shipped:
            books.ledger.append(f"{sku}: {committed} units committed, shipped orders took {shipped}")
        for row in rows:
            if not 0 <= row.reserved <= row.on_hand:
                books.ledger.append(f"{sku} at {row.warehouse}: reserved {row.reserved}, on hand {row.on_hand}")


async def _read(stack: FaultStack) -> _Facts:
    async with stack.sessionmaker() as session:
        orders, lines, keys, reservations, stock, receipts = await _read_database(session)
        rollup_mismatches = await rollups.mismatches(session)
    invoices = await stack.records("invoices")
    bookings = await stack.records("bookings")
    client = await stack.temporal()
    unfinished = [
        execution.id
        async for execution in client.list_workflows(
            f'WorkflowType = "{ORDER_WORKFLOW}" AND ExecutionStatus != "Completed"'
        )
    ]
    lost_tasks = {order_id: await _lost_tasks(client, order_id) for order_id in orders}
    by_order_invoices: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for invoice in invoices:
        by_order_invoices[invoice["order_id"]].append(invoice)
    by_order_bookings: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for booking in bookings:
        by_order_bookings[booking["reference"]].append(booking)
    return _Facts(
        orders=orders,
        lines=lines,
        keys=keys,
        reservations=reservations,
        stock=stock,
        receipts=receipts,
        invoices=by_order_invoices,
        bookings=by_order_bookings,
        all_records=invoices + bookings,
        unfinished_workflows=unfinished,
        lost_tasks=lost_tasks,
        rollup_mismatches=rollup_mismatches,
    )


async def _lost_tasks(client: Client, order_id: str) -> int:
    """Workflow tasks a worker started and never completed: timed out while running, or failed."""
    history = await client.get_workflow_handle(order_workflow_id(order_id)).fetch_history()
    # A task that timed out before any worker started it (left on a dead worker's sticky queue) ran nothing.
    return sum(
        1
        for event in history.events
        if event.HasField("workflow_task_failed_event_attributes")
        or (
            event.HasField("workflow_task_timed_out_event_attributes")
            and event.workflow_task_timed_out_event_attributes.timeout_type == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
        )
    )


async def _read_database(
    session: AsyncSession,
) -> tuple[
    dict[str, OrderRow],
    dict[str, list[OrderLineRow]],
    dict[str, str],
    dict[str, list[ReservationRow]],
    list[StockRow],
    dict[str, int],
]:
    orders = {row.order_id: row for row in (await session.scalars(select(OrderRow))).all()}
    lines: dict[str, list[OrderLineRow]] = defaultdict(list)
    for line in (await session.scalars(select(OrderLineRow).order_by(OrderLineRow.line_no))).all():
        lines[line.order_id].append(line)
    keys = {row.key: row.order_id for row in (await session.scalars(select(IdempotencyKeyRow))).all()}
    reservations: dict[str, list[ReservationRow]] = defaultdict(list)
    for reservation in (await session.scalars(select(ReservationRow).order_by(ReservationRow.id))).all():
        reservations[reservation.order_id].append(reservation)
    stock = list((await session.scalars(select(StockRow))).all())
    receipts: dict[str, int] = defaultdict(int)
    for receipt in (await session.scalars(select(StockReceiptRow))).all():
        receipts[receipt.sku] += receipt.quantity
    return orders, lines, keys, reservations, stock, receipts
