"""Refunds without a return through the whole service: the API, the real worker on the Temporal dev server,
PostgreSQL and the stand-in finance over real HTTP (tests/stack.py). The money is checked in finance's ledger,
and the cap holds when two refunds are asked at once."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
from temporalio.client import WorkflowExecutionStatus

from models.names import refund_workflow_id
from tests import builders
from tests.builders import line
from tests.stack import NotYet, Stack, eventually
from tests.test_returns_api import delivered_order, new_sku


async def refund(stack: Stack, order_id: str, body: dict[str, Any], key: str) -> httpx.Response:
    return await stack.operator.post(f"/orders/{order_id}/refunds", json=body, headers={"Idempotency-Key": key})


async def refunded(stack: Stack, order_id: str, count: int) -> dict[str, Any]:
    """The order once `count` of its refunds are no longer waiting for finance."""

    async def settled() -> dict[str, Any]:
        order = await stack.order(order_id)
        done = [r for r in order["refunds"] if r["status"] != "requested"]
        if len(done) < count:
            raise NotYet(f"{len(done)} of {count} refunds settled: {order['refunds']}")
        return order

    return await eventually(settled, timeout=30)


async def test_a_refund_without_a_return_is_paid_by_finance_with_a_credit_note_and_shown_on_the_order(
    stack: Stack,
) -> None:
    order_id, mug, lamp = await delivered_order(stack)
    invoice = (await stack.order(order_id))["invoice"]
    body = {"lines": [{"sku": mug, "quantity": 1}], "reason": "arrived a week late", "note": "goodwill"}

    # Operators and admins refund; a shop's own key may not, and every refund carries an Idempotency-Key.
    assert (
        await stack.api.post(f"/orders/{order_id}/refunds", json=body, headers={"Idempotency-Key": "r"})
    ).status_code == 403
    assert (await stack.operator.post(f"/orders/{order_id}/refunds", json=body)).status_code == 422
    asked = await refund(stack, order_id, body, "claim-1")
    assert asked.status_code == 202, asked.text
    refund_id = asked.json()["refund_id"]
    assert asked.json()["workflow_id"] == refund_workflow_id(refund_id)
    again = await refund(stack, order_id, body, "claim-1")
    assert again.status_code == 202 and again.json()["refund_id"] == refund_id

    order = await refunded(stack, order_id, 1)

    # One mug at 20.00 plus its share of the invoice's tax, paid once, with a credit note.
    share = Decimal(invoice["tax"]) / (Decimal(invoice["total"]) - Decimal(invoice["tax"]))
    expected = (Decimal("20.00") * (1 + share)).quantize(Decimal("0.01"))
    [shown] = order["refunds"]
    assert (shown["refund_id"], shown["status"], Decimal(shown["amount"])) == (refund_id, "refunded", expected)
    assert shown["credit_note"].startswith("CN-") and shown["reason"] == "arrived a week late"
    assert shown["lines"] == [{"sku": mug, "quantity": 1, "amount": str(expected)}]
    assert Decimal(order["refunded_total"]) == expected
    quantities = {line["sku"]: (line["delivered_quantity"], line["refunded_quantity"]) for line in order["lines"]}
    assert quantities == {mug: (3, 1), lamp: (1, 0)}
    ledger = [r for r in await stack.records("refunds") if r["order_id"] == order_id]
    assert [(r["amount"], r["applied"], r["credit_note"]) for r in ledger] == [(str(expected), 1, shown["credit_note"])]
    assert ledger[0]["invoice_id"] == invoice["invoice_id"] and ledger[0].get("return_id") is None
    handle = stack.temporal.get_workflow_handle(refund_workflow_id(refund_id))
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    # An order whose goods have not left (its invoice could still be voided) is not refunded.
    scarce = new_sku("NONE")
    await stack.count_stock(scarce, 0)
    waiting = await stack.place_order(builders.order_body(lines=[line(scarce, 1, "9.00")]))
    await stack.wait_for_status(waiting, "backordered")
    early = await refund(stack, waiting, {"amount": "1.00", "reason": "goodwill"}, "early-1")
    assert early.status_code == 409
    assert early.json()["detail"] == "order is backordered: only a shipped or delivered order can be refunded"

    # The mugs left to refund are two: a third one is refused, naming the line.
    beyond = await refund(stack, order_id, {"lines": [{"sku": mug, "quantity": 3}], "reason": "claim"}, "claim-2")
    assert beyond.status_code == 409 and f"line {mug}" in beyond.json()["detail"]


async def test_two_refunds_asked_at_once_cannot_both_pass_what_was_invoiced(stack: Stack) -> None:
    order_id, _, _ = await delivered_order(stack)
    invoiced = Decimal((await stack.order(order_id))["invoice"]["total"])
    most = (invoiced * Decimal("0.6")).quantize(Decimal("0.01"))

    answers = await asyncio.gather(
        refund(stack, order_id, {"amount": str(most), "reason": "parcel lost"}, "lost-1"),
        refund(stack, order_id, {"amount": str(most), "reason": "parcel lost"}, "lost-2"),
    )

    assert sorted(answer.status_code for answer in answers) == [202, 409]
    [refused] = [answer for answer in answers if answer.status_code == 409]
    left = invoiced - most
    assert f"remaining {left:.2f} EUR of the {invoiced:.2f} EUR invoiced" in refused.json()["detail"]
    # What remains can still be refunded, to the cent; then nothing more.
    rest = await refund(stack, order_id, {"amount": str(left), "reason": "parcel lost"}, "lost-3")
    assert rest.status_code == 202, rest.text
    order = await refunded(stack, order_id, 2)
    assert Decimal(order["refunded_total"]) == invoiced
    cent = await refund(stack, order_id, {"amount": "0.01", "reason": "parcel lost"}, "lost-4")
    assert cent.status_code == 409 and "remaining 0.00 EUR" in cent.json()["detail"]
    ledger = [r for r in await stack.records("refunds") if r["order_id"] == order_id]
    assert sum((Decimal(r["amount"]) for r in ledger), Decimal(0)) == invoiced
