"""What to look at when a drill's books do not balance: the suspect orders' records, effects and histories.

Written as plain text next to the drill's data folder (pytest keeps the last runs' temporary
folders), so a failure can be understood after the stack and its database are gone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from faults.books import Audit
from faults.harness import FaultStack
from models.names import order_workflow_id
from models.tables import OrderEventRow, ReservationRow


async def write_diagnosis(stack: FaultStack, books: Audit, path: Path) -> None:
    invoices = await stack.records("invoices")
    bookings = await stack.records("bookings")
    client = await stack.temporal()
    out: list[str] = ["Problems:", *(f"  {problem}" for problem in books.problems()), ""]
    for order_id in sorted(books.suspects):
        out.append(f"Order {order_id}")
        async with stack.sessionmaker() as session:
            events = (
                await session.scalars(
                    select(OrderEventRow).where(OrderEventRow.order_id == order_id).order_by(OrderEventRow.seq)
                )
            ).all()
            reservations = (
                await session.scalars(
                    select(ReservationRow).where(ReservationRow.order_id == order_id).order_by(ReservationRow.id)
                )
            ).all()
        out.append("  timeline:")
        out += [f"    {e.seq} {e.at.isoformat()} {e.status} {e.actor}: {e.event} {e.detail or ''}" for e in events]
        out.append("  reservations:")
        out += [
            f"    line {r.line_no} round {r.attempt} {r.sku}@{r.warehouse} x{r.quantity} {r.state} "
            f"({r.created_at.isoformat()} .. {r.updated_at.isoformat()})"
            for r in reservations
        ]
        out.append("  invoices: " + repr([i for i in invoices if i["order_id"] == order_id]))
        out.append("  bookings: " + repr([b for b in bookings if b["reference"] == order_id]))
        out.append("  workflow history:")
        history = await client.get_workflow_handle(order_workflow_id(order_id)).fetch_history()
        for event in history.events:
            kind = event.WhichOneof("attributes") or ""
            detail = ""
            if event.HasField("marker_recorded_event_attributes"):
                detail = event.marker_recorded_event_attributes.marker_name
            out.append(f"    {event.event_id} {event.event_time.ToJsonString()} {kind} {detail}")
        out.append("")
    await asyncio.to_thread(path.write_text, "\n".join(out))
