"""The personal part of an order record: split off the `state` JSON and kept encrypted in `orders.pii`.

The order row keeps what operators filter and count by in the clear (ids, status, lines, totals);
the customer's name, e-mail and phone and the shipping address live only in `pii`, encrypted under
the keyring's active key and bound to the order id. Reading joins the two halves again.
"""

from __future__ import annotations

import json
from typing import Any

from models.order import OrderState
from security.fields import decrypt_text, encrypt_text, key_id_of
from security.keyring import Keyring

# Paths into OrderState's JSON that are personal; national ids and payment tokens are listed before
# the order carries any. Every field of the customer but its id must be here (a test checks).
PERSONAL: tuple[tuple[str, ...], ...] = (
    ("customer", "name"),
    ("customer", "email"),
    ("customer", "phone"),
    ("customer", "national_id"),
    ("shipping_address",),
    ("billing_address",),
    ("national_id",),
    ("payment_token",),
)


def seal(state: OrderState, keyring: Keyring) -> tuple[dict[str, Any], str]:
    """The state's JSON without its personal fields, and those fields encrypted for `orders.pii`."""
    public = state.model_dump(mode="json")
    personal: dict[str, Any] = {}
    for *parents, name in PERSONAL:
        source = _walk(public, parents)
        if source is not None and name in source:
            target = personal
            for parent in parents:
                target = target.setdefault(parent, {})
            target[name] = source.pop(name)
    return public, seal_personal(state.order_id, personal, keyring)


def seal_personal(order_id: str, personal: dict[str, Any], keyring: Keyring) -> str:
    """The personal fields of an order (as `seal` splits them off), encrypted for `orders.pii`."""
    return encrypt_text(keyring, json.dumps(personal, separators=(",", ":")), context=_context(order_id))


def unseal(order_id: str, public: dict[str, Any], sealed: str | None, keyring: Keyring) -> dict[str, Any]:
    """The state's whole JSON again. A row written before encryption (no `pii`) holds it all already."""
    if sealed is None:
        return public
    personal = json.loads(decrypt_text(keyring, sealed, context=_context(order_id)))
    return _merge(public, personal)


def resealed(order_id: str, sealed: str, keyring: Keyring) -> str | None:
    """`sealed` encrypted again under the keyring's active key, after a rotation; None when it already is."""
    if key_id_of(sealed) == keyring.active_id:
        return None
    context = _context(order_id)
    return encrypt_text(keyring, decrypt_text(keyring, sealed, context=context), context=context)


def _context(order_id: str) -> str:
    return f"orders.pii:{order_id}"


def _walk(document: dict[str, Any], path: list[str]) -> dict[str, Any] | None:
    for name in path:
        inner = document.get(name)
        if not isinstance(inner, dict):
            return None
        document = inner
    return document


def _merge(public: dict[str, Any], personal: dict[str, Any]) -> dict[str, Any]:
    merged = dict(public)
    for name, value in personal.items():
        inner = merged.get(name)
        merged[name] = _merge(inner, value) if isinstance(inner, dict) and isinstance(value, dict) else value
    return merged
