"""A change to an order before it ships: what a caller sends, what the order workflow receives.

The API's body (`ChangeRequest`) and the workflow's update payload (`ChangeCommand`) are different
types: the command also carries who asks and the revision they expect, which the API reads from
the caller's key and the `If-Match` header, never from the body.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from models.fields import Note
from models.order import MAX_LINES, Address, OrderLine, Strict


class ChangeRequest(Strict):
    """The body of PATCH /orders/{order_id}: the whole new list of lines, a new address, or both.

    A change that names neither, or asks for the order as it stands, is refused by the order (409).
    """

    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=MAX_LINES)] | None = Field(
        default=None, description="The order's lines as they should now stand, all of them."
    )
    shipping_address: Address | None = Field(default=None, description="Where the order should now go.")
    note: Note | None = Field(default=None, description="Why the order is changed; kept on its timeline.")


class ChangeCommand(BaseModel):
    """What the order workflow's change update carries."""

    lines: list[OrderLine] | None = None
    shipping_address: Address | None = None
    note: str | None = None
    # The revision the caller read (If-Match); None applies the change to whatever revision stands.
    expected_revision: int | None = None
    actor: str = "api"
