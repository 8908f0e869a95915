"""The stand-ins' return side over real HTTP: the carrier's return labels and their tracking, finance's refunds."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.polling import until
from tests.test_standins import INVOICE, Receiver, receiver, records, standin

__all__ = ["receiver", "standin"]

LABEL: dict[str, Any] = {"reference": "order-1", "return_id": "ret-1", "items": [{"sku": "WIDGET-1", "quantity": 1}]}


async def invoice(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/finance/invoices", json=INVOICE, headers={"Idempotency-Key": "order-1:invoice"})
    assert response.status_code == 201
    return dict(response.json())


def refund(invoice_id: str, amount: str) -> dict[str, Any]:
    return {
        "order_id": "order-1",
        "invoice_id": invoice_id,
        "return_id": "ret-1",
        "lines": [{"sku": "WIDGET-1", "quantity": 1, "amount": amount}],
        "amount": amount,
        "currency": "EUR",
    }


async def test_a_return_label_is_issued_once_per_key_and_its_parcel_is_tracked(
    standin: httpx.AsyncClient, receiver: Receiver
) -> None:
    first = await standin.post("/carrier/returns/labels", json=LABEL, headers={"Idempotency-Key": "ret-1:label"})
    again = await standin.post("/carrier/returns/labels", json=LABEL, headers={"Idempotency-Key": "ret-1:label"})

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert first.json()["tracking_number"].startswith("SR")
    await until(lambda: len(receiver.events) == 2, timeout=5, interval=0.02)
    assert [(event["status"], event["order_id"]) for event in receiver.events] == [
        ("in_transit", "order-1"),
        ("delivered", "order-1"),
    ]
    assert {event["tracking_number"] for event in receiver.events} == {first.json()["tracking_number"]}
    assert [label["applied"] for label in await records(standin, "return_labels")] == [1]


async def test_a_voided_return_label_is_tracked_no_further(standin: httpx.AsyncClient, receiver: Receiver) -> None:
    label = (await standin.post("/carrier/returns/labels", json=LABEL, headers={"Idempotency-Key": "l"})).json()

    voided = await standin.post(f"/carrier/returns/labels/{label['label_id']}/void", headers={"Idempotency-Key": "v"})

    assert voided.status_code == 200 and voided.json()["status"] == "void"
    await asyncio.sleep(0.4)
    assert receiver.events == []


async def test_refunds_are_capped_at_what_was_invoiced(standin: httpx.AsyncClient) -> None:
    issued = await invoice(standin)
    # 53.98 invoiced: 50.00 may be refunded, a further 10.00 may not, the 3.98 left may.
    first = await standin.post(
        "/finance/refunds", json=refund(issued["invoice_id"], "50.00"), headers={"Idempotency-Key": "r1"}
    )
    beyond = await standin.post(
        "/finance/refunds", json=refund(issued["invoice_id"], "10.00"), headers={"Idempotency-Key": "r2"}
    )
    rest = await standin.post(
        "/finance/refunds", json=refund(issued["invoice_id"], "3.98"), headers={"Idempotency-Key": "r3"}
    )

    assert first.status_code == 201, first.text
    assert first.json()["credit_note"].startswith("CN-") and first.json()["amount"] == "50.00"
    assert beyond.status_code == 409
    assert beyond.json() == {"error": "refund_exceeds_invoice", "detail": "10.00 asked, 3.98 of 53.98 left to refund"}
    assert rest.status_code == 201
    assert sorted(item["amount"] for item in await records(standin, "refunds")) == ["3.98", "50.00"]


async def test_a_repeated_refund_key_refunds_once(standin: httpx.AsyncClient) -> None:
    issued = await invoice(standin)
    body = refund(issued["invoice_id"], "20.00")

    answers = [
        await standin.post("/finance/refunds", json=body, headers={"Idempotency-Key": "ret-1:refund:1"})
        for _ in range(3)
    ]

    assert {answer.json()["refund_id"] for answer in answers} == {answers[0].json()["refund_id"]}
    assert [(item["amount"], item["applied"]) for item in await records(standin, "refunds")] == [("20.00", 1)]


async def test_a_refund_of_an_unknown_invoice_is_refused(standin: httpx.AsyncClient) -> None:
    response = await standin.post("/finance/refunds", json=refund("INV-NONE", "1.00"), headers={"Idempotency-Key": "x"})

    assert response.status_code == 404
