"""A customer's personal details no other test uses, and an order carrying them: a hit can only come from it."""

from __future__ import annotations

import uuid
from typing import Any

from tests import builders
from tests.builders import AMSTERDAM, line


def personal_details() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        "name": f"Kim Jansen {tag}",
        "email": f"kim.{tag}@example.net",
        "phone": f"+31 20 {int(tag[:6], 16) % 10_000_000:07d}",
        "line1": f"Herengracht {tag}",
        "line2": f"Floor {tag}",
    }


def order_body(
    details: dict[str, str], sku: str, *, unit_price: str = "24.00", postal_code: str = "1017 CT"
) -> dict[str, Any]:
    return builders.order_body(
        lines=[line(sku, 1, unit_price)],
        customer={"id": "cust-pii", "name": details["name"], "email": details["email"], "phone": details["phone"]},
        address={
            **AMSTERDAM,
            "name": details["name"],
            "line1": details["line1"],
            "line2": details["line2"],
            "postal_code": postal_code,
        },
    )
