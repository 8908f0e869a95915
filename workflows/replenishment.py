"""The replenishment workflow: one long-running run per SKU that keeps the demand of backordered orders.

Orders report shortages to it (signal-with-start) and it records them; when stock arrives the
waiting orders are woken first come, first served, as far as the stock available covers them
(workflows/demand.py). A woken order keeps its place and its units until it tells the run it has
allocated, reports again or withdraws. Purchasing is told of every shortage in the background: a
purchasing inbox that is down or refuses never holds up or ends the ledger. The run continues as
new before its history grows large, carrying the waiting orders and the notices not yet delivered.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

with workflow.unsafe.imports_passed_through():
    from activities.inventory import InventoryActivities
    from activities.purchasing import PurchasingActivities, notice_key
    from models import names
    from models.integrations import PurchasingNotice
    from models.purchasing import (
        Allocated,
        ReplenishmentInput,
        ShortageRecordInput,
        ShortageReport,
        ShortageResolvedInput,
        StockReceived,
        WaitingOrder,
        Withdrawal,
    )
    from workflows import demand
    from workflows.options import DB_STEP, EXTERNAL_STEP, StepOptions


# Patches of this workflow, for runs started before the change (see tests/test_replay.py).
# Notices to purchasing are sent in the background, and an order that stops waiting lets the
# next ones be woken at once.
NOTICES_IN_BACKGROUND = "notices-in-background"

# One burst of tries rides out a blip: 6 tries over about half a minute (1 s doubling to 16 s, or
# what Retry-After asks). A burst that ends with purchasing still down leaves the notice failing
# (recorded on the shortage, counted by oms_undelivered_purchasing_notices) and the run tries again
# after a pause doubling from a minute to an hour, for as long as the order waits: a long outage
# costs a few calls an hour per waiting order, and a refusal (4xx) is never tried again.
NOTICE_STEP: StepOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=6
    ),
}
FIRST_NOTICE_PAUSE = timedelta(minutes=1)
LONGEST_NOTICE_PAUSE = timedelta(hours=1)


Message = ShortageReport | StockReceived | Withdrawal | Allocated


@workflow.defn(name=names.REPLENISHMENT_WORKFLOW)
class ReplenishmentWorkflow:
    @workflow.init
    def __init__(self, replenishment: ReplenishmentInput) -> None:
        self._sku = replenishment.sku
        self._max_history_events = replenishment.max_history_events
        self._waiting: list[WaitingOrder] = list(replenishment.waiting)
        # The notice to purchasing not yet delivered, by order: the latest report's only.
        self._notices: dict[str, PurchasingNotice] = {notice.order_id: notice for notice in replenishment.notices}
        self._deliveries: set[asyncio.Task[None]] = set()
        # Notices being sent right now: the run continues as new only between two tries.
        self._sending = 0
        self._inbox: list[Message] = []

    @workflow.run
    async def run(self, replenishment: ReplenishmentInput) -> None:
        for notice in list(self._notices.values()):
            self._deliver_in_background(notice)
        while True:
            await workflow.wait_condition(lambda: bool(self._inbox) or self._may_continue_as_new())
            while self._inbox:
                await self._handle(self._inbox.pop(0))
            if self._may_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._inbox and self._may_continue_as_new():
                    # Notices waiting for their next try go to the next run, which sends them under the same key.
                    workflow.continue_as_new(
                        ReplenishmentInput(
                            sku=self._sku,
                            waiting=self._waiting,
                            notices=list(self._notices.values()),
                            max_history_events=self._max_history_events,
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

    @workflow.signal(name=names.SIGNAL_ALLOCATED)
    def allocated(self, allocated: Allocated) -> None:
        self._inbox.append(allocated)

    @workflow.query(name=names.QUERY_DEMAND)
    def demand(self) -> list[WaitingOrder]:
        return self._waiting

    @workflow.query(name=names.QUERY_UNDELIVERED_NOTICES)
    def undelivered_notices(self) -> list[PurchasingNotice]:
        return list(self._notices.values())

    async def _handle(self, message: Message) -> None:
        if isinstance(message, ShortageReport):
            if self._notices_in_background:
                await self._add_demand(message)
            else:
                await self._add_demand_and_notify(message)
            # Stock may have arrived between the order's attempt and its report.
            await self._wake_waiting_orders()
        elif isinstance(message, StockReceived):
            await self._wake_waiting_orders()
        else:
            await self._forget([message.order_id])
            if self._notices_in_background:
                # The order's place, or the units set aside for it, may free the next ones.
                await self._wake_waiting_orders()

    async def _add_demand(self, report: ShortageReport) -> None:
        self._waiting, entry = demand.take_report(self._waiting, report, workflow.now())
        if entry is None:
            return
        notice = PurchasingNotice(
            sku=self._sku,
            order_id=report.order_id,
            quantity=report.quantity,
            outstanding_quantity=sum(waiting.quantity for waiting in self._waiting),
            round=report.round,
        )
        await self._record(entry, notice_key(notice))
        self._notices[notice.order_id] = notice
        self._deliver_in_background(notice)

    async def _add_demand_and_notify(self, report: ShortageReport) -> None:
        """Runs started before NOTICES_IN_BACKGROUND: purchasing is told before the next message is read."""
        waiting = next((w for w in self._waiting if w.order_id == report.order_id), None)
        if waiting is None:
            waiting = WaitingOrder(order_id=report.order_id, quantity=report.quantity, since=workflow.now())
            self._waiting.append(waiting)
        else:
            waiting.quantity = report.quantity
        await self._record(waiting, None)
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

    async def _record(self, waiting: WaitingOrder, key: str | None) -> None:
        await workflow.execute_local_activity_method(
            PurchasingActivities.record_shortage,
            ShortageRecordInput(
                sku=self._sku, order_id=waiting.order_id, quantity=waiting.quantity, since=waiting.since, notice_key=key
            ),
            summary=f"Record shortage of {self._sku}",
            **DB_STEP,
        )

    async def _wake_waiting_orders(self) -> None:
        if not self._waiting:
            return
        available: int = await workflow.execute_local_activity_method(
            InventoryActivities.available_stock, self._sku, summary=f"Check stock of {self._sku}", **DB_STEP
        )
        chosen = demand.orders_to_wake(self._waiting, available)
        gone: list[str] = []
        for order_id in chosen:
            handle = workflow.get_external_workflow_handle(names.order_workflow_id(order_id))
            try:
                await handle.signal(names.SIGNAL_RESTOCK)
            except ApplicationError as error:
                # What the SDK raises when the order's workflow does not exist or has closed.
                workflow.logger.warning("order %s could not be woken (%s); dropping its demand", order_id, error.type)
                gone.append(order_id)
        entries = {entry.order_id: entry for entry in self._waiting}
        kept = [
            order_id for order_id in chosen if order_id not in gone and demand.keeps_place_when_woken(entries[order_id])
        ]
        self._waiting = demand.mark_woken(self._waiting, kept, workflow.now())
        await self._forget([order_id for order_id in chosen if order_id not in kept])

    async def _forget(self, order_ids: list[str]) -> None:
        if not order_ids:
            return
        self._waiting = demand.without(self._waiting, order_ids)
        for order_id in order_ids:
            # Purchasing need not hear of demand that is gone; a delivery under way stops after this try.
            self._notices.pop(order_id, None)
        await workflow.execute_local_activity_method(
            PurchasingActivities.resolve_shortages,
            ShortageResolvedInput(sku=self._sku, order_ids=order_ids),
            summary=f"Resolve shortages of {self._sku}",
            **DB_STEP,
        )

    # ---- Telling purchasing, in the background. ----

    def _deliver_in_background(self, notice: PurchasingNotice) -> None:
        task = asyncio.create_task(self._deliver(notice))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, notice: PurchasingNotice) -> None:
        pause = FIRST_NOTICE_PAUSE
        while self._is_pending(notice):
            try:
                await self._send(notice)
            except ActivityError as error:
                if error.retry_state == RetryState.NON_RETRYABLE_FAILURE:
                    workflow.logger.warning("purchasing refused the notice for order %s", notice.order_id)
                    break
                workflow.logger.warning(
                    "purchasing is not answering the notice for order %s; again in %s", notice.order_id, pause
                )
                await workflow.sleep(pause, summary="Pause before telling purchasing again")
                pause = min(pause * 2, LONGEST_NOTICE_PAUSE)
                continue
            break
        if self._is_pending(notice):
            del self._notices[notice.order_id]

    async def _send(self, notice: PurchasingNotice) -> None:
        """One burst of tries."""
        self._sending += 1
        try:
            await workflow.execute_activity_method(
                PurchasingActivities.notify_purchasing,
                notice,
                summary=f"Notify purchasing: {self._sku} short for order {notice.order_id}",
                **NOTICE_STEP,
            )
        finally:
            self._sending -= 1

    def _is_pending(self, notice: PurchasingNotice) -> bool:
        """Whether the notice is still to be delivered: the order's latest, and the order still waits."""
        return self._notices.get(notice.order_id) == notice

    @property
    def _notices_in_background(self) -> bool:
        return workflow.patched(NOTICES_IN_BACKGROUND)

    def _may_continue_as_new(self) -> bool:
        return self._history_is_long() and self._sending == 0

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > self._max_history_events
