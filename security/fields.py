"""Text fields kept encrypted in the database, under the same keyring as the Temporal payloads.

A stored value reads `v1:<key id>:<base64 of nonce, ciphertext and tag>`, so any key of the ring
reads it back after a rotation. Each value is bound to its place by `context` (say
"orders.pii:<order id>"), authenticated but not stored: a value copied into another row or column
does not decrypt there.
"""

from __future__ import annotations

import base64
import binascii

from security.keyring import DecryptionFailed, Keyring

VERSION = "v1"


def encrypt_text(keyring: Keyring, plaintext: str, *, context: str) -> str:
    key_id, sealed = keyring.encrypt(plaintext.encode(), context.encode())
    return f"{VERSION}:{key_id}:{base64.b64encode(sealed).decode()}"


def decrypt_text(keyring: Keyring, stored: str, *, context: str) -> str:
    key_id, sealed = _parse(stored)
    return keyring.decrypt(key_id, sealed, context.encode()).decode()


def key_id_of(stored: str) -> str:
    """The id of the key a stored value was encrypted under."""
    return _parse(stored)[0]


def _parse(stored: str) -> tuple[str, bytes]:
    version, _, rest = stored.partition(":")
    key_id, _, encoded = rest.partition(":")
    if version != VERSION or not key_id or not encoded:
        raise DecryptionFailed(f"not an encrypted field (expected {VERSION}:<key id>:<base64>)")
    try:
        return key_id, base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise DecryptionFailed("an encrypted field whose ciphertext is not base64") from None
