"""A change's new booking at the carrier stand-in over real HTTP: drafted afresh once per revision."""

from __future__ import annotations

from temporalio.testing import ActivityEnvironment

from models.order import Address
from tests.test_integrations import SHIPMENT, Providers, env, prepare, providers

__all__ = ["env", "providers"]

PARIS = Address(name="Ada Lovelace", line1="1 Rue de Rivoli", city="Paris", postal_code="75001", country="FR")


async def test_a_change_drafts_a_booking_of_its_own_once_per_revision(
    providers: Providers, env: ActivityEnvironment
) -> None:
    placed = await prepare(env, providers.carrier, SHIPMENT)
    changed = SHIPMENT.model_copy(update={"address": PARIS, "revision": 2})

    first = await prepare(env, providers.carrier, changed)
    repeated = await prepare(env, providers.carrier, changed)

    assert first.booking_id == repeated.booking_id != placed.booking_id
    bookings = {booking["idempotency_key"]: booking for booking in await providers.records("bookings")}
    assert sorted(bookings) == ["order-1:carrier:draft", "order-1:carrier:draft:r2"]
    assert bookings["order-1:carrier:draft:r2"]["address"]["city"] == "Paris"
