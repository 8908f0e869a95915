"""The stand-in service over real HTTP: credentials, validation, idempotent replay, tracking webhooks, faults."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from security.signing import SignatureError, sign, verify
from settings import DEV_CREDENTIAL
from standins.app import StandinConfig, create_app
from tests.polling import until
from tests.servers import running_server

CREDENTIAL = {"Authorization": f"Bearer {DEV_CREDENTIAL}"}
CARRIER_SECRET = "carrier-test-secret"
PURCHASING_SECRET = "purchasing-test-secret"
ADDRESS: dict[str, Any] = {
    "name": "Ada Lovelace",
    "line1": "Keizersgracht 1",
    "city": "Amsterdam",
    "postal_code": "1015",
    "country": "NL",
}
ITEMS = [{"sku": "WIDGET-1", "quantity": 2}]
BOOKING: dict[str, Any] = {
    "reference": "order-1",
    "address": ADDRESS,
    "items": ITEMS,
    "service": "standard",
    "rate": "5.80",
    "currency": "EUR",
}
INVOICE: dict[str, Any] = {
    "order_id": "order-1",
    "customer_id": "cust-1",
    "lines": [{"sku": "WIDGET-1", "quantity": 2, "unit_price": "19.99"}],
    "currency": "EUR",
    "shipping": "5.00",
}


class Receiver:
    """Our webhook as the carrier sees it: records each event, failing the first `failures` attempts."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.attempts = 0
        self.failures = 0
        # For every attempt, whether it was signed with the carrier's secret (or why not).
        self.signatures: list[str] = []
        self.url = ""
        self.app = FastAPI()

        @self.app.post("/webhooks/carrier")
        async def webhook(request: Request) -> Response:
            body = await request.body()
            try:
                verify(CARRIER_SECRET, request.headers, body, tolerance_seconds=300)
                self.signatures.append("valid")
            except SignatureError as error:
                self.signatures.append(str(error))
            self.attempts += 1
            if self.attempts <= self.failures:
                return Response(status_code=503)
            self.events.append(json.loads(body))
            return Response(status_code=202)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with running_server(receiver.app) as url:
        receiver.url = url
        yield receiver


@pytest.fixture
async def standin(receiver: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    config = StandinConfig(
        webhook_url=f"{receiver.url}/webhooks/carrier",
        tracking_delay_seconds=0.1,
        webhook_backoff_seconds=0.05,
        webhook_secret=CARRIER_SECRET,
        purchasing_webhook_secret=PURCHASING_SECRET,
    )
    async with running_server(create_app(config)) as url, httpx.AsyncClient(base_url=url, headers=CREDENTIAL) as client:
        yield client


async def records(client: httpx.AsyncClient, kind: str) -> list[dict[str, Any]]:
    response = await client.get(f"/_control/records/{kind}")
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def book(client: httpx.AsyncClient, key: str = "order-1:carrier:draft", **changes: Any) -> httpx.Response:
    return await client.post("/carrier/bookings", json={**BOOKING, **changes}, headers={"Idempotency-Key": key})


PROVIDER_CALLS = [
    ("POST", "/carrier/addresses/validate", {"address": ADDRESS}),
    ("POST", "/carrier/rates", {"address": ADDRESS, "items": ITEMS}),
    ("POST", "/carrier/bookings", BOOKING),
    ("GET", "/carrier/bookings/BK-1", None),
    ("POST", "/finance/invoices", INVOICE),
    ("PUT", "/crm/customers/cust-1", {"name": "Ada", "email": "ada@example.com", "phone": "+31 20 123"}),
    ("POST", "/notifications", {"order_id": "order-1", "customer_id": "cust-1", "event": "shipped"}),
    ("POST", "/purchasing/shortages", {"sku": "W", "order_id": "o", "quantity": 1, "outstanding_quantity": 1}),
]


@pytest.mark.parametrize(("method", "path", "body"), PROVIDER_CALLS)
async def test_provider_endpoints_refuse_a_missing_or_wrong_credential(
    standin: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer not-the-key"}, {"Authorization": "Basic x"}):
        response = await standin.request(method, path, json=body, headers={**headers, "Idempotency-Key": "k"})
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/carrier/bookings", {**BOOKING, "items": [{"sku": "WIDGET-1", "quantity": 0}]}),
        ("/carrier/bookings", {**BOOKING, "address": {**ADDRESS, "country": "Netherlands"}}),
        ("/carrier/rates", {"address": ADDRESS, "items": []}),
        ("/finance/invoices", {**INVOICE, "lines": [{"sku": "W", "quantity": 1, "unit_price": "-1.00"}]}),
        ("/finance/invoices", {**INVOICE, "currency": "euro"}),
        ("/notifications", {"order_id": "order-1", "customer_id": "cust-1"}),
        ("/purchasing/shortages", {"sku": "W", "order_id": "o", "quantity": "many", "outstanding_quantity": 1}),
    ],
)
async def test_invalid_bodies_are_refused_and_change_nothing(
    standin: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    response = await standin.post(path, json=body, headers={"Idempotency-Key": "k"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    for kind in ("bookings", "invoices", "notifications", "shortages"):
        assert await records(standin, kind) == []


async def test_a_mutating_call_without_idempotency_key_is_refused(standin: httpx.AsyncClient) -> None:
    response = await standin.post("/carrier/bookings", json=BOOKING)
    assert response.status_code == 400
    assert response.json()["error"] == "idempotency_key_missing"
    assert await records(standin, "bookings") == []


async def test_the_same_key_and_body_replays_the_first_answer_without_a_second_effect(
    standin: httpx.AsyncClient,
) -> None:
    first = await book(standin)
    again = await book(standin)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    [booking] = await records(standin, "bookings")
    assert booking["booking_id"] == first.json()["booking_id"]
    assert booking["idempotency_key"] == "order-1:carrier:draft"
    assert booking["applied"] == 1


async def test_the_same_key_with_another_body_is_refused(standin: httpx.AsyncClient) -> None:
    await book(standin)
    response = await book(standin, rate="99.00")
    assert response.status_code == 422
    assert response.json()["error"] == "idempotency_key_reused"
    [booking] = await records(standin, "bookings")
    assert booking["rate"] == "5.80"


async def test_concurrent_calls_with_one_key_apply_the_effect_once(standin: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(*(book(standin) for _ in range(10)))
    assert {response.json()["booking_id"] for response in responses} == {responses[0].json()["booking_id"]}
    [booking] = await records(standin, "bookings")
    assert booking["applied"] == 1


async def test_an_undeliverable_address_is_reported_and_cannot_be_booked(standin: httpx.AsyncClient) -> None:
    for address in ({**ADDRESS, "country": "JP"}, {**ADDRESS, "postal_code": "00000"}):
        check = await standin.post("/carrier/addresses/validate", json={"address": address})
        assert check.json()["deliverable"] is False
        assert check.json()["reason"]
        refused = await book(standin, key=f"draft-{address['country']}-{address['postal_code']}", address=address)
        assert refused.status_code == 422
        assert refused.json()["error"] == "address_undeliverable"
    assert (await standin.post("/carrier/addresses/validate", json={"address": ADDRESS})).json() == {
        "deliverable": True,
        "reason": None,
    }
    assert await records(standin, "bookings") == []


async def test_a_rate_is_quoted_as_a_decimal_string(standin: httpx.AsyncClient) -> None:
    response = await standin.post("/carrier/rates", json={"address": ADDRESS, "items": ITEMS, "currency": "EUR"})
    assert response.status_code == 200
    assert response.json() == {"service": "standard", "rate": "5.80", "currency": "EUR"}


async def test_a_confirmed_booking_reports_in_transit_then_delivered_to_the_webhook(
    standin: httpx.AsyncClient, receiver: Receiver
) -> None:
    booking_id = (await book(standin)).json()["booking_id"]
    confirmed = await standin.post(f"/carrier/bookings/{booking_id}/confirm", headers={"Idempotency-Key": "c"})
    assert confirmed.status_code == 200
    assert confirmed.json()["status"] == "confirmed"
    tracking_number = confirmed.json()["tracking_number"]
    assert tracking_number

    await until(lambda: len(receiver.events) == 2, timeout=5, interval=0.02)
    assert [event["status"] for event in receiver.events] == ["in_transit", "delivered"]
    assert receiver.signatures == ["valid", "valid"]
    assert {event["order_id"] for event in receiver.events} == {"order-1"}
    assert {event["tracking_number"] for event in receiver.events} == {tracking_number}
    assert len({event["event_id"] for event in receiver.events}) == 2
    assert all(event["at"].endswith("+00:00") for event in receiver.events)
    assert (await standin.get(f"/carrier/bookings/{booking_id}")).json()["status"] == "delivered"

    too_late = await standin.post(f"/carrier/bookings/{booking_id}/cancel", headers={"Idempotency-Key": "x"})
    assert too_late.status_code == 409


async def test_a_failing_webhook_is_retried_until_it_takes_the_event(
    standin: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.failures = 2
    booking_id = (await book(standin)).json()["booking_id"]
    await standin.post(f"/carrier/bookings/{booking_id}/confirm", headers={"Idempotency-Key": "c"})
    await until(lambda: len(receiver.events) == 2, timeout=5, interval=0.02)
    assert [event["status"] for event in receiver.events] == ["in_transit", "delivered"]
    assert receiver.attempts == 4
    assert receiver.signatures == ["valid"] * 4


async def test_a_cancelled_booking_sends_no_tracking_and_cannot_be_confirmed(
    standin: httpx.AsyncClient, receiver: Receiver
) -> None:
    booking_id = (await book(standin)).json()["booking_id"]
    cancelled = await standin.post(f"/carrier/bookings/{booking_id}/cancel", headers={"Idempotency-Key": "x"})
    assert cancelled.json() == {**cancelled.json(), "booking_id": booking_id, "status": "cancelled"}
    refused = await standin.post(f"/carrier/bookings/{booking_id}/confirm", headers={"Idempotency-Key": "c"})
    assert refused.status_code == 409
    await asyncio.sleep(0.3)
    assert receiver.events == []


async def test_an_invoice_carries_tax_on_goods_and_shipping(standin: httpx.AsyncClient) -> None:
    response = await standin.post("/finance/invoices", json=INVOICE, headers={"Idempotency-Key": "i"})
    assert response.status_code == 201
    invoice = response.json()
    # (39.98 + 5.00) * 0.20 = 8.996
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == ("39.98", "9.00", "53.98")
    assert invoice["status"] == "issued"

    voided = await standin.post(f"/finance/invoices/{invoice['invoice_id']}/void", headers={"Idempotency-Key": "v"})
    assert voided.json() == {"invoice_id": invoice["invoice_id"], "status": "void"}
    unknown = await standin.post("/finance/invoices/INV-NONE/void", headers={"Idempotency-Key": "v2"})
    assert unknown.status_code == 404


async def test_tax_rounds_half_up_to_the_cent() -> None:
    config = StandinConfig(tax_rate=Decimal("0.25"))
    body = {**INVOICE, "lines": [{"sku": "W", "quantity": 1, "unit_price": "10.10"}], "shipping": "0.00"}
    async with running_server(create_app(config)) as url, httpx.AsyncClient(base_url=url, headers=CREDENTIAL) as client:
        invoice = (await client.post("/finance/invoices", json=body, headers={"Idempotency-Key": "i"})).json()
    # 10.10 * 0.25 = 2.525: half-up gives 2.53 where banker's rounding would give 2.52.
    assert (invoice["tax"], invoice["total"]) == ("2.53", "12.63")


async def test_crm_notifications_and_purchasing_take_note_once_per_key(standin: httpx.AsyncClient) -> None:
    calls = [
        ("PUT", "/crm/customers/cust-1", {"name": "Ada", "email": "ada@example.com", "phone": "+31 20 123"}),
        (
            "POST",
            "/crm/customers/cust-1/purchases",
            {"order_id": "order-1", "total": "39.98", "currency": "EUR", "skus": ["WIDGET-1"]},
        ),
        ("POST", "/notifications", {"order_id": "order-1", "customer_id": "cust-1", "event": "shipped"}),
        (
            "POST",
            "/purchasing/shortages",
            {"sku": "W", "order_id": "order-1", "quantity": 3, "outstanding_quantity": 5},
        ),
    ]
    for method, path, body in calls * 2:
        response = await standin.request(method, path, json=body, headers={"Idempotency-Key": f"{method}{path}"})
        assert response.is_success
    for kind in ("customers", "purchases", "notifications", "shortages"):
        [record] = await records(standin, kind)
        assert record["applied"] == 1
    [customer] = await records(standin, "customers")
    assert customer["email"] == "ada@example.com"


async def test_the_purchasing_inbox_notes_whether_a_notice_was_signed_with_its_secret(
    standin: httpx.AsyncClient,
) -> None:
    notice = {"sku": "W", "order_id": "order-1", "quantity": 3, "outstanding_quantity": 5}
    body = json.dumps(notice).encode()
    sent = [
        ("signed", sign(PURCHASING_SECRET, body)),
        ("unsigned", {}),
        ("wrong-secret", sign("another-secret", body)),
        ("stale", sign(PURCHASING_SECRET, body, now=time.time() - 600)),
    ]
    for key, signature in sent:
        headers = {"Content-Type": "application/json", "Idempotency-Key": key, **signature}
        assert (await standin.post("/purchasing/shortages", content=body, headers=headers)).status_code == 202

    noted = {record["idempotency_key"]: record for record in await records(standin, "shortages")}
    assert {key: record["signature_valid"] for key, record in noted.items()} == {
        "signed": True,
        "unsigned": False,
        "wrong-secret": False,
        "stale": False,
    }
    assert noted["signed"]["signature_problem"] is None
    assert "required" in noted["unsigned"]["signature_problem"]
    assert "does not match" in noted["wrong-secret"]["signature_problem"]
    assert "s old" in noted["stale"]["signature_problem"]


async def test_an_injected_failure_answers_503_and_changes_nothing(standin: httpx.AsyncClient) -> None:
    await standin.put("/_control/faults", json={"service": "carrier", "failure_rate": 1.0})
    await standin.put("/_control/faults", json={"service": "finance", "failure_rate": 1.0})
    assert (await book(standin)).status_code == 503
    assert (await standin.post("/finance/invoices", json=INVOICE, headers={"Idempotency-Key": "i"})).status_code == 503
    notified = await standin.post(
        "/notifications",
        json={"order_id": "o", "customer_id": "c", "event": "shipped"},
        headers={"Idempotency-Key": "n"},
    )
    assert notified.status_code == 202
    assert await records(standin, "bookings") == []
    assert await records(standin, "invoices") == []

    assert (await standin.delete("/_control/faults")).status_code == 204
    assert (await book(standin)).status_code == 201
    [booking] = await records(standin, "bookings")
    assert booking["applied"] == 1


async def test_injected_latency_delays_the_answer(standin: httpx.AsyncClient) -> None:
    await standin.put("/_control/faults", json={"service": "*", "latency_ms": 300})
    started = time.monotonic()
    response = await standin.post("/carrier/addresses/validate", json={"address": ADDRESS})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


async def test_a_latency_spike_holds_up_the_calls_it_strikes(standin: httpx.AsyncClient) -> None:
    await standin.put("/_control/faults", json={"service": "carrier", "spike_rate": 1.0, "spike_ms": 400})
    started = time.monotonic()
    spiked = await standin.post("/carrier/addresses/validate", json={"address": ADDRESS})
    spiked_seconds = time.monotonic() - started
    started = time.monotonic()
    spared = await standin.post("/finance/invoices", json=INVOICE, headers={"Idempotency-Key": "i"})
    spared_seconds = time.monotonic() - started

    assert (spiked.status_code, spared.status_code) == (200, 201)
    assert spiked_seconds >= 0.4
    assert spared_seconds < 0.4


async def test_the_faults_that_struck_are_counted_by_service_and_kind(standin: httpx.AsyncClient) -> None:
    await standin.put("/_control/faults", json={"service": "carrier", "failure_rate": 1.0})
    await standin.put("/_control/faults", json={"service": "finance", "drop_rate": 1.0})
    assert [(await book(standin)).status_code for _ in range(2)] == [503, 503]
    with pytest.raises(httpx.TransportError):
        await standin.post("/finance/invoices", json=INVOICE, headers={"Idempotency-Key": "i"})

    answer = (await standin.get("/_control/faults")).json()

    assert answer["struck"] == {"carrier": {"failure": 2}, "finance": {"drop": 1}}
    assert sorted(fault["service"] for fault in answer["faults"]) == ["carrier", "finance"]


async def test_a_dropped_connection_leaves_the_client_without_an_answer(standin: httpx.AsyncClient) -> None:
    await standin.put("/_control/faults", json={"service": "carrier", "drop_rate": 1.0})
    with pytest.raises(httpx.TransportError):
        await book(standin)
    assert await records(standin, "bookings") == []


async def test_an_answer_lost_after_the_effect_is_recovered_by_retrying_with_the_same_key(
    standin: httpx.AsyncClient,
) -> None:
    await standin.put("/_control/faults", json={"service": "carrier", "drop_rate": 1.0, "drop_after_effect": True})
    with pytest.raises(httpx.TransportError):
        await book(standin)
    await standin.delete("/_control/faults")
    retried = await book(standin)
    [booking] = await records(standin, "bookings")
    assert retried.json()["booking_id"] == booking["booking_id"]
    assert booking["applied"] == 1


async def test_reset_clears_records_and_faults(standin: httpx.AsyncClient) -> None:
    await book(standin)
    await standin.put("/_control/faults", json={"service": "finance", "failure_rate": 1.0})
    assert (await standin.post("/finance/invoices", json=INVOICE, headers={"Idempotency-Key": "i"})).status_code == 503
    assert (await standin.post("/_control/reset")).status_code == 204
    assert await records(standin, "bookings") == []
    assert (await standin.get("/_control/faults")).json() == {"faults": [], "struck": {}}
    assert (await standin.post("/finance/invoices", json=INVOICE, headers={"Idempotency-Key": "i"})).status_code == 201
    # The ledger went too: the old key books afresh.
    assert (await book(standin)).status_code == 201
    assert len(await records(standin, "bookings")) == 1


async def test_control_rejects_an_unknown_service_or_record_kind(standin: httpx.AsyncClient) -> None:
    assert (await standin.put("/_control/faults", json={"service": "bank", "failure_rate": 1.0})).status_code == 422
    assert (await standin.put("/_control/faults", json={"service": "*", "failure_rate": 2})).status_code == 422
    assert (await standin.get("/_control/records/secrets")).status_code == 422
