"""The stock ledger under any sequence of reserve, release, commit and receive, repeats included (hypothesis).

A stateful test: hypothesis draws sequences of the stock steps of db/stock.py (reserve a line,
release a line or all an order holds, commit an order, receive a delivery), run one by one
on PostgreSQL, and among them repeats of a step just taken, as a retry after a lost answer would
send it. A plain model of the ledger predicts every answer. After every step the database must
agree with the model and keep the ledger's rules: on_hand >= reserved >= 0 in every stock row,
reserved equal to what the open reservations hold, and per SKU on_hand + committed units = the
starting stock + receipts. A repeated step answers as the first did and changes nothing.

The keys are drawn from small sets (three orders, two lines, two rounds, four receipt ids), so
steps meet the same keys often: reserving a key again, releasing what was committed, committing
an order twice, booking a receipt twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from db import stock
from db.engine import async_url, create_sessionmaker
from models.inventory import LineKey
from models.order import Allocation
from models.tables import ReservationRow, StockReceiptRow, StockRow

T = TypeVar("T")

SKUS = ("P1", "P2")
WAREHOUSES = ("PROP-A", "PROP-B", "PROP-C")
# B first; the others after it by code.
PRIORITY = ["PROP-B"]
ORDERS = ("o1", "o2", "o3")
RECEIPTS = ("r1", "r2", "r3", "r4")

# About 30 s here; raise max_examples to search longer.
LEDGER_SETTINGS = settings(
    max_examples=50,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass
class Tally:
    """What the machine went through, over all the sequences it ran."""

    sequences: int = 0
    steps: int = 0
    repeats: int = 0
    checks: int = 0


@dataclass
class Reservation:
    sku: str
    allocations: list[Allocation]
    state: str = stock.RESERVED


@dataclass
class Ledger:
    """What the stock ledger should hold, kept by hand."""

    stock: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (sku, warehouse) -> [on_hand, reserved]
    reservations: dict[tuple[str, int, int], Reservation] = field(default_factory=dict)
    shortages: dict[tuple[str, int, int], int] = field(default_factory=dict)
    receipts: dict[str, tuple[str, int]] = field(default_factory=dict)  # receipt id -> (sku, units)
    start: dict[str, int] = field(default_factory=dict)

    def reserve(self, key: tuple[str, int, int], sku: str, quantity: int) -> tuple[list[Allocation], int]:
        # A key asked before gets its first answer: what it holds, or the shortage it found.
        if key in self.reservations:
            return self.reservations[key].allocations, 0
        if key in self.shortages:
            return [], self.shortages[key]
        free = {warehouse: on_hand - held for (s, warehouse), (on_hand, held) in self.stock.items() if s == sku}
        plan: list[Allocation] = []
        missing = quantity
        for warehouse in stock.priority_order(list(free), PRIORITY):
            take = min(free[warehouse], missing)
            if take > 0:
                plan.append(Allocation(warehouse=warehouse, quantity=take))
                missing -= take
        if missing:
            self.shortages[key] = quantity
            return [], quantity
        for allocation in plan:
            self.stock[(sku, allocation.warehouse)][1] += allocation.quantity
        self.reservations[key] = Reservation(sku, plan)
        return plan, 0

    def settle(self, keys: list[tuple[str, int, int]], state: str) -> int:
        units = 0
        for key in keys:
            reservation = self.reservations[key]
            if reservation.state != stock.RESERVED:
                continue
            reservation.state = state
            for allocation in reservation.allocations:
                row = self.stock[(reservation.sku, allocation.warehouse)]
                row[1] -= allocation.quantity
                if state == stock.COMMITTED:
                    row[0] -= allocation.quantity
                units += allocation.quantity
        return units

    def receive(self, receipt: str, sku: str, warehouse: str, units: int) -> bool:
        if receipt in self.receipts:
            return False
        self.receipts[receipt] = (sku, units)
        self.stock.setdefault((sku, warehouse), [0, 0])[0] += units
        return True

    def committed(self, sku: str) -> int:
        return sum(
            allocation.quantity
            for reservation in self.reservations.values()
            if reservation.sku == sku and reservation.state == stock.COMMITTED
            for allocation in reservation.allocations
        )


class StockLedgerMachine(RuleBasedStateMachine):
    """Runs each step against db/stock.py on PostgreSQL and against the Ledger model, then compares."""

    def __init__(
        self,
        run: Callable[[Coroutine[Any, Any, Any]], Any],
        sessionmaker: async_sessionmaker[AsyncSession],
        tally: Tally,
    ) -> None:
        super().__init__()
        self._run = run
        self._sessionmaker = sessionmaker
        self._tally = tally
        # Names of this sequence's own, so sequences never meet in the database.
        self._prefix = uuid.uuid4().hex[:10]
        self.model = Ledger()
        self.last: Callable[[], Any] | None = None
        self._last_answer: Any = None

    def _sku(self, sku: str) -> str:
        return f"{self._prefix}-{sku}"

    def _order(self, order: str) -> str:
        return f"{self._prefix}-{order}"

    def _in_transaction(self, step: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async def run() -> T:
            async with self._sessionmaker.begin() as session:
                return await step(session)

        result: T = self._run(run())
        return result

    @initialize(
        shelves=st.fixed_dictionaries(
            {
                (sku, warehouse): st.integers(0, 8) if warehouse == WAREHOUSES[0] else st.none() | st.integers(0, 8)
                for sku in SKUS
                for warehouse in WAREHOUSES
            }
        )
    )
    def stock_the_shelves(self, shelves: dict[tuple[str, str], int | None]) -> None:
        self._tally.sequences += 1
        counted = {
            (self._sku(sku), warehouse): units for (sku, warehouse), units in shelves.items() if units is not None
        }

        async def count(session: AsyncSession) -> None:
            for (sku, warehouse), units in counted.items():
                await stock.set_on_hand(session, sku, warehouse, units)

        self._in_transaction(count)
        for (sku, warehouse), units in counted.items():
            self.model.stock[(sku, warehouse)] = [units, 0]
            self.model.start[sku] = self.model.start.get(sku, 0) + units

    # The steps, each remembered so that it can be sent again.

    @rule(
        order=st.sampled_from(ORDERS),
        line=st.integers(1, 2),
        attempt=st.integers(1, 2),
        sku=st.sampled_from(SKUS),
        quantity=st.integers(1, 6),
    )
    def reserve(self, order: str, line: int, attempt: int, sku: str, quantity: int) -> None:
        key = LineKey(order_id=self._order(order), line_no=line, attempt=attempt)

        def step() -> Any:
            result = self._in_transaction(
                lambda session: stock.reserve_line(session, key, self._sku(sku), quantity, PRIORITY)
            )
            return result.allocations, result.shortage

        self._take(step, self.model.reserve((key.order_id, line, attempt), self._sku(sku), quantity))

    @rule(order=st.sampled_from(ORDERS), line=st.integers(1, 2), attempt=st.integers(1, 2))
    def release(self, order: str, line: int, attempt: int) -> None:
        key = LineKey(order_id=self._order(order), line_no=line, attempt=attempt)
        model_key = (key.order_id, line, attempt)
        expected = self.model.settle([model_key] if model_key in self.model.reservations else [], stock.RELEASED)
        self._take(lambda: self._in_transaction(lambda session: stock.release_line(session, key)), expected)

    @rule(order=st.sampled_from(ORDERS))
    def release_the_order(self, order: str) -> None:
        order_id = self._order(order)
        keys = [key for key in self.model.reservations if key[0] == order_id]
        expected = self.model.settle(keys, stock.RELEASED)
        self._take(lambda: self._in_transaction(lambda session: stock.release_order(session, order_id)), expected)

    @rule(order=st.sampled_from(ORDERS))
    def commit(self, order: str) -> None:
        order_id = self._order(order)
        keys = [key for key in self.model.reservations if key[0] == order_id]
        expected = self.model.settle(keys, stock.COMMITTED)
        self._take(lambda: self._in_transaction(lambda session: stock.commit_order(session, order_id)), expected)

    @rule(
        receipt=st.sampled_from(RECEIPTS),
        sku=st.sampled_from(SKUS),
        warehouse=st.sampled_from(WAREHOUSES),
        units=st.integers(1, 5),
    )
    def receive(self, receipt: str, sku: str, warehouse: str, units: int) -> None:
        receipt_id = f"{self._prefix}-{receipt}"
        expected = self.model.receive(receipt_id, self._sku(sku), warehouse, units)
        self._take(
            lambda: self._in_transaction(
                lambda session: stock.receive_stock(session, self._sku(sku), warehouse, units, receipt_id)
            ),
            expected,
        )

    @precondition(lambda self: self.last is not None)
    @rule()
    def repeat_the_last_step(self) -> None:
        """A retry after a lost answer: the same step again answers as a repeat and changes nothing."""
        assert self.last is not None
        self._tally.repeats += 1
        before = self._snapshot()
        answer = self.last()
        assert self._snapshot() == before, "a repeated step changed the ledger"
        if isinstance(answer, tuple):  # reserve: the first answer again
            assert answer == self._last_answer
        else:  # release and commit move nothing more; a booked receipt is not booked again
            assert answer in (0, False), answer

    def _take(self, step: Callable[[], Any], expected: Any) -> None:
        self._tally.steps += 1
        answer = step()
        assert answer == expected, f"answered {answer}, the model expected {expected}"
        self.last = step
        self._last_answer = answer

    # The ledger's rules, after every step.

    @invariant()
    def ledger_balances(self) -> None:
        if not self.model.stock:
            return
        self._tally.checks += 1
        rows, reservations, receipts = self._snapshot()
        assert rows == {key: tuple(value) for key, value in self.model.stock.items()}
        for (sku, warehouse), (on_hand, reserved) in rows.items():
            assert on_hand >= reserved >= 0, f"{sku} at {warehouse}: on hand {on_hand}, reserved {reserved}"
            held = sum(q for (s, w, state), q in reservations.items() if (s, w, state) == (sku, warehouse, "reserved"))
            assert reserved == held, f"{sku} at {warehouse}: reserved {reserved}, reservations hold {held}"
        for sku, start in self.model.start.items():
            on_hand = sum(on_hand for (s, _), (on_hand, _) in rows.items() if s == sku)
            committed = sum(q for (s, _, state), q in reservations.items() if s == sku and state == "committed")
            received = receipts.get(sku, 0)
            assert on_hand + committed == start + received, (sku, on_hand, committed, start, received)
            assert committed == self.model.committed(sku)

    def _snapshot(
        self,
    ) -> tuple[dict[tuple[str, str], tuple[int, int]], dict[tuple[str, str, str], int], dict[str, int]]:
        """Stock rows, reserved/released/committed units by (sku, warehouse, state), and receipts, of this sequence."""
        prefix = f"{self._prefix}-%"

        async def read(session: AsyncSession) -> Any:
            rows = await session.execute(
                select(StockRow.sku, StockRow.warehouse, StockRow.on_hand, StockRow.reserved).where(
                    StockRow.sku.like(prefix)
                )
            )
            held = await session.execute(
                select(
                    ReservationRow.sku, ReservationRow.warehouse, ReservationRow.state, ReservationRow.quantity
                ).where(ReservationRow.order_id.like(prefix))
            )
            receipts = await session.execute(
                select(StockReceiptRow.sku, StockReceiptRow.quantity).where(StockReceiptRow.receipt_id.like(prefix))
            )
            return rows.all(), held.all(), receipts.all()

        rows, held, received = self._in_transaction(read)
        reservations: dict[tuple[str, str, str], int] = {}
        for sku, warehouse, state, quantity in held:
            reservations[(sku, warehouse, state)] = reservations.get((sku, warehouse, state), 0) + quantity
        receipts: dict[str, int] = {}
        for sku, quantity in received:
            receipts[sku] = receipts.get(sku, 0) + quantity
        return (
            {(sku, warehouse): (on_hand, reserved) for sku, warehouse, on_hand, reserved in rows},
            reservations,
            receipts,
        )


def check_stock_ledger(database_url: str, ledger_settings: settings = LEDGER_SETTINGS) -> Tally:
    """Run the machine against the database at `database_url` (already migrated); what it went through."""
    tally = Tally()
    with asyncio.Runner() as runner:
        # One connection, used step after step: no pool checks between them.
        engine = create_async_engine(async_url(database_url), pool_size=1, max_overflow=0)
        sessionmaker = create_sessionmaker(engine)

        class OnThisDatabase(StockLedgerMachine):
            def __init__(self) -> None:
                super().__init__(runner.run, sessionmaker, tally)

        try:
            run_state_machine_as_test(OnThisDatabase, settings=ledger_settings)
        finally:
            runner.run(engine.dispose())
    return tally


def test_the_ledger_balances_after_any_sequence_of_stock_steps_and_repeats_change_nothing(database_url: str) -> None:
    tally = check_stock_ledger(database_url)

    assert tally.sequences >= 1
    assert tally.repeats > 0
