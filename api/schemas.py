"""Request bodies that only the HTTP API accepts; the shared contracts live in models/."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, model_validator

from models.fields import JSON_INTEGER
from models.order import Strict
from models.webhooks import EVENT_NAMES, EventName
from security.api_keys import KeyInfo, Role

WarehouseCode = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class StockCount(Strict):
    """A stock count: how many units are on the shelf at one warehouse."""

    warehouse: WarehouseCode
    on_hand: Annotated[int, Field(ge=0, le=10_000_000), JSON_INTEGER]


class StockReceipt(Strict):
    """Units that arrived at a warehouse from a supplier."""

    warehouse: WarehouseCode
    quantity: Annotated[int, Field(ge=1, le=10_000_000), JSON_INTEGER]


class Accepted(Strict):
    accepted: bool = True


class Health(Strict):
    status: str
    checks: dict[str, str] = {}


class SubscriptionRequest(Strict):
    """Where to send events, and which: order statuses, return.<status>, refund.<status> (none listed: all)."""

    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    events: Annotated[list[EventName], Field(max_length=len(EVENT_NAMES))] = []


KeyName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ClientId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]


class KeyRequest(Strict):
    """A new API key: a client key acts for one client id, a staff key for none."""

    name: KeyName
    role: Role
    client_id: ClientId | None = None

    @model_validator(mode="after")
    def _client_id_for_client_keys_only(self) -> KeyRequest:
        if (self.role == Role.CLIENT) != (self.client_id is not None):
            raise ValueError("a client key needs a client_id, and only a client key has one")
        return self


class KeyCreated(KeyInfo):
    key: str = Field(description="The key itself, shown this once and kept nowhere: `Authorization: Bearer <key>`.")


class KeyList(BaseModel):
    items: list[KeyInfo]
