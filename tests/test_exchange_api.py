"""An exchange through the whole service: the API, the real worker on the Temporal dev server, PostgreSQL and
the stand-ins over real HTTP (tests/stack.py). A delivered order's goods come back, a replacement order is
placed through the order path at no charge, skips review, takes the restocked unit and is delivered."""

from __future__ import annotations

from decimal import Decimal

from tests.stack import Stack
from tests.test_returns_api import delivered_order, wait_for_return


async def test_an_exchange_places_a_replacement_order_that_is_delivered_and_linked_both_ways(stack: Stack) -> None:
    order_id, mug, _ = await delivered_order(stack)
    body = {"lines": [{"sku": mug, "quantity": 1, "reason": "damaged"}], "resolution": "exchange"}
    asked = await stack.api.post(f"/orders/{order_id}/returns", json=body, headers={"Idempotency-Key": "swap-1"})
    assert asked.status_code == 202, asked.text
    return_id = asked.json()["return_id"]
    await wait_for_return(stack, return_id, "in_transit")

    received = await stack.operator.post(
        f"/returns/{return_id}/receipt",
        json={"warehouse": "AMS", "lines": [{"sku": mug, "quantity": 1, "condition": "resellable"}]},
    )
    assert received.status_code == 200, received.text
    closed = await wait_for_return(stack, return_id, "closed")

    assert closed["resolution"] == "exchange" and closed["refund"] is None
    assert [e["status"] for e in closed["timeline"]][-2:] == ["exchanged", "closed"]
    replacement_id = closed["replacement_order_id"]
    assert replacement_id is not None
    replacement = await stack.wait_for_status(replacement_id, "delivered")
    assert replacement["replacement_for"] == order_id
    assert [(line["sku"], line["quantity"], line["unit_price"]) for line in replacement["lines"]] == [(mug, 1, "0.00")]
    assert Decimal(replacement["total"]) == 0
    assert replacement["review"]["reviewed_by"] == "exchange"
    assert replacement["customer"]["id"] == "cust-77"
    assert "pending_review" not in [e["status"] for e in replacement["timeline"]]
    # The returned mug went back on the shelf and left again with the replacement; nothing was refunded.
    assert (await stack.stock(mug))["on_hand"] == 0
    assert [r for r in await stack.records("refunds") if r["order_id"] == order_id] == []
    original = await stack.order(order_id)
    assert original["returns"] == [{"return_id": return_id, "status": "closed"}]
    assert original["refunds"] == [] and Decimal(original["refunded_total"]) == 0
    assert [line["returned_quantity"] for line in original["lines"] if line["sku"] == mug] == [1]
    # The shop sees its replacement as its own order.
    assert (await stack.api.get(f"/orders/{replacement_id}")).status_code == 200
