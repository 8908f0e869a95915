"""Return and refund events reach webhook subscribers as order events do: through the whole service (the API,
the real worker on the Temporal dev server, PostgreSQL, the stand-ins), signed, once each, nothing personal,
and only those a subscription names."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tests.servers import running_server
from tests.stack import Stack, running_stack
from tests.test_returns_api import delivered_order, wait_for_return
from tests.test_webhook_delivery import FAST_WEBHOOKS, Admin, Subscriber, until_taken

AFTER_SALES = ["return.received", "return.closed", "refund.refunded"]


@pytest.fixture
async def receiver() -> AsyncIterator[Subscriber]:
    subscriber = Subscriber()
    async with running_server(subscriber.app()) as url:
        subscriber.url = url
        yield subscriber


@pytest.fixture
async def hooked_stack(
    dev_server_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    task_queue: str,
) -> AsyncIterator[Stack]:
    async with running_stack(
        dev_server_env.client, database_url, sessionmaker, task_queue, settings=FAST_WEBHOOKS
    ) as stack:
        yield stack


async def test_subscribers_get_each_status_change_of_a_return_and_of_its_refunds_once_signed(
    hooked_stack: Stack, receiver: Subscriber
) -> None:
    stack = hooked_stack
    admin = await Admin.of(stack)
    await admin.subscribe(receiver, "everything")
    await admin.subscribe(receiver, "after-sales", AFTER_SALES)
    order_id, mug, _ = await delivered_order(stack)

    asked = await stack.api.post(
        f"/orders/{order_id}/returns", json={"lines": [{"sku": mug, "quantity": 1, "reason": "damaged"}]}
    )
    return_id = asked.json()["return_id"]
    await wait_for_return(stack, return_id, "in_transit")
    await stack.operator.post(
        f"/returns/{return_id}/receipt",
        json={"warehouse": "AMS", "lines": [{"sku": mug, "quantity": 1, "condition": "resellable"}]},
    )
    await wait_for_return(stack, return_id, "closed")
    goodwill = await stack.operator.post(
        f"/orders/{order_id}/refunds", json={"amount": "5.00", "reason": "late"}, headers={"Idempotency-Key": "gw"}
    )
    refund_id = goodwill.json()["refund_id"]

    # The order's own events, then the return's seven statuses, its refund's two and the goodwill refund's two.
    order = await stack.order(order_id)
    taken = await until_taken(receiver, "everything", len(order["timeline"]) + 11)
    picked = await until_taken(receiver, "after-sales", 4)

    kinds = sorted(item.payload.get("type", "order") for item in taken)
    return_statuses = ["requested", "approved", "label_issued", "in_transit", "received", "refunded", "closed"]
    assert [kind for kind in kinds if kind.startswith("return.")] == sorted(f"return.{s}" for s in return_statuses)
    assert [kind for kind in kinds if kind.startswith("refund.")] == ["refund.refunded"] * 2 + ["refund.requested"] * 2
    assert kinds.count("order") == len(order["timeline"])
    refunds = {(item.payload["refund_id"], item.payload["type"]) for item in taken if "refund_id" in item.payload}
    assert (refund_id, "refund.refunded") in refunds
    assert all(item.payload["order_id"] == order_id for item in taken)
    assert sorted(item.payload["type"] for item in picked) == [
        "refund.refunded",
        "refund.refunded",
        "return.closed",
        "return.received",
    ]
    # Signed, once each, and nothing personal: no name, email or phone of the customer.
    assert all(item.signed for item in receiver.received)
    assert len({item.delivery_id for item in receiver.received}) == len(receiver.received)
    personal = [order["customer"]["name"], order["customer"]["email"], order["customer"]["phone"]]
    assert not [item for item in taken if any(value and value in str(item.payload) for value in personal)]
