"""What the Temporal server keeps of an order is ciphertext, and a key rotation does not strand an order.

Real dev server, real PostgreSQL, the real worker and API over HTTP (tests/stack.py). The raw
history is fetched with a client that has no codec, as anyone with access to the Temporal server
or its database would see it; the service's codec turns the same history back into the order.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

import temporal_client
from models.names import HEADER_REQUEST_ID, order_workflow_id
from models.tables import OrderRow
from security.codec import ENCODING, KEY_ID_METADATA, EncryptionCodec, data_converter
from security.fields import key_id_of
from security.keyring import Keyring
from settings import Settings
from tests.conftest import TEST_KEYRING
from tests.personal import order_body, personal_details
from tests.stack import Stack, running_stack
from workflows.order import OrderWorkflow
from workflows.replenishment import ReplenishmentWorkflow

Sessions = async_sessionmaker[AsyncSession]


def payloads_in(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every Payload anywhere in `message`, with its path, e.g. `.events[4].marker_recorded_event_attributes...`."""
    if isinstance(message, Payload):
        yield path, message
        return
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            items = [(f"{path}.{field.name}[{key}]", item) for key, item in value.items()]
        elif field.is_repeated:
            items = [(f"{path}.{field.name}[{index}]", item) for index, item in enumerate(value)]
        else:
            items = [(f"{path}.{field.name}", value)]
        for inner_path, item in items:
            if isinstance(item, Message):
                yield from payloads_in(item, inner_path)


# In the clear by design: search attributes, which the server indexes (customer id, status, total, SKUs),
# the SDK's own markers (a local activity's id, type, attempt and times; a patch's name), and the
# request id header (an opaque id the API made, see observability/request_id.py).
NOT_THE_SERVICES = re.compile(
    r"\.search_attributes\.|\.marker_recorded_event_attributes\.details\[(data|patch-data)\]"
    rf"|\.header\.fields\[{HEADER_REQUEST_ID}\]"
)


def service_payloads(history: History) -> list[Payload]:
    """The payloads the service's data converter wrote: inputs, results, messages, failures."""
    return [payload for path, payload in payloads_in(history) if not NOT_THE_SERVICES.search(path)]


def in_the_clear(history: History) -> list[str]:
    """Where the service wrote a payload without encrypting it."""
    return [
        path
        for path, payload in payloads_in(history)
        if not NOT_THE_SERVICES.search(path) and payload.metadata["encoding"] != ENCODING
    ]


async def raw_history(temporal: Client, workflow_id: str) -> History:
    """The history as the Temporal server holds it, fetched by a client that cannot decrypt."""
    without_codec = await Client.connect(temporal.service_client.config.target_host, namespace=temporal.namespace)
    history = await without_codec.get_workflow_handle(workflow_id).fetch_history()
    return History(events=history.events)


def hits(details: dict[str, str], data: bytes) -> list[str]:
    return [name for name, value in details.items() if value.encode() in data]


async def test_the_temporal_server_holds_none_of_the_customers_data_in_the_clear(
    stack: Stack, dev_server_env: WorkflowEnvironment
) -> None:
    details = personal_details()
    sku = f"ENC-{uuid.uuid4().hex[:8].upper()}"
    await stack.count_stock(sku, 5)
    order_id = await stack.place_order(order_body(details, sku))
    await stack.wait_for_status(order_id, "delivered")

    history = await raw_history(dev_server_env.client, order_workflow_id(order_id))

    assert hits(details, history.SerializeToString()) == []
    payloads = service_payloads(history)
    assert len(payloads) > 10
    assert in_the_clear(history) == []
    assert {payload.metadata[KEY_ID_METADATA].decode() for payload in payloads} == {TEST_KEYRING.active_id}
    decoded = await EncryptionCodec(TEST_KEYRING).decode(payloads)
    assert hits(details, b"".join(payload.data for payload in decoded)) == ["name", "email", "phone", "line1", "line2"]


async def connect_with(dev_server_env: WorkflowEnvironment, keyring: Keyring) -> Client:
    """A client made the way the API and the worker make theirs, from settings naming the keys."""
    settings = Settings().model_copy(
        update={
            "temporal_address": dev_server_env.client.service_client.config.target_host,
            "temporal_namespace": dev_server_env.client.namespace,
            "encryption_keys": keyring.to_json(),
        }
    )
    return await temporal_client.connect(settings)


async def sealed_under(sessionmaker: Sessions, order_id: str) -> str:
    async with sessionmaker() as session:
        pii = await session.scalar(select(OrderRow.pii).where(OrderRow.order_id == order_id))
    assert pii is not None
    return key_id_of(pii)


async def test_an_order_started_under_one_key_completes_after_a_rotation_and_restart(
    dev_server_env: WorkflowEnvironment, database_url: str, sessionmaker: Sessions, task_queue: str
) -> None:
    first_ring = Keyring.generate("rotation-k1")
    rotated_ring = first_ring.rotated("rotation-k2")
    details = personal_details()
    sku = f"ROT-{uuid.uuid4().hex[:8].upper()}"

    # Above 10,000.00 the order waits for an operator, under the first key.
    before = await connect_with(dev_server_env, first_ring)
    async with running_stack(before, database_url, sessionmaker, task_queue, keyring=first_ring) as stack:
        await stack.count_stock(sku, 3)
        order_id = await stack.place_order(order_body(details, sku, unit_price="12000.00"))
        await stack.wait_for_status(order_id, "pending_review")
    assert await sealed_under(sessionmaker, order_id) == "rotation-k1"

    # Worker and API start again with the rotated ring; the operator approves.
    after = await connect_with(dev_server_env, rotated_ring)
    async with running_stack(after, database_url, sessionmaker, task_queue, keyring=rotated_ring) as stack:
        approved = await stack.operator.post(f"/orders/{order_id}/review", json={"decision": "approve"})
        assert approved.status_code == 200, approved.text
        order = await stack.wait_for_status(order_id, "delivered", timeout=90)

    assert order["customer"]["email"] == details["email"]
    assert order["shipping_address"]["line1"] == details["line1"]
    assert await sealed_under(sessionmaker, order_id) == "rotation-k2"
    history = await raw_history(dev_server_env.client, order_workflow_id(order_id))
    key_ids = {payload.metadata[KEY_ID_METADATA].decode() for payload in service_payloads(history)}
    assert key_ids == {"rotation-k1", "rotation-k2"}
    replayer = Replayer(workflows=[OrderWorkflow, ReplenishmentWorkflow], data_converter=data_converter(rotated_ring))
    replay = await replayer.replay_workflow(
        await after.get_workflow_handle(order_workflow_id(order_id)).fetch_history(), raise_on_replay_failure=False
    )
    assert replay.replay_failure is None
