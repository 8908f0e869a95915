"""`make bench BENCH_ARGS='--history'`: the API's answers with a million closed orders on record.

After the benchmark's other phases, on the same stack and database: the closed orders are loaded
(bench.history, timed), then measured over HTTP with the admin key:

- POST /orders at the half rate of the throughput run, against that run's figure on the empty database;
- GET /orders unfiltered, by status, by customer and by SKU, the first page and a page from the middle
  of the data (a cursor taken there), p99 <= 50 ms each;
- GET /orders/{id} of closed orders, p99 <= 20 ms;
- GET /purchasing/shortages and every analytics endpoint, p99 <= 500 ms.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import text

from bench.history import Shape, load
from db.orders import encode_cursor
from security.keyring import load_keyring

if TYPE_CHECKING:
    from bench.run import Bench

LIST_P99_MS = 50.0
ORDER_P99_MS = 20.0
REPORT_P99_MS = 500.0
REPORTS = (
    "/purchasing/shortages",
    "/analytics/summary",
    "/analytics/orders",
    "/analytics/fulfilment",
    "/analytics/skus",
    "/analytics/customers",
    "/analytics/returns",
)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


async def _timed(api: httpx.AsyncClient, path: str, params: dict[str, str], times: int) -> dict[str, float]:
    """p50 and p99 in ms of `times` GETs one after the other; each must answer 200."""
    taken = []
    for _ in range(times):
        started = time.perf_counter()
        response = await api.get(path, params=params)
        taken.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} {params}: {response.status_code} {response.text[:200]}")
    return {"p50_ms": round(_percentile(taken, 0.5) * 1000, 1), "p99_ms": round(_percentile(taken, 0.99) * 1000, 1)}


async def _samples(bench: Bench) -> dict[str, Any]:
    """What the queries ask for: the busiest customer and SKU, a cursor from the middle, closed orders."""
    async with bench.engine.connect() as connection:
        (count,) = (await connection.execute(text("SELECT count(*) FROM orders"))).one()
        middle = (
            await connection.execute(
                text(
                    "SELECT created_at, order_id FROM orders ORDER BY created_at DESC, order_id DESC OFFSET :n LIMIT 1"
                ),
                {"n": count // 2},
            )
        ).one()
        customer = (
            await connection.execute(
                text("SELECT customer_id FROM orders GROUP BY customer_id ORDER BY count(*) DESC LIMIT 1")
            )
        ).scalar_one()
        sku = (
            await connection.execute(text("SELECT sku FROM order_lines GROUP BY sku ORDER BY count(*) DESC LIMIT 1"))
        ).scalar_one()
        closed = (
            await connection.execute(
                text("SELECT order_id FROM orders TABLESAMPLE SYSTEM (1) WHERE status = 'delivered' LIMIT 500")
            )
        ).scalars()
        closed_ids = list(closed)
    return {"cursor": encode_cursor(*middle), "customer": customer, "sku": sku, "closed": closed_ids}


async def _post_half_rate(bench: Bench, orders: dict[str, Any]) -> dict[str, Any]:
    """POST /orders open loop at the throughput run's half rate, as long as its half-rate run, on new SKUs."""
    from bench.run import SHIPPED, Load, order_body, paced_posts, wait_until

    rate = orders["half_rate_per_second"]
    count = max(20, int(rate * bench.args.paced_seconds))
    skus = [f"RECORD-{number:03d}" for number in range(bench.args.skus)]
    for sku in skus:
        await bench.stock(sku, count)
    load = Load()
    await paced_posts(bench.api, [order_body(n, skus[n % len(skus)]) for n in range(count)], rate, load)
    # The reads are measured once these orders have shipped, with no order work going on beside them.
    await wait_until(bench.engine, list(load.submitted), SHIPPED, bench.args.timeout)
    return {
        "orders": len(load.submitted),
        "errors": load.errors,
        "ms_p50": round(_percentile(load.post_seconds, 0.5) * 1000, 1),
        "ms_p99": round(_percentile(load.post_seconds, 0.99) * 1000, 1),
    }


async def measure(bench: Bench, orders: dict[str, Any]) -> dict[str, Any]:
    """Load the closed orders into the bench database and measure the API over them."""
    args = bench.args
    shape = Shape(orders=args.history_orders)
    keyring = load_keyring(bench.settings)
    loaded = await asyncio.to_thread(load, bench.settings.database_url, shape, keyring)
    figures: dict[str, Any] = {"load": loaded.figures(), "load_average_before": os.getloadavg()}
    post = await _post_half_rate(bench, orders)
    figures["post_half_rate"] = {
        "empty_ms_p99": orders["half_rate_post_ms_p99"],
        "history_ms_p99": post["ms_p99"],
        "history_ms_p50": post["ms_p50"],
        "orders": post["orders"],
        "errors": post["errors"],
    }
    samples = await _samples(bench)
    filters = {
        "unfiltered": {},
        "by status": {"status": "delivered"},
        "by customer": {"customer_id": samples["customer"]},
        "by SKU": {"sku": samples["sku"]},
    }
    lists: dict[str, Any] = {}
    for name, params in filters.items():
        lists[f"{name}, first page"] = await _timed(bench.api, "/orders", params, args.history_requests)
        deep = {**params, "cursor": samples["cursor"]}
        lists[f"{name}, page from the middle"] = await _timed(bench.api, "/orders", deep, args.history_requests)
    figures["lists"] = lists
    rng = random.Random(12)
    taken = []
    for _ in range(args.history_requests):
        order_id = rng.choice(samples["closed"])
        started = time.perf_counter()
        response = await bench.api.get(f"/orders/{order_id}")
        taken.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET /orders/{order_id}: {response.status_code} {response.text[:200]}")
    figures["closed_order"] = {
        "p50_ms": round(_percentile(taken, 0.5) * 1000, 1),
        "p99_ms": round(_percentile(taken, 0.99) * 1000, 1),
    }
    figures["reports"] = {path: await _timed(bench.api, path, {}, args.history_report_requests) for path in REPORTS}
    figures["samples"] = {"customer": samples["customer"], "sku": samples["sku"]}
    # The machine's load meanwhile (other work on it slows every figure).
    figures["load_average_after"] = os.getloadavg()
    return figures


def _p99(group: str, name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda history: history[group][name]["p99_ms"]


def table(runs: list[dict[str, Any]]) -> list[str]:
    """The printed rows of the history phase, one column per run, with the targets met or not."""
    measured = [run["history"] for run in runs if "history" in run]
    if not measured:
        return []
    first = measured[0]
    rows: list[tuple[str, Callable[[dict[str, Any]], Any], float | None]] = [
        ("orders on record loaded", lambda h: f"{h['load']['orders']:,} in {h['load']['seconds']} s", None),
        ("load rows/s", lambda h: f"{h['load']['rows_per_second']:,}", None),
        (
            "POST p99 at half rate: empty / on record (ms)",
            lambda h: f"{h['post_half_rate']['empty_ms_p99']} / {h['post_half_rate']['history_ms_p99']}",
            None,
        ),
    ]
    rows += [(f"GET /orders {name} p99 (ms)", _p99("lists", name), LIST_P99_MS) for name in first["lists"]]
    rows.append(("GET /orders/{id} closed p99 (ms)", lambda h: h["closed_order"]["p99_ms"], ORDER_P99_MS))
    rows += [(f"GET {path} p99 (ms)", _p99("reports", path), REPORT_P99_MS) for path in first["reports"]]
    lines = [
        "",
        "| on record | " + " | ".join("run" for _ in measured) + " | target |",
        "|---|" + "---|" * (len(measured) + 1),
    ]
    for name, value, target in rows:
        shown = [value(h) for h in measured]
        if target is None:
            verdict = ""
        else:
            verdict = f"<= {target:g}: {'met' if all(float(v) <= target for v in shown) else 'NOT met'}"
        lines.append(f"| {name} | " + " | ".join(str(v) for v in shown) + f" | {verdict} |")
    empty = [h["post_half_rate"]["empty_ms_p99"] for h in measured]
    on_record = [h["post_half_rate"]["history_ms_p99"] for h in measured]
    within = all(o <= 1.2 * e for o, e in zip(on_record, empty, strict=True))
    lines.append(f"- POST p99 at half rate on record within 20% of empty: {'met' if within else 'NOT met'}")
    return lines
