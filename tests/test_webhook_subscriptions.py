"""Webhook subscriptions through the HTTP API: admins only, the secret shown once and never listed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from models.tables import WebhookSubscriptionRow
from security.api_keys import Role, create_key
from tests.servers import running_server
from tests.test_api import api_settings

Sessions = async_sessionmaker[AsyncSession]

URL = "https://93.184.215.14/hooks/orders"


class Api:
    def __init__(self, http: httpx.AsyncClient, keys: dict[Role, str]) -> None:
        self.http = http
        self.keys = keys

    def as_(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def subscribe(self, url: str = URL, events: list[str] | None = None) -> httpx.Response:
        body = {"url": url, "events": events if events is not None else []}
        return await self.http.post("/webhooks/subscriptions", json=body, headers=self.as_(Role.ADMIN))


@pytest.fixture
async def api(
    database_url: str, task_queue: str, sessionmaker: Sessions, dev_server_env: WorkflowEnvironment
) -> AsyncIterator[Api]:
    settings = api_settings(database_url, task_queue)
    keys: dict[Role, str] = {}
    async with sessionmaker.begin() as session:
        for role in (Role.ADMIN, Role.OPERATOR):
            keys[role], _ = await create_key(
                session, name=role.value, role=role, hash_secret=settings.api_key_hash_secret
            )
    app = create_app(settings, client=dev_server_env.client, sessionmaker=sessionmaker)
    async with running_server(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        yield Api(http, keys)


async def test_an_admin_subscribes_and_sees_the_secret_once(api: Api, sessionmaker: Sessions) -> None:
    created = await api.subscribe(events=["shipped", "delivered", "shipped"])

    assert created.status_code == 201, created.text
    subscription = created.json()
    assert subscription["url"] == URL
    assert subscription["events"] == ["delivered", "shipped"]
    assert subscription["secret"].startswith("whsec_") and len(subscription["secret"]) > 40

    listed = await api.http.get("/webhooks/subscriptions", headers=api.as_(Role.ADMIN))
    assert listed.status_code == 200
    assert listed.json()["items"] == [{key: value for key, value in subscription.items() if key != "secret"}]
    assert subscription["secret"] not in listed.text
    async with sessionmaker() as session:
        rows = (
            await session.execute(select(WebhookSubscriptionRow.subscription_id, WebhookSubscriptionRow.secret))
        ).all()
    # Kept encrypted, like the customers' personal data.
    assert [row.subscription_id for row in rows] == [subscription["subscription_id"]]
    assert rows[0].secret.startswith("v1:") and subscription["secret"] not in rows[0].secret


async def test_each_subscription_has_its_own_secret(api: Api) -> None:
    first, second = (await api.subscribe()).json(), (await api.subscribe()).json()

    assert first["secret"] != second["secret"]


async def test_a_deleted_subscription_is_no_longer_listed_and_cannot_be_deleted_again(api: Api) -> None:
    kept = (await api.subscribe(URL + "/kept")).json()
    gone = (await api.subscribe()).json()

    deleted = await api.http.delete(f"/webhooks/subscriptions/{gone['subscription_id']}", headers=api.as_(Role.ADMIN))
    again = await api.http.delete(f"/webhooks/subscriptions/{gone['subscription_id']}", headers=api.as_(Role.ADMIN))
    listed = await api.http.get("/webhooks/subscriptions", headers=api.as_(Role.ADMIN))

    assert deleted.status_code == 204
    assert again.status_code == 404
    assert again.json() == {"detail": f"webhook subscription {gone['subscription_id']} not found"}
    assert [item["subscription_id"] for item in listed.json()["items"]] == [kept["subscription_id"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/webhooks/subscriptions"),
        ("GET", "/webhooks/subscriptions"),
        ("DELETE", "/webhooks/subscriptions/00000000-0000-0000-0000-000000000000"),
    ],
)
async def test_only_admins_manage_subscriptions(method: str, path: str, api: Api) -> None:
    body = {"url": URL, "events": []} if method == "POST" else None

    anonymous = await api.http.request(method, path, json=body)
    operator = await api.http.request(method, path, json=body, headers=api.as_(Role.OPERATOR))

    assert anonymous.status_code == 401
    assert operator.status_code == 403
    listed = await api.http.get("/webhooks/subscriptions", headers=api.as_(Role.ADMIN))
    assert listed.json()["items"] == []


async def test_an_unknown_status_is_a_422(api: Api) -> None:
    response = await api.subscribe(events=["teleported"])

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "events", 0]
