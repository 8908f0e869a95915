"""A million orders on record: closed orders loaded into PostgreSQL with COPY, as the service would have written them.

    python -m bench.history --database-url postgresql://... --orders 1000000

Each order is written the way the order record steps leave it once its workflow has ended
(db.orders.record_order and record_status): the order row with its state (personal data encrypted
under the service's keyring, OMS_ENCRYPTION_KEYS or OMS_ENCRYPTION_KEY_FILE), its lines, its
timeline, and its cell of the analytics rollups with the mark that says so. Orders are spread over
two years, a pool of returning customers and SKUs of which a few sell far more than the rest; most
were delivered, some cancelled, rejected or failed, some waited for stock first. The SKUs,
warehouses and stock rows they name are loaded too. The same seed gives the same orders.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from db import personal
from db.rollups import hour_of
from models.names import order_workflow_id
from security.keyring import Keyring, load_keyring
from settings import Settings

WAREHOUSES = (("AMS", "Amsterdam"), ("RTM", "Rotterdam"), ("BER", "Berlin"), ("MAD", "Madrid"), ("WAW", "Warsaw"))
CURRENCIES = (("EUR", 0.9), ("GBP", 0.05), ("USD", 0.05))
# The share of orders ending in each way; a delivered order waited for stock first one time in thirty.
OUTCOMES = (("delivered", 0.88), ("cancelled", 0.06), ("shortage", 0.02), ("rejected", 0.03), ("failed", 0.01))
BACKORDERED_FIRST = 1 / 30
API_CLIENTS = 20
FIRST_NAMES = ("Anna", "Bram", "Chloé", "Daan", "Eva", "Finn", "Greta", "Hugo", "Iris", "Jonas", "Katja", "Lars")
LAST_NAMES = ("de Vries", "Jansen", "Müller", "García", "Kowalski", "Smit", "Bakker", "Visser", "Meyer", "Novak")
CITIES = (("Amsterdam", "NL"), ("Utrecht", "NL"), ("Berlin", "DE"), ("Hamburg", "DE"), ("Madrid", "ES"))
SHIPPING_RATE_CENTS = 495
TAX_RATE = 21


@dataclass(frozen=True)
class Shape:
    """How many of each, and over how long."""

    orders: int = 1_000_000
    customers: int = 100_000
    skus: int = 10_000
    days: int = 730
    seed: int = 12
    # Orders generated and written per transaction.
    batch: int = 20_000


@dataclass
class Loaded:
    """What a load wrote and how long it took."""

    orders: int = 0
    lines: int = 0
    events: int = 0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        # Each order also has its rollup mark.
        return 2 * self.orders + self.lines + self.events

    def figures(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "lines": self.lines,
            "events": self.events,
            "rows": self.rows,
            "seconds": round(self.seconds, 1),
            "rows_per_second": round(self.rows / self.seconds) if self.seconds else None,
            "statuses": self.statuses,
        }


def sku_name(number: int) -> str:
    return f"SKU-{number:05d}"


def sku_price_cents(number: int) -> int:
    return 199 + (number * 7919) % 19_800


def customer_id(number: int) -> str:
    return f"C-{number:06d}"


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    draw = rng.random()
    for name, share in weighted:
        draw -= share
        if draw < 0:
            return name
    return weighted[-1][0]


@dataclass
class Order:
    """One generated order as its rows: the order, its lines, its timeline, its rollup cell."""

    row: tuple[Any, ...]
    lines: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    status: str
    currency: str
    total_cents: int
    created_at: datetime


def closed_order(rng: random.Random, shape: Shape, now: datetime, keyring: Keyring) -> Order:
    """A closed order, drawn from `rng`, as the service's record steps leave it."""
    order_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    # Placed at any moment of the period, up to an hour ago; everything after it happened before now.
    created_at = now - timedelta(seconds=3600 + rng.random() * (shape.days * 86400 - 3600))
    room = (now - created_at).total_seconds()
    customer = rng.randrange(shape.customers)
    first, last = FIRST_NAMES[customer % len(FIRST_NAMES)], LAST_NAMES[customer // len(FIRST_NAMES) % len(LAST_NAMES)]
    city, country = CITIES[customer % len(CITIES)]
    currency = _pick(rng, CURRENCIES)
    client = rng.randrange(API_CLIENTS + 8)
    client_id = f"shop-{client:02d}" if client < API_CLIENTS else None
    lines = []
    skus_taken: set[int] = set()
    for _ in range(1 + min(int(rng.expovariate(1 / 2.0)), 9)):
        # A few SKUs sell far more than the rest (the n-th most sold about 1/n^0.5 as often).
        sku = int(shape.skus * rng.random() ** 2)
        if sku not in skus_taken:
            skus_taken.add(sku)
            lines.append((sku, 1 + min(int(rng.expovariate(1 / 0.8)), 20)))
    total_cents = sum(sku_price_cents(sku) * quantity for sku, quantity in lines)
    outcome = _pick(rng, OUTCOMES)
    backordered = outcome == "delivered" and rng.random() < BACKORDERED_FIRST

    def after(share: float) -> datetime:
        return created_at + timedelta(seconds=room * share)

    timeline: list[tuple[datetime, str, str, str, str | None]] = [
        (created_at, "received", "client", "order received", None)
    ]
    review: dict[str, Any] = {"decision": "approved", "reasons": [], "reviewed_by": "rules", "note": None}
    shipment: dict[str, Any] | None = None
    invoice: dict[str, Any] | None = None
    allocations: dict[int, list[dict[str, Any]]] = {}
    cancellation_reason = None
    status = outcome
    hours = min(1.0, 3 * 86400 / room) / 10
    if outcome == "rejected":
        reasons = [f"total {_money(total_cents)} {currency} is above the hard limit"]
        review = {"decision": "rejected", "reasons": reasons, "reviewed_by": "rules", "note": None}
        timeline.append((after(hours * 0.001), "rejected", "system", "rejected by review rules", reasons[0]))
    else:
        booking = f"BK-{rng.getrandbits(48):012X}"
        shipment = {"carrier": "standin-express", "booking_id": booking, "rate": _money(SHIPPING_RATE_CENTS)}
        shipment |= {"tracking_number": None, "status": "draft"}
        timeline.append(
            (after(hours * 0.002), "allocating", "system", "allocating stock and preparing shipping", "round 1")
        )
        short = f"{sku_name(lines[0][0])} short by {lines[0][1]}"
        if outcome == "shortage":
            status, shipment["status"] = "cancelled", "cancelled"
            timeline.append((after(hours * 0.003), "cancelled", "system", "stock shortage", short))
        elif outcome == "cancelled":
            status, shipment["status"], cancellation_reason = "cancelled", "cancelled", "customer changed their mind"
            timeline.append((after(hours * 0.003), "allocating", "api", "cancellation requested", cancellation_reason))
            timeline.append((after(hours * 0.004), "cancelled", "api", "order cancelled", cancellation_reason))
        else:
            if backordered:
                timeline.append((after(hours * 0.003), "backordered", "system", "waiting for stock", short))
                timeline.append(
                    (after(hours * 0.5), "allocating", "system", "allocating stock and preparing shipping", "round 2")
                )
            for number, (sku, quantity) in enumerate(lines, start=1):
                warehouse = WAREHOUSES[(sku + number) % len(WAREHOUSES)][0]
                allocations[number] = [{"warehouse": warehouse, "quantity": quantity}]
            timeline.append(
                (after(hours * 0.51), "fulfilling", "system", "stock allocated, settling with finance", None)
            )
            tax_cents = (total_cents + SHIPPING_RATE_CENTS) * TAX_RATE // 100
            invoice_id = f"INV-{rng.getrandbits(48):012X}"
            invoice = {
                "invoice_id": invoice_id,
                "subtotal": _money(total_cents),
                "tax": _money(tax_cents),
                "total": _money(total_cents + SHIPPING_RATE_CENTS + tax_cents),
                "currency": currency,
                "status": "issued",
            }
            timeline.append(
                (
                    after(hours * 0.52),
                    "fulfilling",
                    "system",
                    "invoiced",
                    f"{invoice_id}: {invoice['total']} {currency}",
                )
            )
            if outcome == "failed":
                status, invoice["status"], shipment["status"] = "failed", "void", "cancelled"
                timeline.append(
                    (after(hours * 0.53), "failed", "system", "order failed", "carrier refused the booking")
                )
            else:
                tracking = f"SX{rng.randrange(10**10):010d}"
                shipment |= {"tracking_number": tracking, "status": "delivered"}
                timeline.append((after(hours * 0.55), "shipped", "system", "handed to the carrier", tracking))
                timeline.append((after(hours * 4), "shipped", "carrier", "carrier: in_transit", tracking))
                timeline.append((after(hours * (5 + 5 * rng.random())), "delivered", "carrier", "delivered", tracking))
    updated_at = timeline[-1][0]
    workflow_id = order_workflow_id(order_id)
    public = {
        "order_id": order_id,
        "workflow_id": workflow_id,
        "client_id": client_id,
        "status": status,
        "customer": {"id": customer_id(customer)},
        "lines": [
            {
                "line_no": number,
                "sku": sku_name(sku),
                "quantity": quantity,
                "unit_price": _money(sku_price_cents(sku)),
                "allocations": allocations.get(number, []),
            }
            for number, (sku, quantity) in enumerate(lines, start=1)
        ],
        "total": _money(total_cents),
        "currency": currency,
        "backorder_policy": "cancel" if outcome == "shortage" else "wait",
        "revision": 1,
        "review": review,
        "shipment": shipment,
        "invoice": invoice,
        "needs_attention": None,
        "cancellation_reason": cancellation_reason,
        "replacement_for": None,
        "created_at": _iso(created_at),
        "updated_at": _iso(updated_at),
    }
    name = f"{first} {last}"
    private = {
        "customer": {
            "name": name,
            "email": f"{first.lower()}.{customer}@example.com",
            "phone": f"+31 6 {customer:08d}",
        },
        "shipping_address": {
            "name": name,
            "line1": f"Hoofdstraat {customer % 300 + 1}",
            "line2": None,
            "city": city,
            "postal_code": f"{1000 + customer % 9000}",
            "country": country,
        },
    }
    pii = personal.seal_personal(order_id, private, keyring)
    # The workflow's history length when each entry was written: it grows with every step.
    events = [
        (order_id, seq, 4 * seq + 1, at, entry_status, actor, event, detail)
        for seq, (at, entry_status, actor, event, detail) in enumerate(timeline, start=1)
    ]
    row = (
        order_id,
        workflow_id,
        client_id,
        customer_id(customer),
        status,
        _money(total_cents),
        currency,
        1,
        events[-1][2],
        len(events),
        json.dumps(public, separators=(",", ":")),
        pii,
        created_at,
        updated_at,
    )
    order_lines = [
        (order_id, number, sku_name(sku), quantity, _money(sku_price_cents(sku)), created_at)
        for number, (sku, quantity) in enumerate(lines, start=1)
    ]
    return Order(row, order_lines, events, status, currency, total_cents, created_at)


def closed_orders(shape: Shape, now: datetime, keyring: Keyring) -> Iterator[Order]:
    rng = random.Random(shape.seed)
    for _ in range(shape.orders):
        yield closed_order(rng, shape, now, keyring)


ORDER_COLUMNS = (
    "order_id, workflow_id, client_id, customer_id, status, total, currency, revision, "
    "last_version, last_seq, state, pii, created_at, updated_at"
)


def connect(url: str) -> psycopg.Connection[Any]:
    target = make_url(url).set(drivername="postgresql")
    return psycopg.connect(target.render_as_string(hide_password=False))


def load(url: str, shape: Shape, keyring: Keyring, now: datetime | None = None) -> Loaded:
    """Write `shape.orders` closed orders and the inventory they name; rollups added to those already kept."""
    now = now or datetime.now(UTC)
    loaded = Loaded()
    started = time.perf_counter()
    with connect(url) as connection:
        _load_inventory(connection, shape)
        batch: list[Order] = []
        for order in closed_orders(shape, now, keyring):
            batch.append(order)
            if len(batch) == shape.batch:
                _write(connection, batch, loaded)
                batch = []
        if batch:
            _write(connection, batch, loaded)
        connection.commit()
        # Vacuumed too, so that the covering indexes are read without visiting the rows.
        connection.autocommit = True
        for table in ("orders", "order_lines", "order_events", "order_rollup_marks", "order_rollups"):
            connection.execute(f"VACUUM ANALYZE {table}")
    loaded.seconds = time.perf_counter() - started
    return loaded


def _load_inventory(connection: psycopg.Connection[Any], shape: Shape) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO warehouses (code, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", list(WAREHOUSES)
        )
        cursor.execute("CREATE TEMPORARY TABLE new_skus (sku text, name text) ON COMMIT DROP")
        _copy(cursor, "new_skus (sku, name)", ((sku_name(n), f"Article {n}") for n in range(shape.skus)))
        cursor.execute(
            "INSERT INTO skus (sku, name, active) SELECT sku, name, true FROM new_skus ON CONFLICT DO NOTHING"
        )
        # Stock on hand at every warehouse; what the closed orders took has left already.
        cursor.execute(
            "INSERT INTO stock (sku, warehouse, on_hand, reserved)"
            " SELECT s.sku, w.code, 20 + (hashtext(s.sku || w.code) & 255), 0"
            " FROM new_skus s CROSS JOIN (SELECT code FROM warehouses WHERE code = ANY(%s)) w"
            " ON CONFLICT DO NOTHING",
            ([code for code, _ in WAREHOUSES],),
        )
    connection.commit()


def _copy(cursor: psycopg.Cursor[Any], into: str, rows: Iterable[tuple[Any, ...]]) -> None:
    with cursor.copy(f"COPY {into} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _write(connection: psycopg.Connection[Any], batch: list[Order], loaded: Loaded) -> None:
    """One transaction: the orders, their lines, timelines and marks, and their rollup cells added."""
    cells: dict[tuple[datetime, str, str], tuple[int, int]] = {}
    with connection.cursor() as cursor:
        _copy(cursor, f"orders ({ORDER_COLUMNS})", (order.row for order in batch))
        _copy(
            cursor,
            "order_lines (order_id, line_no, sku, quantity, unit_price, placed_at)",
            (line for order in batch for line in order.lines),
        )
        _copy(
            cursor,
            "order_events (order_id, seq, version, at, status, actor, event, detail)",
            (event for order in batch for event in order.events),
        )
        _copy(
            cursor,
            "order_rollup_marks (order_id, status, total)",
            ((order.row[0], order.status, order.row[5]) for order in batch),
        )
        for order in batch:
            key = (hour_of(order.created_at), order.status, order.currency)
            count, cents = cells.get(key, (0, 0))
            cells[key] = (count + 1, cents + order.total_cents)
        cursor.execute(
            "CREATE TEMPORARY TABLE new_cells (hour timestamptz, status text, currency text, orders int,"
            " revenue numeric) ON COMMIT DROP"
        )
        _copy(
            cursor,
            "new_cells (hour, status, currency, orders, revenue)",
            ((*key, count, _money(cents)) for key, (count, cents) in cells.items()),
        )
        cursor.execute(
            "INSERT INTO order_rollups (hour, status, currency, orders, revenue)"
            " SELECT hour, status, currency, orders, revenue FROM new_cells"
            " ON CONFLICT (hour, status, currency) DO UPDATE SET"
            " orders = order_rollups.orders + excluded.orders, revenue = order_rollups.revenue + excluded.revenue"
        )
    connection.commit()
    loaded.orders += len(batch)
    loaded.lines += sum(len(order.lines) for order in batch)
    loaded.events += sum(len(order.events) for order in batch)
    for order in batch:
        loaded.statuses[order.status] = loaded.statuses.get(order.status, 0) + 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a database at the newest migration")
    parser.add_argument("--orders", type=int, default=Shape.orders)
    parser.add_argument("--customers", type=int, default=Shape.customers)
    parser.add_argument("--skus", type=int, default=Shape.skus)
    parser.add_argument("--days", type=int, default=Shape.days, help="the orders are placed over this many days")
    parser.add_argument("--seed", type=int, default=Shape.seed)
    args = parser.parse_args(argv)
    shape = Shape(orders=args.orders, customers=args.customers, skus=args.skus, days=args.days, seed=args.seed)
    loaded = load(args.database_url, shape, load_keyring(Settings()))
    print(json.dumps(loaded.figures(), indent=2))


if __name__ == "__main__":
    main()
