"""The whole service started the way `make run` starts it, for one fault drill, and the levers to break it.

`running_stack(...)` uses the local stack of scripts/local_stack.py (Temporal dev server with its
SQLite file, migrations, stand-ins, worker and API as child processes sharing one environment) on
free ports and a temporary data folder, against a fresh database on the fault suite's own
PostgreSQL server. The drill then kills, stops and restarts any of those processes, or the
database server, while orders go through, and reads what happened from the API, the database
and the stand-ins' control endpoints.

The child processes get the caller's whole environment plus what the drill needs: an admin API
key the API makes sure of at start-up (every call here carries it as a Bearer credential), a
payload keyring in the data folder unless one is configured, a carrier patient with our webhook.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

import temporal_client
from db.engine import create_engine, create_sessionmaker
from faults.postgres import PostgresServer
from scripts.local_stack import LocalStack, StackConfig
from security.api_keys import new_key
from settings import Settings

WORKER = "worker"
API = "API"
TEMPORAL = "Temporal server"
STANDINS = "stand-ins"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def drill_environment(data_dir: Path, api_key: str) -> dict[str, str]:
    """What the drill adds to the children's environment; anything the caller set itself wins."""
    env = {
        "OMS_BOOTSTRAP_ADMIN_KEY": api_key,
        "OMS_LOG_LEVEL": "WARNING",
        # A carrier as patient with our webhook as real ones are, so that a restart of the API or
        # of Temporal does not make it give up on a tracking event.
        "STANDINS_WEBHOOK_ATTEMPTS": "8",
        "STANDINS_WEBHOOK_BACKOFF_SECONDS": "0.5",
    }
    if "OMS_ENCRYPTION_KEYS" not in os.environ and "OMS_ENCRYPTION_KEY_FILE" not in os.environ:
        keyring = data_dir / "encryption-keys.json"
        keyring.write_text(
            json.dumps({"active": "drill", "keys": {"drill": base64.b64encode(secrets.token_bytes(32)).decode()}})
        )
        keyring.chmod(0o600)
        env["OMS_ENCRYPTION_KEY_FILE"] = str(keyring)
    return {name: value for name, value in env.items() if name not in os.environ}


@dataclass
class FaultStack:
    """A running stack, the clients a drill talks to it with, and the levers that break it."""

    local: LocalStack
    postgres: PostgresServer
    settings: Settings
    api: httpx.AsyncClient
    standins: httpx.AsyncClient
    sessionmaker: async_sessionmaker[AsyncSession]

    # Processes.

    async def kill(self, child: str) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        await self.local.stop_child(child, kill=True)

    async def stop(self, child: str) -> None:
        """SIGTERM and a grace period, as a deployment would."""
        await self.local.stop_child(child)

    async def start(self, child: str) -> None:
        await self.local.restart_child(child)

    async def stop_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.stop)

    async def start_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.start)

    # The stand-in outside systems.

    async def set_fault(self, service: str, **fault: Any) -> None:
        response = await self.standins.put("/_control/faults", json={"service": service, **fault})
        response.raise_for_status()

    async def clear_faults(self) -> None:
        (await self.standins.delete("/_control/faults")).raise_for_status()

    async def strikes(self) -> dict[str, dict[str, int]]:
        """How often each injected fault struck, by service and kind."""
        response = await self.standins.get("/_control/faults")
        response.raise_for_status()
        struck: dict[str, dict[str, int]] = response.json()["struck"]
        return struck

    async def records(self, kind: str) -> list[dict[str, Any]]:
        response = await self.standins.get(f"/_control/records/{kind}")
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def temporal(self) -> Client:
        return await temporal_client.connect(self.settings)


@asynccontextmanager
async def running_stack(
    postgres: PostgresServer,
    workdir: Path,
    database: str,
    *,
    environment: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> AsyncIterator[FaultStack]:
    """The stack on free ports, its data under `workdir`, its records in a new database `database`.

    `environment` is added to the children's, `settings` to the supervisor's (e.g. a backup interval).
    """
    database_url = await asyncio.to_thread(postgres.create_database, database)
    config = StackConfig(
        data_dir=workdir / "data",
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        api_port=free_port(),
        standins_port=free_port(),
    )
    config.data_dir.mkdir(parents=True)
    api_key = new_key()
    env = drill_environment(config.data_dir, api_key)
    # The drill's own clients (Temporal's among them) use the children's keyring.
    keyring = {"encryption_key_file": env["OMS_ENCRYPTION_KEY_FILE"]} if "OMS_ENCRYPTION_KEY_FILE" in env else {}
    stack_settings = Settings().model_copy(
        update={
            "database_url": database_url,
            "temporal_address": f"127.0.0.1:{config.temporal_port}",
            **keyring,
            **(settings or {}),
        }
    )
    local = LocalStack(config, stack_settings)
    local.env.update(env)
    local.env.update(environment or {})
    async with AsyncExitStack() as running:
        running.push_async_callback(local.stop)
        await local.start()
        engine: AsyncEngine = create_engine(database_url, pool_size=4)
        running.push_async_callback(engine.dispose)
        api = await running.enter_async_context(
            httpx.AsyncClient(
                base_url=config.api_url,
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=httpx.Timeout(15.0, connect=5.0),
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
            )
        )
        standins = await running.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{config.standins_port}", timeout=15.0)
        )
        yield FaultStack(
            local=local,
            postgres=postgres,
            settings=stack_settings,
            api=api,
            standins=standins,
            sessionmaker=create_sessionmaker(engine),
        )
