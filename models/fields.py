"""Field types for what callers send: bounded printable text, exact money, whole counts.

Each type's JSON schema says exactly what its validation accepts, so the OpenAPI document is a
contract a client (or a fuzzer) can rely on: what the schema allows is accepted, what it does not
is refused with a 422 naming the field. Nothing is silently trimmed or rounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# C0 and C1 control characters and DEL. PostgreSQL refuses NUL in text outright; the others
# have no business in names, addresses or identifiers.
_CONTROL = "\\x00-\\x1f\\x7f-\\x9f"
# Free text (notes, reasons) may run over several lines.
_CONTROL_EXCEPT_LINE_BREAKS = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f"
_BLANK = " \\t\\r\\n"

PRINTABLE_ASCII = r"^[\x20-\x7e]+$"
"""Header values such as idempotency keys: visible ASCII and spaces."""


@dataclass(frozen=True, slots=True)
class Printable:
    """Text without control characters; unless `blank` is allowed, with more in it than spaces and line breaks."""

    blank: bool = False
    multiline: bool = False

    @property
    def _control(self) -> str:
        return _CONTROL_EXCEPT_LINE_BREAKS if self.multiline else _CONTROL

    @property
    def pattern(self) -> str:
        if self.blank:
            return f"^[^{self._control}]*$"
        return f"^[^{self._control}]*[^{_BLANK}{self._control}][^{self._control}]*$"

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.pattern
        return json_schema

    def _validate(self, value: str) -> str:
        if re.search(f"[{self._control}]", value):
            raise PydanticCustomError("control_characters", "must not contain control characters or NUL bytes")
        if not self.blank and not value.strip(" \t\r\n"):
            raise PydanticCustomError("blank", "must not be blank")
        return value


Line = Annotated[str, Field(min_length=1, max_length=200), Printable()]
"""A name, an address line or a city: 1 to 200 characters on one line."""
OptionalLine = Annotated[str, Field(max_length=200), Printable(blank=True)]
Reason = Annotated[str, Field(min_length=1, max_length=500), Printable(multiline=True)]
Note = Annotated[str, Field(max_length=1000), Printable(blank=True, multiline=True)]


def _integer(value: object) -> object:
    # Lax pydantic reads "2" as 2 and true as 1; 2.0 is an integer in JSON Schema and stays accepted.
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "must be a JSON integer, not a boolean")
    if isinstance(value, str):
        raise PydanticCustomError("int_type", "must be a JSON integer, not a string")
    return value


JSON_INTEGER = BeforeValidator(_integer)
"""Marks a count as a JSON integer: "2", 2.5 and true are refused rather than read as 2 or 1.

Put it after the count's bounds, `Annotated[int, Field(ge=1), JSON_INTEGER]`, so that they stay in its JSON schema.
"""

MAX_UNIT_PRICE = Decimal("999999.99")
_MONEY_PATTERN = r"^[0-9]{1,6}(\.[0-9]{1,2})?$"


def _money(value: object) -> object:
    # Python callers pass Decimals; JSON callers send strings or whole numbers.
    if isinstance(value, bool):
        raise PydanticCustomError("money_type", 'must be a decimal string such as "12.50", not a boolean')
    if isinstance(value, float) and not value.is_integer():
        raise PydanticCustomError(
            "money_type", 'an amount with a fraction must be a decimal string such as "12.50", not a JSON number'
        )
    if isinstance(value, str) and not re.fullmatch(_MONEY_PATTERN, value):
        raise PydanticCustomError(
            "money_format", 'must be a decimal string with at most 6 digits and 2 decimals, such as "12.50"'
        )
    return value


UnitPrice = Annotated[
    Decimal,
    BeforeValidator(_money),
    Field(ge=0, le=MAX_UNIT_PRICE, decimal_places=2),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _MONEY_PATTERN},
                {"type": "integer", "minimum": 0, "maximum": int(MAX_UNIT_PRICE)},
            ],
            "description": (
                'A price per unit: a decimal string with at most two decimals ("12.50"), or a whole number (12). '
                "JSON numbers with a fraction are refused, as binary floating point cannot carry cents exactly; "
                f"booleans are refused. At most {MAX_UNIT_PRICE}, so that no order total outgrows what is stored."
            ),
        }
    ),
]


def _not_a_number(value: object) -> object:
    # Lax pydantic would read a number as seconds since 1970; callers send ISO 8601 strings.
    if isinstance(value, int | float):
        raise PydanticCustomError("datetime_type", "must be an ISO 8601 date-time string with a time zone")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
"""A moment as an ISO 8601 string with its offset, such as "2025-03-01T12:00:00Z"."""
