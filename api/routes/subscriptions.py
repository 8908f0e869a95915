"""Webhook subscriptions (admin only): outside URLs told about every order status change.

Each delivery is signed with the subscription's own secret, shown once when it is made. A URL
is accepted only if it reaches the public internet (security.ssrf) unless the operator
allow-listed its host; it is checked again at every delivery.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from api.auth import require_role
from api.deps import KeyringDep, SessionmakerDep, SettingsDep
from api.errors import BODY_ERRORS, error_responses
from api.refusals import SubscriptionNotFound
from api.schemas import SubscriptionRequest
from db import webhooks
from models.webhooks import NewWebhookSubscription, WebhookSubscriptionList
from security.api_keys import Role
from security.ssrf import AllowList, check_url

router = APIRouter(
    prefix="/webhooks/subscriptions",
    tags=["webhook subscriptions"],
    dependencies=[Depends(require_role(Role.ADMIN))],
    responses=error_responses(401, 403),
)

SubscriptionId = Annotated[str, Path(min_length=1, max_length=36)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=NewWebhookSubscription,
    responses=error_responses(*BODY_ERRORS),
)
async def create_subscription(
    request: SubscriptionRequest, sessionmaker: SessionmakerDep, settings: SettingsDep, keyring: KeyringDep
) -> NewWebhookSubscription:
    """Subscribe a URL; the answer holds the signing secret, which is never shown again."""
    await check_url(request.url, AllowList.parse(settings.webhook_allowed_hosts))
    async with sessionmaker.begin() as session:
        return await webhooks.create_subscription(session, keyring, request.url, request.events)


@router.get("", response_model=WebhookSubscriptionList)
async def list_subscriptions(sessionmaker: SessionmakerDep) -> WebhookSubscriptionList:
    """Live subscriptions, without their secrets."""
    async with sessionmaker.begin() as session:
        return WebhookSubscriptionList(items=await webhooks.list_subscriptions(session))


@router.delete(
    "/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
)
async def delete_subscription(subscription_id: SubscriptionId, sessionmaker: SessionmakerDep) -> Response:
    """End a subscription; events not yet sent to it are dropped."""
    async with sessionmaker.begin() as session:
        if not await webhooks.delete_subscription(session, subscription_id):
            raise SubscriptionNotFound(subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
