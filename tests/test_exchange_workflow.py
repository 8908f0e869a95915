"""Exchanges on the time-skipping server: a return with resolution "exchange" places a replacement order
through the order workflow, which skips review and is allocated, shipped and delivered like any order.

The return's and the order's outside steps are faked and counted (tests/fakes.py, the return workflow's
fakes); the replacement is started on the same server as the real step starts it, under an id derived
from the return, so it is placed once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models import names
from models.order import OrderInput, OrderState, OrderStatus, ReplacementOf, ReviewDecision
from models.returns import Condition, ReplacementInput, ReturnState, ReturnStatus
from tests import builders
from tests.builders import line
from tests.fakes import FakeSystems
from tests.test_order_workflow import Harness
from tests.test_return_workflow import FakeReturnSystems, Returns, return_input
from workflows.order import OrderWorkflow
from workflows.replenishment import ReplenishmentWorkflow
from workflows.returns import ReturnWorkflow


class ReplacementPlacer:
    """The exchange step as the real one does it: one order workflow per return, review skipped, price 0."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue
        self.placed: list[ReplacementInput] = []

    @activity.defn(name="place_replacement")
    async def place_replacement(self, request: ReplacementInput) -> str:
        self.placed.append(request)
        order_id = f"{request.return_id}-replacement"
        order = builders.order_request(lines=[line(sku, quantity, "0.00") for sku, quantity in request.items])
        await self.client.start_workflow(
            OrderWorkflow.run,
            OrderInput(
                order_id=order_id,
                request=order,
                replacement_for=ReplacementOf(order_id=request.order_id, return_id=request.return_id),
            ),
            id=names.order_workflow_id(order_id),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        return order_id


@dataclass
class Exchanges:
    returns: Returns
    orders: Harness
    placer: ReplacementPlacer


@pytest.fixture
async def exchanges(time_skipping_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Exchanges]:
    return_fakes = FakeReturnSystems()
    order_fakes = FakeSystems(stock={"MUG-1": 10, "TEE-2": 10})
    placer = ReplacementPlacer(time_skipping_env.client, task_queue)
    async with Worker(
        time_skipping_env.client,
        task_queue=task_queue,
        workflows=[ReturnWorkflow, OrderWorkflow, ReplenishmentWorkflow],
        activities=[*return_fakes.activities(), *order_fakes.activities(), placer.place_replacement],
    ):
        running = Exchanges(
            Returns(time_skipping_env, task_queue, return_fakes),
            Harness(time_skipping_env, task_queue, order_fakes),
            placer,
        )
        yield running
        await running.returns.stop_leftovers()
        await running.orders.stop_leftovers()


async def test_an_exchange_places_one_replacement_which_skips_review_and_is_shipped_and_delivered(
    exchanges: Exchanges,
) -> None:
    returns, orders = exchanges.returns, exchanges.orders
    request = return_input()
    request.resolution = "exchange"
    handle = await returns.start(request)
    await returns.until(handle, ReturnStatus.LABEL_ISSUED)

    # Resellable or not, every unit received is replaced.
    await returns.receive(handle, ("MUG-1", 2, Condition.RESELLABLE), ("TEE-2", 1, Condition.DAMAGED))
    final: ReturnState = await handle.result()

    assert final.status == ReturnStatus.CLOSED
    assert returns.fakes.recorded[-2:] == ["exchanged", "closed"]
    assert final.replacement_order_id == f"{final.return_id}-replacement"
    # No money moves for an exchange; the goods came back to stock or were written off as for a refund.
    assert returns.fakes.calls["refund_return"] == 0 and final.refund is None
    assert returns.fakes.restocked == {"MUG-1": 2} and returns.fakes.written_off == {"TEE-2": 1}
    assert [placed.items for placed in exchanges.placer.placed] == [[("MUG-1", 2), ("TEE-2", 1)]]

    replacement: WorkflowHandle[OrderWorkflow, OrderState] = orders.env.client.get_workflow_handle_for(
        OrderWorkflow.run, names.order_workflow_id(final.replacement_order_id)
    )
    orders.started.append(replacement)
    delivered = await orders.deliver(replacement)

    assert delivered.status == OrderStatus.DELIVERED
    assert delivered.replacement_for == "o-1"
    assert delivered.total == Decimal("0.00")
    assert delivered.review is not None and delivered.review.decision == ReviewDecision.APPROVED
    assert delivered.review.reviewed_by == "exchange"
    # The replacement was never put to the review rules, and was allocated and shipped like any order.
    assert orders.fakes.calls["review_order"] == 0
    assert orders.fakes.stock == {"MUG-1": 8, "TEE-2": 9}
    assert [entry.event for entry in delivered.timeline][:2] == ["order received", "review skipped: replacement order"]
