"""The carrier, finance and customer activities against the stand-ins over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.carrier import CarrierActivities
from activities.customers import CustomerActivities
from activities.finance import FinanceActivities
from activities.http import create_http_client
from models.integrations import (
    BookingRef,
    CustomerUpsertInput,
    DraftBookingInput,
    InvoiceInput,
    InvoiceRef,
    NotificationInput,
    PrepareShipmentInput,
    PurchaseInput,
    ShippedNotice,
)
from models.order import Address, Customer, OrderLine, Shipment
from settings import Settings
from standins.app import StandinConfig, create_app
from tests.servers import free_port, running_server

ADDRESS = Address(name="Ada Lovelace", line1="Keizersgracht 1", city="Amsterdam", postal_code="1015", country="NL")
LINES = [OrderLine(sku="WIDGET-1", quantity=2, unit_price=Decimal("19.99"))]
SHIPMENT = PrepareShipmentInput(order_id="order-1", address=ADDRESS, lines=LINES, currency="EUR")
INVOICE = InvoiceInput(order_id="order-1", customer_id="cust-1", lines=LINES, currency="EUR", shipping=Decimal("5.80"))


@dataclass
class Providers:
    control: httpx.AsyncClient
    carrier: CarrierActivities
    finance: FinanceActivities
    customers: CustomerActivities

    async def records(self, kind: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.control.get(f"/_control/records/{kind}")).json()["items"]
        return items

    async def fault(self, **fault: Any) -> None:
        assert (await self.control.put("/_control/faults", json=fault)).is_success

    async def heal(self) -> None:
        assert (await self.control.delete("/_control/faults")).is_success


async def prepare(env: ActivityEnvironment, carrier: CarrierActivities, request: PrepareShipmentInput) -> Shipment:
    """The workflow's shipping preparation: address check and rate quote in one step, then the draft booking."""
    quote = await env.run(carrier.check_address_and_quote, request)
    return await env.run(carrier.draft_booking, DraftBookingInput(shipment=request, quote=quote))


def settings_for(base_url: str, **overrides: Any) -> Settings:
    return Settings(
        carrier_url=f"{base_url}/carrier",
        finance_url=f"{base_url}/finance",
        crm_url=f"{base_url}/crm",
        notifications_url=f"{base_url}/notifications",
        purchasing_url=f"{base_url}/purchasing",
        http_timeout_seconds=2.0,
        **overrides,
    )


@pytest.fixture
async def providers() -> AsyncIterator[Providers]:
    # Tracking would only start after the test is over; nothing listens on the webhook port.
    config = StandinConfig(tracking_delay_seconds=60, webhook_url=f"http://127.0.0.1:{free_port()}/webhooks/carrier")
    async with running_server(create_app(config)) as url:
        settings = settings_for(url)
        async with create_http_client(settings) as http, httpx.AsyncClient(base_url=url) as control:
            yield Providers(
                control=control,
                carrier=CarrierActivities(http, settings),
                finance=FinanceActivities(http, settings),
                customers=CustomerActivities(http, settings),
            )


@pytest.fixture
def env() -> ActivityEnvironment:
    return ActivityEnvironment()


async def test_shipping_preparation_makes_one_draft_booking_with_the_quoted_rate(
    providers: Providers, env: ActivityEnvironment
) -> None:
    shipment = await prepare(env, providers.carrier, SHIPMENT)
    assert shipment.carrier == "standin-express"
    assert shipment.status == "draft"
    assert shipment.rate == Decimal("5.80")
    [booking] = await providers.records("bookings")
    assert (booking["booking_id"], booking["reference"]) == (shipment.booking_id, "order-1")
    assert booking["idempotency_key"] == "order-1:carrier:draft"


async def test_shipping_preparation_run_twice_books_once(providers: Providers, env: ActivityEnvironment) -> None:
    first = await prepare(env, providers.carrier, SHIPMENT)
    second = await prepare(env, providers.carrier, SHIPMENT)
    assert second.booking_id == first.booking_id
    [booking] = await providers.records("bookings")
    assert booking["applied"] == 1


@pytest.mark.parametrize(
    "address", [ADDRESS.model_copy(update={"country": "JP"}), ADDRESS.model_copy(update={"postal_code": "00000"})]
)
async def test_an_undeliverable_address_is_a_non_retryable_refusal(
    providers: Providers, env: ActivityEnvironment, address: Address
) -> None:
    with pytest.raises(ApplicationError) as refused:
        await prepare(env, providers.carrier, SHIPMENT.model_copy(update={"address": address}))
    assert refused.value.type == "AddressUndeliverable"
    assert refused.value.non_retryable
    assert await providers.records("bookings") == []


async def test_a_carrier_outage_is_a_retryable_error_and_books_nothing(
    providers: Providers, env: ActivityEnvironment
) -> None:
    await providers.fault(service="carrier", failure_rate=1.0)
    with pytest.raises(ApplicationError) as failed:
        await prepare(env, providers.carrier, SHIPMENT)
    assert not failed.value.non_retryable
    assert failed.value.type == "ProviderUnavailable"
    assert "503" in failed.value.message
    assert await providers.records("bookings") == []


async def test_an_unreachable_provider_is_a_retryable_error(env: ActivityEnvironment) -> None:
    settings = settings_for(f"http://127.0.0.1:{free_port()}")
    async with create_http_client(settings) as http:
        with pytest.raises(ApplicationError) as failed:
            await env.run(FinanceActivities(http, settings).create_invoice, INVOICE)
    assert not failed.value.non_retryable
    assert failed.value.type == "ProviderUnreachable"


async def test_a_slow_provider_times_out_as_a_retryable_error(providers: Providers, env: ActivityEnvironment) -> None:
    await providers.fault(service="finance", latency_ms=3000)
    with pytest.raises(ApplicationError) as failed:
        await env.run(providers.finance.create_invoice, INVOICE)
    assert not failed.value.non_retryable
    assert failed.value.type == "ProviderUnreachable"


async def test_a_wrong_credential_is_retryable_so_an_operator_can_fix_it(
    providers: Providers, env: ActivityEnvironment
) -> None:
    settings = settings_for(str(providers.control.base_url).rstrip("/"), external_api_key="wrong")
    async with create_http_client(settings) as http:
        with pytest.raises(ApplicationError) as failed:
            await env.run(CustomerActivities(http, settings).notify_customer, notification("shipped"))
    assert not failed.value.non_retryable
    assert "401" in failed.value.message


async def test_confirm_booking_returns_the_tracking_number_once(providers: Providers, env: ActivityEnvironment) -> None:
    shipment = await prepare(env, providers.carrier, SHIPMENT)
    ref = BookingRef(order_id="order-1", booking_id=shipment.booking_id)
    first = await env.run(providers.carrier.confirm_booking, ref)
    second = await env.run(providers.carrier.confirm_booking, ref)
    assert first == second
    assert first.booking_id == shipment.booking_id
    [booking] = await providers.records("bookings")
    assert (booking["status"], booking["tracking_number"]) == ("confirmed", first.tracking_number)
    [confirmation] = booking["history"]
    assert (confirmation["idempotency_key"], confirmation["applied"]) == (
        f"order-1:carrier:confirm:{shipment.booking_id}",
        1,
    )


async def test_a_confirmation_whose_answer_was_lost_is_recovered_by_the_retry(
    providers: Providers, env: ActivityEnvironment
) -> None:
    shipment = await prepare(env, providers.carrier, SHIPMENT)
    ref = BookingRef(order_id="order-1", booking_id=shipment.booking_id)
    await providers.fault(service="carrier", drop_rate=1.0, drop_after_effect=True)
    with pytest.raises(ApplicationError) as lost:
        await env.run(providers.carrier.confirm_booking, ref)
    assert not lost.value.non_retryable
    await providers.heal()

    confirmed = await env.run(providers.carrier.confirm_booking, ref)
    [booking] = await providers.records("bookings")
    assert booking["tracking_number"] == confirmed.tracking_number
    assert [step["applied"] for step in booking["history"]] == [1]


async def test_confirming_a_cancelled_booking_is_a_non_retryable_refusal(
    providers: Providers, env: ActivityEnvironment
) -> None:
    shipment = await prepare(env, providers.carrier, SHIPMENT)
    ref = BookingRef(order_id="order-1", booking_id=shipment.booking_id)
    await env.run(providers.carrier.cancel_booking, ref)
    with pytest.raises(ApplicationError) as refused:
        await env.run(providers.carrier.confirm_booking, ref)
    assert refused.value.non_retryable
    assert refused.value.type == "BookingRefused"


async def test_cancel_booking_is_idempotent_and_an_unknown_booking_counts_as_cancelled(
    providers: Providers, env: ActivityEnvironment
) -> None:
    shipment = await prepare(env, providers.carrier, SHIPMENT)
    ref = BookingRef(order_id="order-1", booking_id=shipment.booking_id)
    await env.run(providers.carrier.cancel_booking, ref)
    await env.run(providers.carrier.cancel_booking, ref)
    await env.run(providers.carrier.cancel_booking, BookingRef(order_id="order-2", booking_id="BK-UNKNOWN"))
    [booking] = await providers.records("bookings")
    assert booking["status"] == "cancelled"
    assert [step["applied"] for step in booking["history"]] == [1]


async def test_a_later_allocation_round_books_afresh_and_each_booking_cancels(
    providers: Providers, env: ActivityEnvironment
) -> None:
    first = await prepare(env, providers.carrier, SHIPMENT)
    await env.run(providers.carrier.cancel_booking, BookingRef(order_id="order-1", booking_id=first.booking_id))
    second = await prepare(env, providers.carrier, SHIPMENT.model_copy(update={"attempt": 2}))
    assert second.booking_id != first.booking_id
    await env.run(providers.carrier.cancel_booking, BookingRef(order_id="order-1", booking_id=second.booking_id))
    bookings = await providers.records("bookings")
    assert sorted((booking["idempotency_key"], booking["status"], booking["applied"]) for booking in bookings) == [
        ("order-1:carrier:draft", "cancelled", 1),
        ("order-1:carrier:draft:2", "cancelled", 1),
    ]


async def test_create_invoice_returns_the_amounts_with_tax(providers: Providers, env: ActivityEnvironment) -> None:
    invoice = await env.run(providers.finance.create_invoice, INVOICE)
    # 2 * 19.99 = 39.98; (39.98 + 5.80) * 0.20 = 9.156
    assert (invoice.subtotal, invoice.tax, invoice.total) == (Decimal("39.98"), Decimal("9.16"), Decimal("54.94"))
    assert (invoice.currency, invoice.status) == ("EUR", "issued")


async def test_create_invoice_retried_after_a_failure_invoices_once(
    providers: Providers, env: ActivityEnvironment
) -> None:
    await providers.fault(service="finance", failure_rate=1.0)
    with pytest.raises(ApplicationError):
        await env.run(providers.finance.create_invoice, INVOICE)
    await providers.heal()
    first = await env.run(providers.finance.create_invoice, INVOICE)
    second = await env.run(providers.finance.create_invoice, INVOICE)
    assert first == second
    [invoice] = await providers.records("invoices")
    assert (invoice["invoice_id"], invoice["applied"]) == (first.invoice_id, 1)
    assert invoice["idempotency_key"] == "order-1:finance:invoice"


async def test_an_invoice_finance_cannot_issue_is_a_non_retryable_refusal(
    providers: Providers, env: ActivityEnvironment
) -> None:
    with pytest.raises(ApplicationError) as refused:
        await env.run(providers.finance.create_invoice, INVOICE.model_copy(update={"currency": "XTS"}))
    assert refused.value.non_retryable
    assert refused.value.type == "InvoiceRefused"
    assert await providers.records("invoices") == []


async def test_void_invoice_is_idempotent_and_an_unknown_invoice_counts_as_void(
    providers: Providers, env: ActivityEnvironment
) -> None:
    invoice = await env.run(providers.finance.create_invoice, INVOICE)
    ref = InvoiceRef(order_id="order-1", invoice_id=invoice.invoice_id)
    await env.run(providers.finance.void_invoice, ref)
    await env.run(providers.finance.void_invoice, ref)
    await env.run(providers.finance.void_invoice, InvoiceRef(order_id="order-2", invoice_id="INV-UNKNOWN"))
    [record] = await providers.records("invoices")
    assert record["status"] == "void"
    assert [step["applied"] for step in record["history"]] == [1]


def notification(event: str) -> NotificationInput:
    return NotificationInput(order_id="order-1", customer_id="cust-1", event=event, detail="tracking SX1")


async def test_customer_activities_reach_crm_and_notifications_once_each(
    providers: Providers, env: ActivityEnvironment
) -> None:
    customer = Customer(id="cust-1", name="Ada Lovelace", email="ada@example.com", phone="+31 20 123 4567")
    purchase = PurchaseInput(
        order_id="order-1", customer_id="cust-1", total=Decimal("39.98"), currency="EUR", skus=["WIDGET-1"]
    )
    for _ in range(2):
        await env.run(providers.customers.upsert_customer, CustomerUpsertInput(order_id="order-1", customer=customer))
        await env.run(providers.customers.record_purchase, purchase)
        await env.run(providers.customers.notify_customer, notification("confirmed"))
        await env.run(providers.customers.notify_customer, notification("shipped"))

    [profile] = await providers.records("customers")
    assert (profile["customer_id"], profile["email"], profile["applied"]) == ("cust-1", "ada@example.com", 1)
    [bought] = await providers.records("purchases")
    assert (bought["order_id"], bought["total"], bought["skus"], bought["applied"]) == (
        "order-1",
        "39.98",
        ["WIDGET-1"],
        1,
    )
    notices = await providers.records("notifications")
    assert sorted((notice["event"], notice["idempotency_key"], notice["applied"]) for notice in notices) == [
        ("confirmed", "order-1:notify:confirmed", 1),
        ("shipped", "order-1:notify:shipped", 1),
    ]


async def test_a_shipped_order_still_notifies_its_customer_while_the_crm_is_down(
    providers: Providers, env: ActivityEnvironment
) -> None:
    purchase = PurchaseInput(
        order_id="order-1", customer_id="cust-1", total=Decimal("39.98"), currency="EUR", skus=["WIDGET-1"]
    )
    shipped = ShippedNotice(purchase=purchase, notification=notification("shipped"))
    await providers.fault(service="crm", failure_rate=1.0)
    with pytest.raises(ApplicationError) as failed:
        await env.run(providers.customers.record_purchase_and_notify, shipped)
    assert not failed.value.non_retryable
    assert await providers.records("purchases") == []
    assert [notice["event"] for notice in await providers.records("notifications")] == ["shipped"]

    # The step's retry once the CRM is back records the purchase; the notice, already sent, is not sent again.
    await providers.heal()
    await env.run(providers.customers.record_purchase_and_notify, shipped)
    [bought] = await providers.records("purchases")
    [notice] = await providers.records("notifications")
    assert (bought["applied"], notice["event"], notice["applied"]) == (1, "shipped", 1)
