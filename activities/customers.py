"""CRM and customer notifications. Best effort: the order never waits on or fails for them."""

from __future__ import annotations

import httpx
from temporalio import activity

from activities.http import all_of, call_provider, idempotency_key
from models.integrations import CustomerUpsertInput, NotificationInput, PurchaseInput, ShippedNotice
from settings import Settings

CRM_REFUSED = "CrmRefused"
NOTIFICATION_REFUSED = "NotificationRefused"


class CustomerActivities:
    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self._http = http
        self._settings = settings

    @activity.defn
    async def upsert_customer(self, request: CustomerUpsertInput) -> None:
        customer = request.customer
        await call_provider(
            self._http,
            "PUT",
            f"{self._settings.crm_url}/customers/{customer.id}",
            idempotency_key=idempotency_key(request.order_id, "crm", "customer"),
            json={"name": customer.name, "email": customer.email, "phone": customer.phone},
            refusal=CRM_REFUSED,
        )

    @activity.defn
    async def record_purchase(self, request: PurchaseInput) -> None:
        await call_provider(
            self._http,
            "POST",
            f"{self._settings.crm_url}/customers/{request.customer_id}/purchases",
            idempotency_key=idempotency_key(request.order_id, "crm", "purchase"),
            json={
                "order_id": request.order_id,
                "total": str(request.total),
                "currency": request.currency,
                "skus": request.skus,
            },
            refusal=CRM_REFUSED,
        )

    @activity.defn
    async def record_purchase_and_notify(self, notice: ShippedNotice) -> None:
        """Both calls at once, each keyed as on its own: a retry repeats only what did not land."""
        await all_of(self.record_purchase(notice.purchase), self.notify_customer(notice.notification))

    @activity.defn
    async def notify_customer(self, request: NotificationInput) -> None:
        await call_provider(
            self._http,
            "POST",
            self._settings.notifications_url,
            idempotency_key=notification_key(request),
            json=request.model_dump(mode="json", exclude={"round"}),
            refusal=NOTIFICATION_REFUSED,
        )


def notification_key(request: NotificationInput) -> str:
    """One key per notice: each round of an order's event (a second backorder) is a notice of its own."""
    if request.round == 1:
        # As keys were before rounds were told apart, so a notice sent then is not sent again.
        return idempotency_key(request.order_id, "notify", request.event)
    return idempotency_key(request.order_id, "notify", request.event, str(request.round))
