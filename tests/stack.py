"""The whole service inside one test process, each piece over real HTTP: the stand-in outside
systems, the real worker on its own task queue, and the API, with a client for each.

`running_stack(...)` starts them in dependency order (stand-ins, worker, API) and stops them in
reverse. The API's port is chosen first, so the stand-in carrier can post its tracking events to
the API's webhook from the start. Tests and benchmarks drive it through `Stack` the way a client
and an operator would: HTTP calls to the API, and the stand-ins' control endpoints.

The stack makes an API key of each role when it starts (`Stack.keys`) and holds an HTTP client
for each: `api` is a shop's (a client key, for CLIENT_ID), `operator`, `purchasing` and `admin`
are the staff's; `Stack.http(key)` opens one with any key, or none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Collection
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from activities.http import create_http_client
from api.app import create_app as create_api
from db.engine import create_engine, create_sessionmaker
from models.order import TERMINAL_STATUSES
from security.keyring import Keyring
from settings import Settings
from standins.app import StandinConfig
from standins.app import create_app as create_standins
from tests.conftest import TEST_KEYRING
from tests.keys import Keys, bearer, make_keys
from tests.polling import NotYet, eventually
from tests.servers import free_port, running_server
from worker import running_worker

TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)
OUTSIDE_SYSTEMS = ("carrier", "finance", "crm", "notifications", "purchasing")
# Connections the API may hold (twice this with overflow): few, as the database serves many test runs.
API_POOL_SIZE = 5


class AnswerLog:
    """Counts every answer the stand-ins give, by service and status code.

    It wraps the stand-in app from outside, so it sees the 503s and dropped answers that fault
    injection produces too: a test can tell that the faults it asked for really struck.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.answers: Counter[tuple[str, int]] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        service = scope["path"].lstrip("/").split("/", 1)[0]

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.answers[(service, message["status"])] += 1
            await send(message)

        await self._app(scope, receive, counting)

    def count(self, service: str, status: int) -> int:
        return self.answers[(service, status)]


@dataclass(frozen=True)
class Stack:
    api: httpx.AsyncClient  # a shop's client key
    operator: httpx.AsyncClient
    purchasing: httpx.AsyncClient
    admin: httpx.AsyncClient
    keys: Keys
    api_url: str
    standins: httpx.AsyncClient
    standin_answers: AnswerLog
    temporal: Client
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]

    def http(self, key: str | None, **options: Any) -> httpx.AsyncClient:
        """An HTTP client of the API sending `key` (none at all for None); close it with `async with`."""
        return httpx.AsyncClient(base_url=self.api_url, timeout=30, headers=bearer(key) if key else None, **options)

    # Orders, as a client sees them.

    async def place_order(self, body: dict[str, Any], *, idempotency_key: str | None = None) -> str:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self.api.post("/orders", json=body, headers=headers)
        assert response.status_code == 202, response.text
        return str(response.json()["order_id"])

    async def order(self, order_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/orders/{order_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait_for_status(
        self, order_id: str, *statuses: str, timeout: float = 60.0, via: httpx.AsyncClient | None = None
    ) -> dict[str, Any]:
        """Poll GET /orders/{id} (as the shop, or `via` another client) until the order is in one of `statuses`.

        Fails at once if the order ends in another status.
        """
        wanted = set(statuses)
        http = via or self.api

        async def reached() -> dict[str, Any]:
            response = await http.get(f"/orders/{order_id}")
            if response.status_code != 200:
                raise NotYet(f"GET /orders/{order_id} answered {response.status_code} {response.text}")
            order = dict(response.json())
            if order["status"] in wanted:
                return order
            if order["status"] in TERMINAL:
                raise RuntimeError(f"order {order_id} ended {order['status']}, not {sorted(wanted)}: {order}")
            raise NotYet(f"order {order_id} is {order['status']}, not {sorted(wanted)}")

        return await eventually(reached, timeout=timeout, interval=0.1)

    # Stock and purchasing.

    async def count_stock(self, sku: str, on_hand: int, warehouse: str = "AMS") -> dict[str, Any]:
        response = await self.admin.put(f"/inventory/{sku}", json={"warehouse": warehouse, "on_hand": on_hand})
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def stock(self, sku: str) -> dict[str, Any]:
        response = await self.purchasing.get(f"/inventory/{sku}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def receive_stock(self, sku: str, quantity: int, warehouse: str = "AMS") -> dict[str, Any]:
        response = await self.purchasing.post(
            f"/inventory/{sku}/receipts", json={"warehouse": warehouse, "quantity": quantity}
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def shortages(self) -> dict[str, dict[str, Any]]:
        """Open shortages by SKU, as purchasing sees them."""
        response = await self.purchasing.get("/purchasing/shortages")
        assert response.status_code == 200, response.text
        return {item["sku"]: item for item in response.json()["items"]}

    # The outside systems, as their operators see them.

    async def records(self, kind: str) -> list[dict[str, Any]]:
        response = await self.standins.get(f"/_control/records/{kind}")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def set_fault(self, service: str, **fault: Any) -> None:
        response = await self.standins.put("/_control/faults", json={"service": service, **fault})
        assert response.status_code == 200, response.text

    async def clear_faults(self) -> None:
        response = await self.standins.delete("/_control/faults")
        assert response.status_code == 204, response.text


def stack_settings(database_url: str, task_queue: str, standins_url: str, keyring: Keyring, **changes: Any) -> Settings:
    outside = {f"{system}_url": f"{standins_url}/{system}" for system in OUTSIDE_SYSTEMS}
    return Settings().model_copy(
        update={
            "database_url": database_url,
            "task_queue": task_queue,
            "encryption_keys": keyring.to_json(),
            **outside,
            **changes,
        }
    )


@asynccontextmanager
async def running_stack(
    temporal: Client,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    task_queue: str,
    *,
    tracking_delay_seconds: float = 0.2,
    client_connections: int = 200,
    with_worker: bool = True,
    keyring: Keyring = TEST_KEYRING,
    settings: dict[str, Any] | None = None,
) -> AsyncIterator[Stack]:
    """Stand-ins, worker and API on loopback ports; yields a `Stack` to drive them.

    The worker and the test share `sessionmaker`; the API has a small connection pool of its own, as it
    has in its own process, so that a worker busy with a burst of orders does not hold up the API's
    authentication and audit writes.

    With `with_worker=False` no worker runs in this process: the test runs its own, e.g. as a process it can kill.
    `keyring` is the one `temporal`'s data converter encrypts with; the worker and the API use it for the
    database too, and `Stack.settings` carries it for worker processes.
    `settings` changes the settings of every piece, e.g. {"auth_block_seconds": 1.0}.
    """
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    # The carrier signs with the secret the API checks; purchasing checks what the worker signs with.
    secrets = Settings().model_copy(update=settings or {})
    standin_config = StandinConfig(
        webhook_url=f"{api_url}/webhooks/carrier",
        tracking_delay_seconds=tracking_delay_seconds,
        webhook_backoff_seconds=0.2,
        webhook_secret=secrets.carrier_webhook_secret,
        purchasing_webhook_secret=secrets.purchasing_webhook_secret,
    )
    answers = AnswerLog(create_standins(standin_config))
    async with running_server(answers) as standins_url:
        config = stack_settings(database_url, task_queue, standins_url, keyring, **(settings or {}))
        keys = await make_keys(sessionmaker, config.api_key_hash_secret)
        limits = httpx.Limits(max_connections=client_connections, max_keepalive_connections=client_connections)
        async with AsyncExitStack() as running:
            api_engine = create_engine(database_url, pool_size=API_POOL_SIZE)
            running.push_async_callback(api_engine.dispose)
            api_app = create_api(config, client=temporal, sessionmaker=create_sessionmaker(api_engine), keyring=keyring)
            if with_worker:
                worker_http = await running.enter_async_context(create_http_client(config))
                await running.enter_async_context(
                    running_worker(temporal, config, sessionmaker, worker_http, task_queue, keyring=keyring)
                )
            await running.enter_async_context(running_server(api_app, port=api_port))

            async def client_with(key: str) -> httpx.AsyncClient:
                http = httpx.AsyncClient(base_url=api_url, timeout=30, limits=limits, headers=bearer(key))
                return await running.enter_async_context(http)

            standins = await running.enter_async_context(httpx.AsyncClient(base_url=standins_url, timeout=30))
            yield Stack(
                api=await client_with(keys.client),
                operator=await client_with(keys.operator),
                purchasing=await client_with(keys.purchasing),
                admin=await client_with(keys.admin),
                keys=keys,
                api_url=api_url,
                standins=standins,
                standin_answers=answers,
                temporal=temporal,
                settings=config,
                sessionmaker=sessionmaker,
            )


def statuses_of(orders: Collection[dict[str, Any]]) -> dict[str, int]:
    """How many orders are in each status, e.g. {"delivered": 50, "cancelled": 150}."""
    counts: dict[str, int] = {}
    for order in orders:
        counts[order["status"]] = counts.get(order["status"], 0) + 1
    return counts
