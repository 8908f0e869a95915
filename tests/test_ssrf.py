"""Webhook subscriptions reach only the public internet, unless the operator allow-listed a host.

URLs are registered through the real API over HTTP by an admin; the delivery-time guard is
exercised against a real HTTP receiver on loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from security.api_keys import Role, create_key
from security.ssrf import AllowList, IPAddress, Resolver, check_url, guarded_client
from tests.servers import running_server
from tests.test_api import api_settings

Sessions = async_sessionmaker[AsyncSession]
# POST /webhooks/subscriptions as an admin of an API with the given allow-list: url → response.
Subscriber = Callable[[Sequence[str]], AbstractAsyncContextManager[Callable[[str], Awaitable[httpx.Response]]]]

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700:4700::1111"


@pytest.fixture
def api_allowing(
    database_url: str, task_queue: str, sessionmaker: Sessions, dev_server_env: WorkflowEnvironment
) -> Subscriber:
    @asynccontextmanager
    async def serving(allowed: Sequence[str]) -> AsyncIterator[Callable[[str], Awaitable[httpx.Response]]]:
        settings = api_settings(database_url, task_queue).model_copy(update={"webhook_allowed_hosts": list(allowed)})
        async with sessionmaker.begin() as session:
            key, _ = await create_key(session, name="admin", role=Role.ADMIN, hash_secret=settings.api_key_hash_secret)
        app = create_app(settings, client=dev_server_env.client, sessionmaker=sessionmaker)
        async with running_server(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:

            async def subscribe(url: str) -> httpx.Response:
                body = {"url": url, "events": []}
                return await http.post("/webhooks/subscriptions", json=body, headers={"Authorization": f"Bearer {key}"})

            yield subscribe

    return serving


REFUSED = {
    "http://127.0.0.1/hook": "is a loopback address",
    "http://127.8.9.10:8080/hook": "is a loopback address",
    "http://[::1]/hook": "is a loopback address",
    "http://10.0.0.5/hook": "is a private address",
    "http://172.16.0.1/hook": "is a private address",
    "http://172.31.255.254/hook": "is a private address",
    "http://192.168.1.20/hook": "is a private address",
    "http://[fd12:3456::1]/hook": "is a private address",
    "http://169.254.169.254/latest/meta-data/": "is a link-local address",
    "http://[fe80::1]/hook": "is a link-local address",
    "http://[::ffff:127.0.0.1]/hook": "is a loopback address",
    "http://[::ffff:169.254.169.254]/hook": "is a link-local address",
    "http://[::127.0.0.1]/hook": "is a loopback address",
    "http://[64:ff9b::a00:1]/hook": "is a private address",
    "http://0.0.0.0/hook": "is an unspecified address",
    "http://[::]/hook": "is an unspecified address",
    "http://224.0.0.251/hook": "is a multicast address",
    "http://240.0.0.1/hook": "is a reserved address",
    "http://100.64.0.1/hook": "is not a public address",
    "http://localhost:8000/hook": "is a name of this machine",
    "http://LOCALHOST./hook": "is a name of this machine",
    "http://orders.localhost/hook": "is a name of this machine",
    # Names the system resolver turns into 127.0.0.1.
    "http://2130706433/hook": "resolves to 127.0.0.1, a loopback address",
    "http://127.1/hook": "resolves to 127.0.0.1, a loopback address",
    "http://0x7f.0.0.1/hook": "resolves to 127.0.0.1, a loopback address",
    f"ftp://{PUBLIC_V4}/hook": "scheme 'ftp' is not allowed",
    "file:///etc/passwd": "scheme 'file' is not allowed",
    "gopher://example.com/": "scheme 'gopher' is not allowed",
    f"http://user:secret@{PUBLIC_V4}/hook": "credentials in the URL are not allowed",
    f"https://token@{PUBLIC_V4}/hook": "credentials in the URL are not allowed",
    f"http://{PUBLIC_V4}:70000/hook": "port 70000 does not exist",
    "http:///hook": "has no host",
}


async def test_urls_that_are_not_public_are_refused_naming_the_problem(api_allowing: Subscriber) -> None:
    async with api_allowing([]) as subscribe:
        answers = {url: await subscribe(url) for url in REFUSED}

    outcomes = {url: (answer.status_code, answer.json()["detail"][0]["msg"]) for url, answer in answers.items()}
    assert {url: (status, REFUSED[url] in detail) for url, (status, detail) in outcomes.items()} == {
        url: (422, True) for url in REFUSED
    }, outcomes


async def test_public_addresses_are_accepted(api_allowing: Subscriber) -> None:
    urls = [f"https://{PUBLIC_V4}/hooks/orders", f"http://[{PUBLIC_V6}]:8443/hook?source=oms"]
    async with api_allowing([]) as subscribe:
        answers = {url: await subscribe(url) for url in urls}

    assert {url: (answer.status_code, answer.json()["url"]) for url, answer in answers.items()} == {
        url: (201, url) for url in urls
    }


ALLOW_LISTED = {
    "http://127.0.0.1:9000/hook": "127.0.0.1",
    "http://[::1]:9000/hook": "::1",
    "http://10.20.30.40/hook": "10.0.0.0/8",
    "http://[fd00::7]/hook": "fd00::/8",
    "http://localhost:9000/hook": "localhost",
    "http://2130706433:9000/hook": "127.0.0.0/8",
}


async def test_allow_listed_private_hosts_are_accepted_and_nothing_else(api_allowing: Subscriber) -> None:
    async with api_allowing(list(ALLOW_LISTED.values())) as subscribe:
        accepted = {url: (await subscribe(url)).status_code for url in ALLOW_LISTED}
        other = await subscribe("http://192.168.1.20/hook")

    assert accepted == dict.fromkeys(ALLOW_LISTED, 201)
    assert other.status_code == 422
    assert [(error["loc"], "is a private address" in error["msg"]) for error in other.json()["detail"]] == [
        (["body", "url"], True)
    ]


def test_an_allow_list_entry_that_is_neither_a_name_nor_a_network_is_refused() -> None:
    with pytest.raises(ValueError, match="not a CIDR network"):
        AllowList.parse(["10.0.0.0/33"])


# At delivery time: the guarded client checks the address it connects to.


class Receiver:
    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> dict[str, bool]:
            self.hosts.append(request.headers["host"])
            return {"ok": True}


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    receiver = Receiver()
    async with running_server(receiver.app) as url:
        yield receiver, httpx.URL(url).port or 80


def resolving_to(address: str) -> Resolver:
    """A resolver answering `address` for every name: DNS as an attacker who controls a zone sets it."""

    async def resolve(_host: str, _port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(address)]

    return resolve


async def test_a_delivery_to_a_loopback_receiver_is_refused_when_it_is_not_allow_listed(
    receiver: tuple[Receiver, int],
) -> None:
    hook, port = receiver
    async with guarded_client(AllowList.parse([]), timeout_seconds=5, max_connections=2) as http:
        with pytest.raises(httpx.ConnectError, match="loopback"):
            await http.post(f"http://127.0.0.1:{port}/hook", json={})

    assert hook.hosts == []


async def test_a_name_checked_as_public_that_resolves_to_loopback_at_delivery_is_not_reached(
    receiver: tuple[Receiver, int],
) -> None:
    hook, port = receiver
    url = f"http://hooks.example.test:{port}/hook"
    await check_url(url, AllowList(), resolving_to(PUBLIC_V4))

    rebound = resolving_to("127.0.0.1")
    async with guarded_client(AllowList(), timeout_seconds=5, max_connections=2, resolver=rebound) as http:
        with pytest.raises(httpx.ConnectError, match=r"hooks\.example\.test resolves to 127\.0\.0\.1, a loopback"):
            await http.post(url, json={})

    assert hook.hosts == []


async def test_the_guarded_client_connects_to_the_address_it_checked_under_the_name_it_was_given(
    receiver: tuple[Receiver, int],
) -> None:
    hook, port = receiver
    resolver = resolving_to("127.0.0.1")
    allowed = AllowList.parse(["127.0.0.1"])
    async with guarded_client(allowed, timeout_seconds=5, max_connections=2, resolver=resolver) as http:
        response = await http.post(f"http://hooks.example.test:{port}/hook", json={})

    assert response.status_code == 200
    assert hook.hosts == [f"hooks.example.test:{port}"]
