"""Returns through the whole service: the API, the real worker on the Temporal dev server, PostgreSQL and
the stand-in carrier and finance over real HTTP (tests/stack.py). A delivered order is returned, the
carrier's label travels, the warehouse receives, stock and the finance ledger are checked."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from db.returns import written_off
from models.names import SA_ORDER_ID, SA_RETURN_STATUS, return_workflow_id
from models.tables import ReturnRow
from tests import builders
from tests.builders import AMSTERDAM, line
from tests.stack import NotYet, Stack, eventually, running_stack


def new_sku(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8].upper()}"


def order_body(mug: str, lamp: str) -> dict[str, Any]:
    return builders.order_body(
        lines=[line(mug, 3, "20.00"), line(lamp, 1, "80.00")], customer={"id": "cust-77"}, address=AMSTERDAM
    )


async def delivered_order(stack: Stack) -> tuple[str, str, str]:
    mug, lamp = new_sku("MUG"), new_sku("LAMP")
    await stack.count_stock(mug, 3)
    await stack.count_stock(lamp, 1)
    order_id = await stack.place_order(order_body(mug, lamp))
    await stack.wait_for_status(order_id, "delivered")
    return order_id, mug, lamp


async def wait_for_return(stack: Stack, return_id: str, status: str, timeout: float = 60.0) -> dict[str, Any]:
    async def reached() -> dict[str, Any]:
        response = await stack.operator.get(f"/returns/{return_id}")
        assert response.status_code == 200, response.text
        body = dict(response.json())
        if body["status"] != status:
            raise NotYet(f"return is {body['status']}, not {status}: {body['timeline'][-1:]}")
        return body

    return await eventually(reached, timeout=timeout)


async def test_a_delivered_order_is_returned_received_restocked_and_refunded(stack: Stack) -> None:
    order_id, mug, lamp = await delivered_order(stack)
    invoice = (await stack.order(order_id))["invoice"]

    asked = await stack.api.post(
        f"/orders/{order_id}/returns",
        json={
            "lines": [
                {"sku": mug, "quantity": 2, "reason": "damaged"},
                {"sku": lamp, "quantity": 1, "reason": "no_longer_needed"},
            ]
        },
        headers={"Idempotency-Key": "ret-1"},
    )
    assert asked.status_code == 202, asked.text
    return_id = asked.json()["return_id"]
    assert asked.headers["Location"] == f"/returns/{return_id}"
    again = await stack.api.post(
        f"/orders/{order_id}/returns",
        json={
            "lines": [
                {"sku": mug, "quantity": 2, "reason": "damaged"},
                {"sku": lamp, "quantity": 1, "reason": "no_longer_needed"},
            ]
        },
        headers={"Idempotency-Key": "ret-1"},
    )
    assert again.status_code == 202 and again.json()["return_id"] == return_id

    # The carrier's label travels: its tracking events reach the return, not the order.
    in_transit = await wait_for_return(stack, return_id, "in_transit")
    assert in_transit["label"]["tracking_number"].startswith("SR")

    # More than what is left of the mugs (3 delivered, 2 in this return) is refused, naming the line.
    beyond = await stack.api.post(
        f"/orders/{order_id}/returns", json={"lines": [{"sku": mug, "quantity": 2, "reason": "wrong_item"}]}
    )
    assert beyond.status_code == 409, beyond.text
    assert f"line {mug}" in beyond.json()["detail"]

    first = await stack.operator.post(
        f"/returns/{return_id}/receipt",
        json={"warehouse": "AMS", "lines": [{"sku": mug, "quantity": 1, "condition": "resellable"}]},
        headers={"Idempotency-Key": "box-1"},
    )
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "received"
    repeated = await stack.operator.post(
        f"/returns/{return_id}/receipt",
        json={"warehouse": "AMS", "lines": [{"sku": mug, "quantity": 1, "condition": "resellable"}]},
        headers={"Idempotency-Key": "box-1"},
    )
    assert repeated.status_code == 200 and len(repeated.json()["receipts"]) == 1
    rest = await stack.operator.post(
        f"/returns/{return_id}/receipt",
        json={
            "warehouse": "AMS",
            "lines": [
                {"sku": mug, "quantity": 1, "condition": "damaged"},
                {"sku": lamp, "quantity": 1, "condition": "resellable"},
            ],
        },
    )
    assert rest.status_code == 200, rest.text

    closed = await wait_for_return(stack, return_id, "closed")

    # 2 mugs at 20.00 and a lamp at 80.00, each with its share of the invoice's tax.
    base = Decimal(invoice["total"]) - Decimal(invoice["tax"])
    share = Decimal(invoice["tax"]) / base
    expected = sum(
        ((net + net * share).quantize(Decimal("0.01")) for net in (Decimal("40.00"), Decimal("80.00"))), Decimal(0)
    )
    assert Decimal(closed["refund"]["amount"]) == expected
    assert closed["refund"]["credit_note"].startswith("CN-")
    refunds = [r for r in await stack.records("refunds") if r["order_id"] == order_id]
    assert [(r["amount"], r["applied"]) for r in refunds] == [(str(expected), 1)]
    assert refunds[0]["invoice_id"] == invoice["invoice_id"]
    labels = [label for label in await stack.records("return_labels") if label["return_id"] == return_id]
    assert len(labels) == 1 and labels[0]["applied"] == 1

    # Resellable units are back on the shelf (one mug, the lamp); the damaged mug is written off, not stock.
    assert (await stack.stock(mug))["on_hand"] == 1
    assert (await stack.stock(lamp))["on_hand"] == 1
    async with stack.sessionmaker() as session:
        assert await written_off(session, mug) == 1
        row = await session.scalar(select(ReturnRow).where(ReturnRow.return_id == return_id))
        assert row is not None and row.status == "closed"

    timeline = [entry["status"] for entry in closed["timeline"]]
    for status in ("requested", "approved", "label_issued", "in_transit", "received", "refunded", "closed"):
        assert status in timeline

    description = await stack.temporal.get_workflow_handle(return_workflow_id(return_id)).describe()
    assert description.typed_search_attributes.get(SA_RETURN_STATUS) == "closed"
    assert description.typed_search_attributes.get(SA_ORDER_ID) == order_id

    listed = await stack.api.get("/returns", params={"order_id": order_id})
    assert [item["return_id"] for item in listed.json()["items"]] == [return_id]

    # The same request sent again once the return is over answers with it, and starts nothing.
    late_repeat = await stack.api.post(
        f"/orders/{order_id}/returns",
        json={
            "lines": [
                {"sku": mug, "quantity": 2, "reason": "damaged"},
                {"sku": lamp, "quantity": 1, "reason": "no_longer_needed"},
            ]
        },
        headers={"Idempotency-Key": "ret-1"},
    )
    assert late_repeat.status_code == 202, late_repeat.text
    assert late_repeat.json() == {"return_id": return_id, "status": "closed", "workflow_id": f"return-{return_id}"}

    metrics = (await stack.operator.get("/metrics")).text
    assert 'oms_returns{status="closed"} 1.0' in metrics
    assert 'oms_returns{status="pending_review"} 0.0' in metrics
    assert "oms_returns_needing_attention 0.0" in metrics
    assert 'oms_refunds{status="refunded"} 1.0' in metrics
    assert 'oms_refunds{status="failed"} 0.0' in metrics

    # The order shows its return, and per line what was delivered and what came back.
    order = await stack.order(order_id)
    assert order["returns"] == [{"return_id": return_id, "status": "closed"}]
    assert [(line["sku"], line["delivered_quantity"], line["returned_quantity"]) for line in order["lines"]] == [
        (mug, 3, 2),
        (lamp, 1, 1),
    ]
    # The return's refund is the order's, with what it paid back per line.
    [shown] = order["refunds"]
    assert (shown["return_id"], shown["status"], Decimal(shown["amount"])) == (return_id, "refunded", expected)
    assert shown["credit_note"] == closed["refund"]["credit_note"]
    assert Decimal(order["refunded_total"]) == expected
    assert [line["refunded_quantity"] for line in order["lines"]] == [2, 1]


async def test_a_client_returns_only_its_own_orders_and_operators_review_big_returns(stack: Stack) -> None:
    order_id, mug, _ = await delivered_order(stack)

    async with stack.http(stack.keys.other_client) as other:
        foreign = await other.post(
            f"/orders/{order_id}/returns", json={"lines": [{"sku": mug, "quantity": 1, "reason": "damaged"}]}
        )
    assert foreign.status_code == 404, foreign.text

    asked = await stack.api.post(
        f"/orders/{order_id}/returns", json={"lines": [{"sku": mug, "quantity": 1, "reason": "other"}], "note": "?"}
    )
    assert asked.status_code == 202, asked.text
    return_id = asked.json()["return_id"]
    await wait_for_return(stack, return_id, "pending_review")

    refused = await stack.api.post(f"/returns/{return_id}/review", json={"decision": "approve"})
    assert refused.status_code == 403
    declined = await stack.operator.post(f"/returns/{return_id}/review", json={"decision": "decline", "note": "worn"})
    assert declined.status_code == 200, declined.text
    await wait_for_return(stack, return_id, "declined")

    # A declined return covers nothing: the units may be asked for again; of two returns of 2 of the
    # 3 mugs asked at once, one is taken and the other refused, never both.
    both = await asyncio.gather(
        *(
            stack.api.post(
                f"/orders/{order_id}/returns", json={"lines": [{"sku": mug, "quantity": 2, "reason": "damaged"}]}
            )
            for _ in range(2)
        )
    )
    assert sorted(answer.status_code for answer in both) == [202, 409], [answer.text for answer in both]
    taken = next(answer.json()["return_id"] for answer in both if answer.status_code == 202)

    # Another client can neither see nor cancel it; once the carrier has delivered the parcel to the
    # warehouse, its own client cannot cancel it either.
    async with stack.http(stack.keys.other_client) as other:
        assert (await other.get(f"/returns/{taken}")).status_code == 404
        assert (await other.post(f"/returns/{taken}/cancel", json={"reason": "not mine"})).status_code == 404

    async def parcel_arrived() -> None:
        timeline = (await stack.api.get(f"/returns/{taken}")).json()["timeline"]
        assert "carrier: delivered" in [entry["event"] for entry in timeline]

    await eventually(parcel_arrived, timeout=30)
    too_late = await stack.api.post(f"/returns/{taken}/cancel", json={"reason": "kept them after all"})
    assert too_late.status_code == 409, too_late.text
    assert "arrived at the warehouse" in too_late.json()["detail"]

    # The last mug, asked for with reason "other", waits for review: its client cancels it, no label is ever issued.
    last = await stack.api.post(
        f"/orders/{order_id}/returns", json={"lines": [{"sku": mug, "quantity": 1, "reason": "other"}]}
    )
    last_id = last.json()["return_id"]
    await wait_for_return(stack, last_id, "pending_review")
    cancelled = await stack.api.post(f"/returns/{last_id}/cancel", json={"reason": "found the receipt"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["label"] is None
    again = await stack.api.post(f"/returns/{last_id}/cancel", json={"reason": "again"})
    assert again.status_code == 409 and again.json()["detail"] == "return is cancelled"


async def test_a_refund_whose_answer_is_lost_is_retried_and_refunded_once(stack: Stack) -> None:
    order_id, _, lamp = await delivered_order(stack)
    asked = await stack.api.post(
        f"/orders/{order_id}/returns", json={"lines": [{"sku": lamp, "quantity": 1, "reason": "not_as_described"}]}
    )
    return_id = asked.json()["return_id"]
    await wait_for_return(stack, return_id, "in_transit")

    # Finance refunds, but its answer never arrives: the worker cannot tell it went through.
    await stack.set_fault("finance", drop_rate=1.0, drop_after_effect=True)
    received = await stack.operator.post(
        f"/returns/{return_id}/receipt",
        json={"warehouse": "AMS", "lines": [{"sku": lamp, "quantity": 1, "condition": "resellable"}]},
    )
    assert received.status_code == 200, received.text

    async def refunded_at_finance() -> list[dict[str, Any]]:
        found = [item for item in await stack.records("refunds") if item["order_id"] == order_id]
        if not found:
            raise NotYet("no refund at finance yet")
        return found

    await eventually(refunded_at_finance, timeout=30)
    await stack.clear_faults()
    closed = await wait_for_return(stack, return_id, "closed", timeout=60)

    refunds = await refunded_at_finance()
    assert [(item["refund_id"], item["applied"]) for item in refunds] == [(closed["refund"]["refund_id"], 1)]
    assert stack.standin_answers.count("finance", 503) >= 1


async def test_after_the_return_window_only_an_operator_with_a_note_may_accept_a_return(
    dev_server_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    task_queue: str,
) -> None:
    async with running_stack(
        dev_server_env.client, database_url, sessionmaker, task_queue, settings={"return_window_days": 0}
    ) as stack:
        order_id, mug, _ = await delivered_order(stack)
        body = {"lines": [{"sku": mug, "quantity": 1, "reason": "damaged"}]}

        late = await stack.api.post(f"/orders/{order_id}/returns", json=body)
        by_client = await stack.api.post(
            f"/orders/{order_id}/returns", json={**body, "override_window": True, "note": "please"}
        )
        without_note = await stack.operator.post(f"/orders/{order_id}/returns", json={**body, "override_window": True})
        by_operator = await stack.operator.post(
            f"/orders/{order_id}/returns", json={**body, "override_window": True, "note": "courier lost it a week"}
        )

        assert late.status_code == 409 and "return window of 0 days" in late.json()["detail"]
        assert by_client.status_code == 409 and without_note.status_code == 409
        assert by_operator.status_code == 202, by_operator.text
        accepted = await wait_for_return(stack, by_operator.json()["return_id"], "label_issued")
        overridden = [entry for entry in accepted["timeline"] if entry["event"] == "return window overridden"]
        assert [(entry["actor"], entry["detail"]) for entry in overridden] == [("operator", "courier lost it a week")]
