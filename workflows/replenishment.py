"""The replenishment workflow: one long-running run per SKU that keeps the demand of backordered orders.

Orders report shortages to it (signal-with-start), purchasing is told at once, and
when stock arrives the waiting orders are woken first come, first served, as far
as the stock available covers them. It continues as new before its history grows large.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.inventory import InventoryActivities
    from activities.purchasing import PurchasingActivities
    from models import names
    from models.integrations import PurchasingNotice
    from models.purchasing import (
        ReplenishmentInput,
        ShortageRecordInput,
        ShortageReport,
        ShortageResolvedInput,
        StockReceived,
        WaitingOrder,
        Withdrawal,
    )
    from workflows.options import DB_STEP, EXTERNAL_STEP


Message = ShortageReport | StockReceived | Withdrawal


@workflow.defn(name=names.REPLENISHMENT_WORKFLOW)
class ReplenishmentWorkflow:
    @workflow.init
    def __init__(self, replenishment: ReplenishmentInput) -> None:
        self._sku = replenishment.sku
        self._max_history_events = replenishment.max_history_events
        self._waiting: list[WaitingOrder] = list(replenishment.waiting)
        self._inbox: list[Message] = []

    @workflow.run
    async def run(self, replenishment: ReplenishmentInput) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self._inbox) or self._history_is_long())
            while self._inbox:
                await self._handle(self._inbox.pop(0))
            if self._history_is_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._inbox:
                    workflow.continue_as_new(
                        ReplenishmentInput(
                            sku=self._sku, waiting=self._waiting, max_history_events=self._max_history_events
                        )
                    )

    @workflow.signal(name=names.SIGNAL_SHORTAGE)
    def shortage(self, report: ShortageReport) -> None:
        self._inbox.append(report)

    @workflow.signal(name=names.SIGNAL_STOCK_RECEIVED)
    def stock_received(self, receipt: StockReceived) -> None:
        self._inbox.append(receipt)

    @workflow.signal(name=names.SIGNAL_WITHDRAW)
    def withdraw(self, withdrawal: Withdrawal) -> None:
        self._inbox.append(withdrawal)

    @workflow.query(name=names.QUERY_DEMAND)
    def demand(self) -> list[WaitingOrder]:
        return self._waiting

    async def _handle(self, message: Message) -> None:
        if isinstance(message, ShortageReport):
            await self._add_demand(message)
            # Stock may have arrived between the order's attempt and its report.
            await self._wake_waiting_orders()
        elif isinstance(message, StockReceived):
            await self._wake_waiting_orders()
        else:
            await self._remove([message.order_id])

    async def _add_demand(self, report: ShortageReport) -> None:
        waiting = next((w for w in self._waiting if w.order_id == report.order_id), None)
        if waiting is None:
            waiting = WaitingOrder(order_id=report.order_id, quantity=report.quantity, since=workflow.now())
            self._waiting.append(waiting)
        else:
            waiting.quantity = report.quantity
        await workflow.execute_local_activity_method(
            PurchasingActivities.record_shortage,
            ShortageRecordInput(sku=self._sku, order_id=report.order_id, quantity=report.quantity, since=waiting.since),
            summary=f"Record shortage of {self._sku}",
            **DB_STEP,
        )
        await workflow.execute_activity_method(
            PurchasingActivities.notify_purchasing,
            PurchasingNotice(
                sku=self._sku,
                order_id=report.order_id,
                quantity=report.quantity,
                outstanding_quantity=sum(w.quantity for w in self._waiting),
            ),
            summary=f"Notify purchasing: {self._sku} short",
            **EXTERNAL_STEP,
        )

    async def _wake_waiting_orders(self) -> None:
        if not self._waiting:
            return
        available: int = await workflow.execute_local_activity_method(
            InventoryActivities.available_stock, self._sku, summary=f"Check stock of {self._sku}", **DB_STEP
        )
        woken: list[str] = []
        for waiting in self._waiting:
            # First come, first served: a later order never overtakes one the stock cannot cover yet.
            if waiting.quantity > available:
                break
            available -= waiting.quantity
            woken.append(waiting.order_id)
        for order_id in woken:
            handle = workflow.get_external_workflow_handle(names.order_workflow_id(order_id))
            try:
                await handle.signal(names.SIGNAL_RESTOCK)
            except Exception:
                workflow.logger.warning("order %s is gone; dropping its demand", order_id)
        await self._remove(woken)

    async def _remove(self, order_ids: list[str]) -> None:
        if not order_ids:
            return
        self._waiting = [w for w in self._waiting if w.order_id not in order_ids]
        await workflow.execute_local_activity_method(
            PurchasingActivities.resolve_shortages,
            ShortageResolvedInput(sku=self._sku, order_ids=order_ids),
            summary=f"Resolve shortages of {self._sku}",
            **DB_STEP,
        )

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > self._max_history_events
