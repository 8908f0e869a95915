"""Backorders while purchasing is down or refuses, and an operator's manual restock, end to end.

The real dev server, PostgreSQL, the worker, the API and the stand-ins over real HTTP (tests/stack.py),
driven as purchasing and operators do: the API for orders, stock and shortages, its /metrics for the
gauges, the Temporal client for what an operator does in the Temporal UI, and the stand-ins' fault knobs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.client import WorkflowExecutionStatus

from models.names import order_workflow_id, replenishment_workflow_id
from models.purchasing import WaitingOrder
from tests.stack import NotYet, Stack, eventually
from tests.test_end_to_end import line, new_sku, order_body
from tests.test_observability import scrape_api, value
from workflows.replenishment import ReplenishmentWorkflow


async def listed_as_short(stack: Stack, sku: str, check: Any = None) -> dict[str, Any]:
    """The SKU's open shortage once it is listed (and `check` of it holds)."""

    async def listed() -> dict[str, Any]:
        shortage = (await stack.shortages()).get(sku)
        if shortage is None or (check is not None and not check(shortage)):
            raise NotYet(f"{sku} is listed as {shortage}")
        return shortage

    return await eventually(listed, timeout=30)


async def no_longer_short(stack: Stack, sku: str) -> None:
    async def gone() -> None:
        if sku in await stack.shortages():
            raise NotYet(f"{sku} is still listed as short")

    await eventually(gone, timeout=30)


async def gauges(stack: Stack) -> dict[str, float]:
    _, scraped = await scrape_api(stack)
    return {
        name: value(scraped, name)
        for name in ("oms_open_shortages", "oms_open_shortage_units", "oms_undelivered_purchasing_notices")
    }


async def demand(stack: Stack, sku: str) -> list[WaitingOrder]:
    handle = stack.temporal.get_workflow_handle_for(ReplenishmentWorkflow.run, replenishment_workflow_id(sku))
    return await handle.query(ReplenishmentWorkflow.demand)


async def test_a_backordered_order_ships_when_stock_arrives_while_purchasing_answers_503(stack: Stack) -> None:
    sku = new_sku("DOWN")
    await stack.count_stock(sku, 0)
    await stack.set_fault("purchasing", failure_rate=1.0)

    order_id = await stack.place_order(order_body([line(sku, 2, "20.00")]))
    await stack.wait_for_status(order_id, "backordered")

    shortage = await listed_as_short(stack, sku, lambda item: item["notices"][0]["status"] == "failing")
    [notice] = shortage["notices"]
    assert (notice["order_id"], notice["last_error"]) == (order_id, "503 service_unavailable")
    assert notice["attempts"] >= 1
    assert await gauges(stack) == {
        "oms_open_shortages": 1,
        "oms_open_shortage_units": 2,
        "oms_undelivered_purchasing_notices": 1,
    }

    await stack.receive_stock(sku, 2)

    await stack.wait_for_status(order_id, "delivered")
    await no_longer_short(stack, sku)
    assert await gauges(stack) == {
        "oms_open_shortages": 0,
        "oms_open_shortage_units": 0,
        "oms_undelivered_purchasing_notices": 0,
    }
    assert stack.standin_answers.count("purchasing", 503) >= 1
    assert [record for record in await stack.records("shortages") if record["sku"] == sku] == []


async def test_a_refusing_purchasing_inbox_ends_neither_the_skus_run_nor_its_waiting_orders(stack: Stack) -> None:
    sku = new_sku("REFUSE")
    await stack.count_stock(sku, 0)
    await stack.set_fault("purchasing", failure_rate=1.0, failure_status=422)

    first = await stack.place_order(order_body([line(sku, 1, "20.00")], customer_id="first-customer"))
    await stack.wait_for_status(first, "backordered")
    await listed_as_short(stack, sku, lambda item: item["notices"][0]["status"] == "refused")
    second = await stack.place_order(order_body([line(sku, 1, "20.00")], customer_id="second-customer"))
    await stack.wait_for_status(second, "backordered")
    shortage = await listed_as_short(stack, sku, lambda item: [n["status"] for n in item["notices"]] == ["refused"] * 2)

    assert shortage["order_ids"] == [first, second]
    assert shortage["notices"][0]["last_error"] == "422 injected_failure: injected failure"
    assert (await gauges(stack))["oms_undelivered_purchasing_notices"] == 2
    assert stack.standin_answers.count("purchasing", 422) == 2
    run = await stack.temporal.get_workflow_handle(replenishment_workflow_id(sku)).describe()
    assert run.status == WorkflowExecutionStatus.RUNNING

    await stack.receive_stock(sku, 1)
    await stack.wait_for_status(first, "delivered")
    await stack.clear_faults()
    await stack.receive_stock(sku, 1)

    await stack.wait_for_status(second, "delivered")
    await no_longer_short(stack, sku)
    assert await demand(stack, sku) == []


async def test_an_operators_restock_signal_that_lets_the_order_allocate_leaves_no_shortage(stack: Stack) -> None:
    sku = new_sku("MANUAL")
    await stack.count_stock(sku, 0)
    order_id = await stack.place_order(order_body([line(sku, 3, "20.00")]))
    await stack.wait_for_status(order_id, "backordered")
    await listed_as_short(stack, sku)

    # A stock count is no receipt: nothing tells the SKU's run; the operator wakes the order from the Temporal UI.
    await stack.count_stock(sku, 3)
    await stack.temporal.get_workflow_handle(order_workflow_id(order_id)).signal("restock")

    await stack.wait_for_status(order_id, "delivered")
    await no_longer_short(stack, sku)
    assert await demand(stack, sku) == []
    assert (await gauges(stack))["oms_open_shortages"] == 0


async def test_an_operators_restock_signal_while_still_short_keeps_the_order_listed_once_in_its_place(
    stack: Stack,
) -> None:
    sku = new_sku("MANUAL")
    await stack.count_stock(sku, 0)
    order_id = await stack.place_order(order_body([line(sku, 3, "20.00")]))
    await stack.wait_for_status(order_id, "backordered")
    before = await listed_as_short(stack, sku)
    [waiting] = await demand(stack, sku)

    await stack.temporal.get_workflow_handle(order_workflow_id(order_id)).signal("restock")

    async def reported_again() -> list[WaitingOrder]:
        entries = await demand(stack, sku)
        if [entry.round for entry in entries] != [2]:
            raise NotYet(f"demand is {entries}")
        return entries

    [again] = await eventually(reported_again, timeout=30)
    assert (again.order_id, again.since, again.woken_at) == (order_id, waiting.since, None)
    after = await listed_as_short(stack, sku)
    assert (after["order_ids"], after["outstanding_quantity"], after["since"]) == ([order_id], 3, before["since"])
    assert datetime.fromisoformat(after["since"]) == waiting.since
    assert (await stack.order(order_id))["status"] == "backordered"
    assert (await gauges(stack))["oms_open_shortages"] == 1
