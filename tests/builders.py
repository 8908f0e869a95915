"""Orders as tests send them: one builder for the API's JSON body and the model the workflow receives.

Every field has an ordinary value (Ada Lovelace in London buying two lines); a test names only what
it is about: `order_body(lines=[line("MUG-1", 3)], customer={"id": "cust-7"})`. `customer` and
`address` are merged into the defaults; any other keyword replaces the top-level field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from models.order import OrderRequest

CUSTOMER: Mapping[str, str] = {
    "id": "C-1",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "phone": "+44 20 7946 0000",
}
LONDON: Mapping[str, str] = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Sq",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}
AMSTERDAM: Mapping[str, str] = {
    "name": "Ada Lovelace",
    "line1": "Keizersgracht 1",
    "city": "Amsterdam",
    "postal_code": "1015 CJ",
    "country": "NL",
}


def line(sku: str, quantity: int = 1, unit_price: str = "10.00") -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, "unit_price": unit_price}


DEFAULT_LINES = (line("WIDGET-1", 2, "50.00"), line("BOLT-7", 4, "5.00"))


def order_body(
    *,
    lines: Sequence[Mapping[str, Any]] = DEFAULT_LINES,
    customer: Mapping[str, str] | None = None,
    address: Mapping[str, str] | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """The JSON body of POST /orders."""
    return {
        "customer": {**CUSTOMER, **(customer or {})},
        "lines": [dict(each) for each in lines],
        "shipping_address": {**LONDON, **(address or {})},
        **changes,
    }


def order_request(
    *,
    lines: Sequence[Mapping[str, Any]] = DEFAULT_LINES,
    customer: Mapping[str, str] | None = None,
    address: Mapping[str, str] | None = None,
    **changes: Any,
) -> OrderRequest:
    """The same order as the API hands it to the workflow, validated as the API validates it."""
    body = order_body(lines=lines, customer=customer, address=address, **changes)
    return OrderRequest.model_validate_json(json.dumps(body))
