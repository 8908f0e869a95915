"""Refunds of an order: a return's, or one without a return (goodwill, a claim), and what the API shows of them.

Every refund of an order is a row claimed against the order's invoice with the order's row locked
(db/refunds.py), so the order's refunded total never exceeds what was invoiced. A return's refund
is claimed by the return's refund step; one without a return by the API, then moved by its own
workflow `refund-<refund_id>` (workflows/refunds.py).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from models.fields import Note, Reason
from models.order import Quantity, Sku, Strict
from models.returns import Refund, RefundLine


class RefundStatus(StrEnum):
    # Claimed against the invoice; finance has not confirmed it yet (it counts against the cap).
    REQUESTED = "requested"
    REFUNDED = "refunded"
    # Finance refused it: no money moved, and its amount no longer counts against the cap.
    FAILED = "failed"


# Refunds that hold part of the invoice: money moved, or may be moving.
HOLDING_REFUND_STATUSES = frozenset({RefundStatus.REQUESTED, RefundStatus.REFUNDED})

_AMOUNT_PATTERN = r"^(?=.*[1-9])[0-9]{1,12}(\.[0-9]{1,2})?$"


def _amount(value: object) -> object:
    # JSON callers send a decimal string or a whole number; a fraction in a JSON number is refused, as for prices.
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise PydanticCustomError("money_type", 'must be a decimal string such as "12.50"')
    if isinstance(value, str) and not re.fullmatch(_AMOUNT_PATTERN, value):
        raise PydanticCustomError("money_format", 'must be a decimal string above 0 with at most 2 decimals, "12.50"')
    return value


RefundAmount = Annotated[
    Decimal,
    BeforeValidator(_amount),
    Field(gt=0, le=Decimal("999999999999.99"), decimal_places=2),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _AMOUNT_PATTERN},
                {"type": "integer", "minimum": 1, "maximum": 999_999_999_999},
            ],
            "description": 'The amount refunded, tax included: a decimal string ("12.50") or a whole number (12).',
        }
    ),
]


# ---- What callers send. ----


class RefundLineRequest(Strict):
    sku: Sku
    quantity: Quantity


class OrderRefundRequest(Strict):
    """POST /orders/{order_id}/refunds: lines (their paid share is refunded), an amount, or both (the amount holds)."""

    # The schema says it too: an amount that is not null, or at least one line.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["amount"], "properties": {"amount": {"not": {"type": "null"}}}},
                {"required": ["lines"], "properties": {"lines": {"minItems": 1}}},
            ]
        },
    )

    lines: Annotated[list[RefundLineRequest], Field(max_length=100)] = []
    amount: RefundAmount | None = None
    reason: Reason
    note: Note | None = None

    @model_validator(mode="after")
    def _lines_or_amount(self) -> OrderRefundRequest:
        if not self.lines and self.amount is None:
            raise ValueError("name the lines refunded, an amount, or both")
        return self


# ---- The refund workflow's input, and its activities' contracts. ----


class OrderRefundInput(BaseModel):
    """Input of the refund workflow: the refund as claimed, fixed when it was accepted."""

    refund_id: str
    order_id: str
    invoice_id: str
    amount: Decimal
    currency: str
    lines: list[RefundLine] = []
    reason: str
    requested_by: str = "operator"


class RefundOutcome(BaseModel):
    """What the refund workflow writes of the refund: its status and what finance answered."""

    refund_id: str
    status: RefundStatus
    refund: Refund | None = None
    problem: str | None = None


class RefundFlag(BaseModel):
    refund_id: str
    # None clears the flag.
    problem: str | None = None


# ---- The API's answers. ----


class RefundAccepted(BaseModel):
    refund_id: str
    status: RefundStatus
    amount: Decimal
    currency: str
    workflow_id: str


class RefundRecord(BaseModel):
    """A refund of an order as the database keeps it."""

    refund_id: str
    order_id: str
    return_id: str | None = None
    status: RefundStatus
    amount: Decimal
    currency: str
    lines: list[RefundLine] = []
    reason: str
    note: str | None = None
    credit_note: str | None = None
    needs_attention: str | None = None
    created_at: datetime
    updated_at: datetime
