"""What routes receive from the application: settings, the sessionmaker, the keyring and the Temporal client.

The lifespan in api.app puts them on `app.state`; routes ask for them by these aliases.
Routes open their own transactions (`async with sessionmaker.begin()`), so a route decides
when its writes are committed, e.g. before it signals a workflow about them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.order_client import OrderClient
from security.keyring import Keyring
from settings import Settings


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def route_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """The sessionmaker routes use; the guard at the door takes its connections from `app.state` directly."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


def _keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


def _temporal(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(route_sessionmaker)]
KeyringDep = Annotated[Keyring, Depends(_keyring)]
TemporalDep = Annotated[Client, Depends(_temporal)]


def _orders(
    client: TemporalDep, sessionmaker: SessionmakerDep, settings: SettingsDep, keyring: KeyringDep
) -> OrderClient:
    return OrderClient(client, sessionmaker, settings, keyring)


OrdersDep = Annotated[OrderClient, Depends(_orders)]
