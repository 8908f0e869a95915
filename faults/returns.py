"""The returns drill: every delivered order of a batch comes back, and the worker is killed mid-refund.

Each delivered order is returned whole (a return per order, all its lines), the carrier's label
travels, the warehouse receives every unit resellable, and while finance applies the refunds but
loses its answers (so every refund is in flight, retried) the worker is killed and started again.
The books: one refund per return at finance, applied once, and one recorded refunded; each return
closed; every returned unit back on the shelf once (on hand after = on hand before + units returned).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from faults.drill import DrillResult
from faults.harness import WORKER, FaultStack
from faults.report import Figures
from faults.shop import Shop
from models.refund_tables import RefundRow

POLL_SECONDS = 0.5
WAREHOUSE = "WH-EAST"


@dataclass
class ReturnBooks:
    returns: dict[str, str] = field(default_factory=dict)
    closed: int = 0
    problems: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)


async def run_return_drill(
    stack: FaultStack, delivered: DrillResult, *, patience: float
) -> tuple[Figures, ReturnBooks]:
    """Return every delivered order of a drill's batch, kill the worker mid-refund, and audit the returns."""
    shop = Shop(stack.api, patience=patience)
    started = time.monotonic()
    books = ReturnBooks()

    def note(what: str) -> None:
        books.steps.append(f"+{time.monotonic() - started:.1f} s {what}")

    orders = [await shop.order(order_id) for order_id in delivered.drill.placed.values()]
    orders = [order for order in orders if order["status"] == "delivered"]
    units: Counter[str] = Counter()
    for order in orders:
        for line in order["lines"]:
            units[line["sku"]] += line["quantity"]
    before = {sku: await _on_hand(shop, sku) for sku in units}

    for order in orders:
        body = {
            "lines": [
                {"sku": line["sku"], "quantity": line["quantity"], "reason": "damaged"} for line in order["lines"]
            ]
        }
        asked = await shop.call(
            "POST",
            f"/orders/{order['order_id']}/returns",
            (202,),
            json=body,
            headers={"Idempotency-Key": f"{order['order_id']}:return"},
        )
        books.returns[order["order_id"]] = str(asked.json()["return_id"])
    await _until(shop, books.returns.values(), {"in_transit"}, patience)
    note(f"{len(books.returns)} returns requested and on their way back")

    # Finance refunds but its answers are lost: every refund is in flight, retried, when the worker dies.
    await stack.set_fault("finance", drop_rate=1.0, drop_after_effect=True)
    for order in orders:
        receipt = [
            {"sku": line["sku"], "quantity": line["quantity"], "condition": "resellable"} for line in order["lines"]
        ]
        await shop.call(
            "POST",
            f"/returns/{books.returns[order['order_id']]}/receipt",
            (200,),
            json={"warehouse": WAREHOUSE, "lines": receipt},
            headers={"Idempotency-Key": f"{order['order_id']}:receipt"},
        )
    await _until_refunded_at_finance(stack, set(books.returns.values()), patience)
    await stack.kill(WORKER)
    note("worker killed with every refund applied at finance and its answer lost")
    await stack.clear_faults()
    await stack.start(WORKER)
    note("worker started again, finance answering")
    final = await _until(shop, books.returns.values(), {"closed"}, patience, give_up=True)

    books.closed = sum(1 for status in final.values() if status == "closed")
    refunds = [r for r in await stack.records("refunds") if r.get("return_id") in final]
    per_return = Counter(refund["return_id"] for refund in refunds)
    books.duplicated += [f"return {rid}: {n} refunds at finance" for rid, n in per_return.items() if n > 1]
    books.duplicated += [f"refund {r['refund_id']} applied {r['applied']} times" for r in refunds if r["applied"] > 1]
    books.problems += [f"return {rid}: no refund at finance" for rid in final if per_return[rid] == 0]
    books.problems += [f"return {rid} ended {status}" for rid, status in final.items() if status != "closed"]
    async with stack.sessionmaker() as session:
        recorded = Counter(
            (await session.scalars(select(RefundRow.return_id).where(RefundRow.status == "refunded"))).all()
        )
    books.problems += [
        f"return {rid}: {recorded[rid]} refunds recorded as refunded" for rid in final if recorded[rid] != 1
    ]
    for sku, returned in sorted(units.items()):
        after = await _on_hand(shop, sku)
        if after != before[sku] + returned:
            books.duplicated.append(f"{sku}: on hand {before[sku]} + {returned} returned, but {after} now")
    figures = Figures(
        scenario="returns: worker SIGKILL mid-refund",
        submitted=len(books.returns),
        completed=books.closed,
        lost=len(books.returns) - books.closed,
        unexpected=0,
        duplicated=len(books.duplicated),
        balanced=not books.duplicated and not books.problems,
        seconds=time.monotonic() - started,
        details={
            "returned": f"{sum(units.values())} units of {len(units)} SKUs in {len(books.returns)} returns",
            "refunds at finance": f"{len(refunds)}, applied {sum(r['applied'] for r in refunds)} times",
            "disruption": books.steps,
            **({"problems": (books.problems + books.duplicated)[:20]} if books.problems or books.duplicated else {}),
        },
    )
    return figures, books


async def _on_hand(shop: Shop, sku: str) -> int:
    answer: dict[str, Any] = (await shop.call("GET", f"/inventory/{sku}", (200,))).json()
    return int(answer["on_hand"])


async def _until(
    shop: Shop, return_ids: Any, statuses: set[str], patience: float, *, give_up: bool = False
) -> dict[str, str]:
    """Each return's status once all are in `statuses` (or patience runs out: then as they are, if `give_up`)."""
    deadline = time.monotonic() + patience
    while True:
        seen = {rid: str((await shop.call("GET", f"/returns/{rid}", (200,))).json()["status"]) for rid in return_ids}
        if all(status in statuses for status in seen.values()):
            return seen
        if time.monotonic() > deadline:
            if give_up:
                return seen
            raise TimeoutError(
                f"returns not {' or '.join(sorted(statuses))} within {patience:.0f} s: {Counter(seen.values())}"
            )
        await asyncio.sleep(POLL_SECONDS)


async def _until_refunded_at_finance(stack: FaultStack, return_ids: set[str], patience: float) -> None:
    deadline = time.monotonic() + patience
    while {refund.get("return_id") for refund in await stack.records("refunds")} < return_ids:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"finance did not apply the refunds of {len(return_ids)} returns within {patience:.0f} s"
            )
        await asyncio.sleep(POLL_SECONDS)
