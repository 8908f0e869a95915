"""Customer data at rest outside Temporal: the database keeps it encrypted, the logs never hold it.

The order record in PostgreSQL is read raw, as someone with a copy of the database would read it;
the logs are what every process of a full run through the stack wrote, captured as rendered.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import orders, personal
from models.order import Address, Customer, OrderLine, OrderRequest, OrderState, OrderStatus, TimelineEvent
from models.records import RecordOrderInput, StatusChangeInput
from models.tables import Base, OrderRow
from security.keyring import DecryptionFailed
from tests.conftest import TEST_KEYRING, capturing_logs
from tests.personal import order_body, personal_details
from tests.stack import Stack

Sessions = async_sessionmaker[AsyncSession]


def found(details: dict[str, str], haystack: str) -> list[str]:
    return [name for name, value in details.items() if value in haystack]


def new_sku() -> str:
    return f"PII-{uuid.uuid4().hex[:8].upper()}"


# The database


def test_every_detail_of_the_customer_but_the_id_and_the_whole_address_are_kept_encrypted() -> None:
    encrypted = set(personal.PERSONAL)

    assert {("customer", name) for name in Customer.model_fields if name != "id"} <= encrypted
    assert ("shipping_address",) in encrypted
    assert not {name for name in OrderState.model_fields if name.endswith("address")} - {path[0] for path in encrypted}


async def test_the_orders_table_holds_the_customers_data_only_as_ciphertext(
    stack: Stack, sessionmaker: Sessions
) -> None:
    details = personal_details()
    sku = new_sku()
    await stack.count_stock(sku, 2)
    order_id = await stack.place_order(order_body(details, sku))
    await stack.wait_for_status(order_id, "delivered")

    async with sessionmaker() as session:
        state, pii = (
            await session.execute(
                text("SELECT state::text, pii FROM orders WHERE order_id = :order_id"), {"order_id": order_id}
            )
        ).one()
        every_row = [
            str(row)
            for table in Base.metadata.sorted_tables
            for row in (await session.scalars(text(f"SELECT t::text FROM {table.name} t"))).all()
        ]

    assert found(details, state) == []
    assert found(details, pii) == []
    assert pii.startswith(f"v1:{TEST_KEYRING.active_id}:")
    assert json.loads(state)["customer"] == {"id": "cust-pii"}
    assert found(details, "\n".join(every_row)) == []
    order = await stack.order(order_id)
    assert order["customer"] == {
        "id": "cust-pii",
        "name": details["name"],
        "email": details["email"],
        "phone": details["phone"],
    }
    assert order["shipping_address"] == order_body(details, sku)["shipping_address"]


def stored_state(order_id: str) -> OrderState:
    at = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    request = OrderRequest(
        customer=Customer(id="c-1", name="Ada Lovelace", email="ada@example.com", phone="+44 20 7946 0000"),
        lines=[OrderLine(sku="SKU-A", quantity=1, unit_price=Decimal("10.00"))],
        shipping_address=Address(name="Ada", line1="1 Main St", city="London", postal_code="N1", country="GB"),
    )
    return OrderState.received(order_id, f"order-{order_id}", request, at).model_copy(
        update={"status": OrderStatus.ALLOCATING}
    )


async def record(sessionmaker: Sessions, state: OrderState) -> None:
    request = OrderRequest(
        customer=state.customer,
        lines=[OrderLine(sku=line.sku, quantity=line.quantity, unit_price=line.unit_price) for line in state.lines],
        shipping_address=state.shipping_address,
    )
    received = RecordOrderInput(
        order_id=state.order_id, workflow_id=state.workflow_id, request=request, received_at=state.created_at
    )
    event = TimelineEvent(seq=1, at=state.created_at, status=state.status, actor="workflow", event="allocating")
    async with sessionmaker.begin() as session:
        await orders.record_order(session, received, TEST_KEYRING)
        await orders.record_status(session, StatusChangeInput.of(state, event), TEST_KEYRING)


async def test_an_order_recorded_before_encryption_still_reads_in_full(sessionmaker: Sessions) -> None:
    state = stored_state("o-legacy")
    await record(sessionmaker, state)
    async with sessionmaker.begin() as session:
        # As rows were written before personal data was split off: all in `state`, nothing in `pii`.
        await session.execute(
            update(OrderRow)
            .where(OrderRow.order_id == "o-legacy")
            .values(state=state.model_dump(mode="json"), pii=None)
        )

    async with sessionmaker() as session:
        read = await orders.get_order(session, "o-legacy", TEST_KEYRING)

    assert read is not None
    assert (read.customer, read.shipping_address) == (state.customer, state.shipping_address)


async def test_personal_data_copied_onto_another_order_is_refused(sessionmaker: Sessions) -> None:
    await record(sessionmaker, stored_state("o-1"))
    await record(sessionmaker, stored_state("o-2"))
    async with sessionmaker.begin() as session:
        theirs = await session.scalar(select(OrderRow.pii).where(OrderRow.order_id == "o-1"))
        await session.execute(update(OrderRow).where(OrderRow.order_id == "o-2").values(pii=theirs))

    async with sessionmaker() as session:
        with pytest.raises(DecryptionFailed):
            await orders.get_order(session, "o-2", TEST_KEYRING)


# The logs


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    with capturing_logs("DEBUG") as lines:
        yield lines


async def test_a_full_run_through_the_stack_logs_no_personal_data(captured_logs: io.StringIO, stack: Stack) -> None:
    delivered, undeliverable = personal_details(), personal_details()
    sku = new_sku()
    await stack.count_stock(sku, 5)

    first = await stack.place_order(order_body(delivered, sku))
    # The carrier refuses this address: the failure path logs too.
    second = await stack.place_order(order_body(undeliverable, sku, postal_code="00000"))
    await stack.wait_for_status(first, "delivered")
    await stack.wait_for_status(second, "failed")
    await stack.order(first)

    logged = captured_logs.getvalue()
    lines = [json.loads(line) for line in logged.splitlines()]
    assert any(line.get("order_id") == first for line in lines)
    assert any(line["level"] == "debug" for line in lines)
    assert found(delivered, logged) == []
    assert found(undeliverable, logged) == []
