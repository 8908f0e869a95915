"""Order records as operators read them: one row per order, the newest status, a complete timeline, stable pages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.combined import IntakeActivities
from activities.orders import OrderRecordActivities
from activities.review import ReviewActivities
from db import orders, personal
from db.engine import create_engine, create_sessionmaker
from db.migrate import upgrade
from db.webhooks import create_subscription
from models.order import (
    Allocation,
    Invoice,
    OrderFilter,
    OrderRequest,
    OrderState,
    OrderStatus,
    ReviewDecision,
    Shipment,
    TimelineEvent,
)
from models.records import LineAllocations, RecordOrderInput, ReviewInput, StatusChangeInput
from models.tables import IdempotencyKeyRow, OrderLineRow, OrderRow, WebhookOutboxRow
from settings import Settings
from tests import builders
from tests.builders import line
from tests.conftest import TEST_KEYRING

Sessions = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def order_request(customer_id: str = "c-1", skus: tuple[str, ...] = ("SKU-A", "SKU-B")) -> OrderRequest:
    return builders.order_request(
        lines=[line(sku, n + 1, "10.00") for n, sku in enumerate(skus)], customer={"id": customer_id}
    )


def received(order_id: str, at: datetime = T0, **kwargs: object) -> RecordOrderInput:
    return RecordOrderInput(
        order_id=order_id,
        workflow_id=f"order-{order_id}",
        request=order_request(**kwargs),  # type: ignore[arg-type]
        received_at=at,
    )


def change(
    order_id: str, seq: int, status: OrderStatus, created_at: datetime = T0, version: int = 0, event: str | None = None
) -> StatusChangeInput:
    request = order_request()
    at = created_at + timedelta(minutes=seq)
    return StatusChangeInput.of(
        OrderState.received(order_id, f"order-{order_id}", request, created_at).model_copy(
            update={"status": status, "updated_at": at}
        ),
        TimelineEvent(seq=seq, at=at, status=status, actor="workflow", event=event or f"step-{seq}"),
        version=version,
    )


async def count(sessionmaker: Sessions, column: object) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(column)) or 0)  # type: ignore[arg-type]


async def test_recording_an_order_twice_leaves_one_row_with_its_lines(sessionmaker: Sessions) -> None:
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)

    await records.record_order(received("o-1", skus=("SKU-B", "SKU-A", "SKU-C")))
    await records.record_order(received("o-1", skus=("SKU-B", "SKU-A", "SKU-C")))
    await asyncio.gather(*(records.record_order(received("o-2")) for _ in range(5)))

    async with sessionmaker() as session:
        row = (await session.execute(select(OrderRow).where(OrderRow.order_id == "o-1"))).scalar_one()
        lines = (
            await session.execute(
                select(OrderLineRow.line_no, OrderLineRow.sku, OrderLineRow.quantity)
                .where(OrderLineRow.order_id == "o-1")
                .order_by(OrderLineRow.line_no)
            )
        ).all()
        assert await orders.get_order(session, "o-1", TEST_KEYRING) is None
    assert (row.status, row.last_seq, row.customer_id, row.total) == ("received", 0, "c-1", 60)
    # The order as received is kept from the start; it is reported once its first status is written.
    assert row.state is not None and row.state["status"] == "received" and "customer" in row.state
    assert [tuple(line) for line in lines] == [(1, "SKU-B", 1), (2, "SKU-A", 2), (3, "SKU-C", 3)]
    assert await count(sessionmaker, OrderRow) == 2
    assert await count(sessionmaker, OrderLineRow) == 5


async def test_an_order_recorded_with_its_first_entry_and_reviewed_in_one_step_is_written_once(
    sessionmaker: Sessions,
) -> None:
    records, review = OrderRecordActivities(sessionmaker, TEST_KEYRING), ReviewActivities(sessionmaker, Settings())
    first = change("o-1", 1, OrderStatus.RECEIVED, event="order received")
    request = received("o-1").model_copy(update={"first_entry": first})

    outcomes = [await IntakeActivities(records, review).record_and_review(request) for _ in range(2)]

    # The rules' answer as the review step alone gives it (these SKUs are not in the catalogue: rejected).
    alone = await review.review_order(ReviewInput(order_id="o-1", request=request.request))
    assert outcomes == [alone, alone] and alone.decision is ReviewDecision.REJECTED
    async with sessionmaker() as session:
        state = await orders.get_order(session, "o-1", TEST_KEYRING)
    assert state is not None and state.status is OrderStatus.RECEIVED
    assert [(e.seq, e.status, e.event) for e in state.timeline] == [(1, OrderStatus.RECEIVED, "order received")]
    assert await count(sessionmaker, OrderLineRow) == 2


async def test_the_newest_status_wins_whatever_order_changes_arrive_in(sessionmaker: Sessions) -> None:
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)
    await records.record_order(received("o-1"))

    await records.record_status(change("o-1", 1, OrderStatus.ALLOCATING))
    await records.record_status(change("o-1", 3, OrderStatus.SHIPPED))
    await records.record_status(change("o-1", 2, OrderStatus.FULFILLING))
    await records.record_status(change("o-1", 3, OrderStatus.SHIPPED))
    await records.record_status(change("o-1", 1, OrderStatus.ALLOCATING))

    async with sessionmaker() as session:
        state = await orders.get_order(session, "o-1", TEST_KEYRING)
        last_seq = await session.scalar(select(OrderRow.last_seq).where(OrderRow.order_id == "o-1"))
    assert state is not None
    assert state.status is OrderStatus.SHIPPED
    assert last_seq == 3
    assert [(e.seq, e.status, e.event) for e in state.timeline] == [
        (1, OrderStatus.ALLOCATING, "step-1"),
        (2, OrderStatus.FULFILLING, "step-2"),
        (3, OrderStatus.SHIPPED, "step-3"),
    ]
    assert state.updated_at == T0 + timedelta(minutes=3)


async def test_a_workflow_task_replacing_a_lost_one_has_the_last_word_on_status_and_timeline(
    sessionmaker: Sessions,
) -> None:
    # The lost task (history length 9) got as far as shipping; the task replacing it (length 14)
    # saw a cancellation first, so its entries 2-3 differ and it never writes a 4th.
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)
    await records.record_order(received("o-1"))
    await records.record_status(change("o-1", 1, OrderStatus.ALLOCATING, version=5))
    for seq, status in ((2, OrderStatus.FULFILLING), (3, OrderStatus.FULFILLING), (4, OrderStatus.SHIPPED)):
        await records.record_status(change("o-1", seq, status, version=9))

    await records.record_status(change("o-1", 3, OrderStatus.CANCELLED, version=14, event="order cancelled"))
    await records.record_status(change("o-1", 2, OrderStatus.ALLOCATING, version=14, event="cancellation requested"))
    # The lost task's worker, still alive, lands a late write.
    await records.record_status(change("o-1", 4, OrderStatus.SHIPPED, version=9))

    async with sessionmaker() as session:
        state = await orders.get_order(session, "o-1", TEST_KEYRING)
    assert state is not None
    assert state.status is OrderStatus.CANCELLED
    assert [(e.seq, e.status, e.event) for e in state.timeline] == [
        (1, OrderStatus.ALLOCATING, "step-1"),
        (2, OrderStatus.ALLOCATING, "cancellation requested"),
        (3, OrderStatus.CANCELLED, "order cancelled"),
    ]


async def test_an_entry_a_later_workflow_task_replaced_is_sent_to_subscribers_again_and_a_repeat_is_not(
    sessionmaker: Sessions,
) -> None:
    async with sessionmaker.begin() as session:
        subscription = await create_subscription(session, TEST_KEYRING, "https://hooks.example.com/orders", [])
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)
    await records.record_order(received("o-1"))

    await records.record_status(change("o-1", 1, OrderStatus.FULFILLING, version=9))
    await records.record_status(change("o-1", 1, OrderStatus.FULFILLING, version=9))
    await records.record_status(change("o-1", 1, OrderStatus.CANCELLED, version=14, event="order cancelled"))

    async with sessionmaker() as session:
        sent = await session.execute(
            select(WebhookOutboxRow.seq, WebhookOutboxRow.version, WebhookOutboxRow.payload)
            .where(WebhookOutboxRow.subscription_id == subscription.subscription_id)
            .order_by(WebhookOutboxRow.id)
        )
        queued = [(seq, version, payload["status"]) for seq, version, payload in sent]
    assert queued == [(1, 9, "fulfilling"), (1, 14, "cancelled")]


async def test_concurrent_status_changes_keep_the_newest(sessionmaker: Sessions) -> None:
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)
    await records.record_order(received("o-1"))
    statuses = [OrderStatus.ALLOCATING, OrderStatus.FULFILLING, OrderStatus.SHIPPED, OrderStatus.DELIVERED]

    await asyncio.gather(
        *(records.record_status(change("o-1", seq, status)) for seq, status in reversed(list(enumerate(statuses, 1))))
    )

    async with sessionmaker() as session:
        state = await orders.get_order(session, "o-1", TEST_KEYRING)
    assert state is not None
    assert state.status is OrderStatus.DELIVERED
    assert [e.seq for e in state.timeline] == [1, 2, 3, 4]


async def test_a_status_change_before_the_order_record_creates_the_order(sessionmaker: Sessions) -> None:
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)

    await records.record_status(change("o-1", 1, OrderStatus.PENDING_REVIEW))
    await records.record_order(received("o-1"))

    async with sessionmaker() as session:
        state = await orders.get_order(session, "o-1", TEST_KEYRING)
        page = await orders.list_orders(session, OrderFilter(sku="SKU-B"), limit=10, cursor=None)
    assert state is not None
    assert state.status is OrderStatus.PENDING_REVIEW
    assert [item.status for item in page.items] == [OrderStatus.PENDING_REVIEW]
    assert await count(sessionmaker, OrderLineRow) == 2


async def test_an_unknown_order_is_none(sessionmaker: Sessions) -> None:
    async with sessionmaker() as session:
        assert await orders.get_order(session, "nope", TEST_KEYRING) is None


async def seed_listing(sessionmaker: Sessions) -> list[str]:
    """Nine orders, two of them received at the same instant; returns their ids newest first."""
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)
    shapes = [
        ("o-01", T0, "c-1", ("SKU-A",)),
        ("o-02", T0 + timedelta(minutes=1), "c-2", ("SKU-B",)),
        ("o-03", T0 + timedelta(minutes=2), "c-1", ("SKU-A", "SKU-B")),
        ("o-04", T0 + timedelta(minutes=2), "c-2", ("SKU-C",)),
        ("o-05", T0 + timedelta(minutes=3), "c-1", ("SKU-C",)),
        ("o-06", T0 + timedelta(minutes=4), "c-3", ("SKU-A",)),
        ("o-07", T0 + timedelta(minutes=5), "c-1", ("SKU-B",)),
        ("o-08", T0 + timedelta(minutes=6), "c-2", ("SKU-A",)),
        ("o-09", T0 + timedelta(minutes=7), "c-1", ("SKU-A",)),
    ]
    for order_id, at, customer_id, skus in shapes:
        await records.record_order(received(order_id, at=at, customer_id=customer_id, skus=skus))
    for order_id in ("o-03", "o-06", "o-09"):
        await records.record_status(change(order_id, 1, OrderStatus.SHIPPED))
    return ["o-09", "o-08", "o-07", "o-06", "o-05", "o-04", "o-03", "o-02", "o-01"]


async def all_pages(sessionmaker: Sessions, limit: int, **filters: object) -> tuple[list[list[str]], list[str | None]]:
    pages: list[list[str]] = []
    cursors: list[str | None] = []
    cursor: str | None = None
    while True:
        async with sessionmaker() as session:
            page = await orders.list_orders(session, OrderFilter.model_validate(filters), limit=limit, cursor=cursor)
        pages.append([item.order_id for item in page.items])
        cursors.append(page.next_cursor)
        if page.next_cursor is None:
            return pages, cursors
        cursor = page.next_cursor


async def test_orders_are_paged_newest_first_without_gaps_or_repeats(sessionmaker: Sessions) -> None:
    newest_first = await seed_listing(sessionmaker)

    pages, cursors = await all_pages(sessionmaker, limit=4)

    assert pages == [newest_first[0:4], newest_first[4:8], newest_first[8:]]
    assert cursors[-1] is None
    assert all(c is not None and "=" not in c and "/" not in c and "+" not in c for c in cursors[:-1])


async def test_a_page_that_ends_exactly_at_the_last_order_has_no_next_cursor(sessionmaker: Sessions) -> None:
    newest_first = await seed_listing(sessionmaker)

    pages, _ = await all_pages(sessionmaker, limit=3)

    assert pages == [newest_first[0:3], newest_first[3:6], newest_first[6:9]]


async def test_orders_are_filtered_by_status_customer_and_sku(sessionmaker: Sessions) -> None:
    await seed_listing(sessionmaker)

    shipped, _ = await all_pages(sessionmaker, limit=10, status=OrderStatus.SHIPPED)
    received_only, _ = await all_pages(sessionmaker, limit=2, status=OrderStatus.RECEIVED, customer_id="c-2")
    with_a, _ = await all_pages(sessionmaker, limit=2, sku="SKU-A")
    combined, _ = await all_pages(sessionmaker, limit=10, customer_id="c-1", sku="SKU-B")
    nothing, _ = await all_pages(sessionmaker, limit=10, sku="SKU-Z")

    assert shipped == [["o-09", "o-06", "o-03"]]
    assert received_only == [["o-08", "o-04"], ["o-02"]]
    assert [order_id for page in with_a for order_id in page] == ["o-09", "o-08", "o-06", "o-03", "o-01"]
    assert combined == [["o-07", "o-03"]]
    assert nothing == [[]]


async def test_the_quick_search_finds_an_order_id_a_customer_id_or_a_sku(sessionmaker: Sessions) -> None:
    await seed_listing(sessionmaker)

    by_order, _ = await all_pages(sessionmaker, limit=10, q="o-05")
    by_customer, _ = await all_pages(sessionmaker, limit=10, q="c-3")
    by_sku, _ = await all_pages(sessionmaker, limit=10, q="SKU-C")
    nothing, _ = await all_pages(sessionmaker, limit=10, q="o-5")

    assert by_order == [["o-05"]]
    assert by_customer == [["o-06"]]
    assert by_sku == [["o-05", "o-04"]]
    assert nothing == [[]]


async def test_a_date_range_takes_its_start_and_leaves_its_end(sessionmaker: Sessions) -> None:
    await seed_listing(sessionmaker)

    window, _ = await all_pages(
        sessionmaker, limit=2, created_from=T0 + timedelta(minutes=2), created_to=T0 + timedelta(minutes=5)
    )

    assert window == [["o-06", "o-05"], ["o-04", "o-03"]]


async def test_a_page_summarises_each_order(sessionmaker: Sessions) -> None:
    await OrderRecordActivities(sessionmaker, TEST_KEYRING).record_order(received("o-1"))

    async with sessionmaker() as session:
        page = await orders.list_orders(session, OrderFilter(), limit=5, cursor=None)

    [item] = page.items
    assert (item.order_id, item.workflow_id, item.customer_id, item.status) == ("o-1", "order-o-1", "c-1", "received")
    assert (item.total, item.currency, item.created_at) == (Decimal("30.00"), "EUR", T0)
    assert item.skus == ["SKU-A", "SKU-B"]


@pytest.mark.parametrize("cursor", ["not a cursor!", "bm9wZQ", "WzEsMl0", "WyJub3QtYS1kYXRlIiwibyJd", ""])
async def test_a_malformed_cursor_is_refused(sessionmaker: Sessions, cursor: str) -> None:
    async with sessionmaker() as session:
        with pytest.raises(orders.InvalidCursor):
            await orders.list_orders(session, OrderFilter(), limit=5, cursor=cursor)


async def test_concurrent_claims_of_one_key_have_one_owner(sessionmaker: Sessions) -> None:
    async def claim(order_id: str) -> str:
        async with sessionmaker.begin() as session:
            return await orders.claim_idempotency_key(session, "key-1", "hash-1", order_id)

    owners = await asyncio.gather(*(claim(f"o-{n}") for n in range(10)))

    assert len(set(owners)) == 1
    assert owners[0] in {f"o-{n}" for n in range(10)}
    assert await count(sessionmaker, IdempotencyKeyRow) == 1
    assert await claim("o-late") == owners[0]


async def test_reusing_a_key_for_another_request_is_a_conflict(sessionmaker: Sessions) -> None:
    async with sessionmaker.begin() as session:
        assert await orders.claim_idempotency_key(session, "key-1", "hash-1", "o-1") == "o-1"

    with pytest.raises(orders.IdempotencyConflict) as conflict:
        async with sessionmaker.begin() as session:
            await orders.claim_idempotency_key(session, "key-1", "hash-2", "o-2")
    assert conflict.value.order_id == "o-1"


@pytest.fixture
async def sqlite_sessionmaker(tmp_path: Path) -> AsyncIterator[Sessions]:
    url = f"sqlite:///{tmp_path}/orders.sqlite3"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def test_order_records_work_on_sqlite(sqlite_sessionmaker: Sessions) -> None:
    sessions = sqlite_sessionmaker
    newest_first = await seed_listing(sessions)
    records = OrderRecordActivities(sessions, TEST_KEYRING)
    await records.record_order(received("o-01"))
    await records.record_status(change("o-01", 2, OrderStatus.FULFILLING))
    await records.record_status(change("o-01", 1, OrderStatus.ALLOCATING))

    pages, _ = await all_pages(sessions, limit=2)
    shipped, _ = await all_pages(sessions, limit=10, status=OrderStatus.SHIPPED)
    async with sessions() as session:
        state = await orders.get_order(session, "o-01", TEST_KEYRING)
    owners = await asyncio.gather(*(_claim(sessions, f"o-{n}") for n in range(5)))

    assert [order_id for page in pages for order_id in page] == newest_first
    assert shipped == [["o-09", "o-06", "o-03"]]
    assert state is not None
    assert state.status is OrderStatus.FULFILLING
    assert [e.seq for e in state.timeline] == [1, 2]
    assert state.timeline[0].at == T0 + timedelta(minutes=1)
    assert len(set(owners)) == 1


async def _claim(sessionmaker: Sessions, order_id: str) -> str:
    async with sessionmaker.begin() as session:
        return await orders.claim_idempotency_key(session, "key-1", "hash-1", order_id)


def with_facts(change_input: StatusChangeInput, **facts: object) -> StatusChangeInput:
    return change_input.model_copy(update={"facts": change_input.facts.model_copy(update=facts)})


async def test_the_newest_changes_facts_stand_whatever_order_changes_arrive_in(sessionmaker: Sessions) -> None:
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)
    await records.record_order(received("o-1"))
    held = [LineAllocations(line_no=1, allocations=[Allocation(warehouse="WH-1", quantity=1)])]
    invoice = Invoice(
        invoice_id="INV-1", subtotal=Decimal("50"), tax=Decimal("10"), total=Decimal("60"), currency="EUR"
    )

    await records.record_status(with_facts(change("o-1", 3, OrderStatus.FULFILLING), allocations=held, invoice=invoice))
    await records.record_status(with_facts(change("o-1", 2, OrderStatus.ALLOCATING), allocations=held))
    await records.record_status(change("o-1", 1, OrderStatus.ALLOCATING))

    async with sessionmaker() as session:
        state = await orders.get_order(session, "o-1", TEST_KEYRING)
    assert state is not None
    assert (state.status, state.invoice) == (OrderStatus.FULFILLING, invoice)
    assert [line.allocations for line in state.lines] == [[Allocation(warehouse="WH-1", quantity=1)], []]
    # The rest is the order as recorded, personal data included.
    assert (state.customer.name, state.shipping_address.city, [line.sku for line in state.lines]) == (
        "Ada Lovelace",
        "London",
        ["SKU-A", "SKU-B"],
    )
    assert [e.seq for e in state.timeline] == [1, 2, 3]


async def test_the_facts_of_a_task_replacing_a_lost_one_stand_over_the_lost_tasks_late_write(
    sessionmaker: Sessions,
) -> None:
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)
    await records.record_order(received("o-1"))
    shipment = Shipment(carrier="c", booking_id="B-1", rate=Decimal("5"), tracking_number="T-1", status="confirmed")
    await records.record_status(with_facts(change("o-1", 1, OrderStatus.FULFILLING, version=9), shipment=shipment))

    cancelled = shipment.model_copy(update={"status": "cancelled", "tracking_number": None})
    await records.record_status(
        with_facts(
            change("o-1", 1, OrderStatus.CANCELLED, version=14, event="order cancelled"),
            shipment=cancelled,
            cancellation_reason="mistake",
        )
    )
    await records.record_status(with_facts(change("o-1", 2, OrderStatus.SHIPPED, version=9), shipment=shipment))

    async with sessionmaker() as session:
        state = await orders.get_order(session, "o-1", TEST_KEYRING)
    assert state is not None
    assert (state.status, state.shipment, state.cancellation_reason) == (OrderStatus.CANCELLED, cancelled, "mistake")


async def test_an_order_whose_state_was_written_whole_with_its_timeline_reads_and_moves_on(
    sessionmaker: Sessions,
) -> None:
    # As rows were written when each status change carried the whole order, timeline included.
    records = OrderRecordActivities(sessionmaker, TEST_KEYRING)
    await records.record_order(received("o-1"))
    old = OrderState.received("o-1", "order-o-1", order_request(), T0).model_copy(
        update={
            "status": OrderStatus.ALLOCATING,
            "timeline": [TimelineEvent(seq=1, at=T0, status=OrderStatus.ALLOCATING, actor="system", event="step-1")],
        }
    )
    public, pii = personal.seal(old, TEST_KEYRING)
    await records.record_status(change("o-1", 1, OrderStatus.ALLOCATING))
    async with sessionmaker.begin() as session:
        await session.execute(update(OrderRow).where(OrderRow.order_id == "o-1").values(state=public, pii=pii))

    await records.record_status(change("o-1", 2, OrderStatus.FULFILLING))

    async with sessionmaker() as session:
        state = await orders.get_order(session, "o-1", TEST_KEYRING)
        stored = await session.scalar(select(OrderRow.state).where(OrderRow.order_id == "o-1"))
    assert state is not None
    assert state.status is OrderStatus.FULFILLING
    assert state.customer.email == "ada@example.com"
    assert [e.seq for e in state.timeline] == [1, 2]
    assert stored is not None and "timeline" not in stored


def test_a_status_change_is_as_large_for_the_thousandth_entry_as_for_the_first() -> None:
    state = OrderState.received("o-1", "order-o-1", order_request(), T0)
    entries = [
        TimelineEvent(seq=n, at=T0, status=OrderStatus.SHIPPED, actor="carrier", event="scan") for n in (1, 1000)
    ]

    first = StatusChangeInput.of(state.model_copy(update={"timeline": entries[:1]}), entries[0])
    thousandth = StatusChangeInput.of(state.model_copy(update={"timeline": entries[:1] * 1000}), entries[1])

    assert len(thousandth.model_dump_json()) - len(first.model_dump_json()) < 10
    dumped = thousandth.model_dump()
    assert "timeline" not in dumped["facts"] and "customer" not in dumped["facts"]
    assert "Ada" not in thousandth.model_dump_json()
