"""Webhook signatures, the same scheme in both directions: carriers sign what they send us, we
sign what we send to purchasing and to subscribers.

A delivery carries two headers:

    Webhook-Timestamp: 1735689600                  (unix seconds when it was signed)
    Webhook-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

The timestamp is inside the signed text, so an old delivery cannot be made fresh again, and a
receiver refuses one whose timestamp is further from its clock than the tolerance. Several
`v1=` values separated by commas are accepted, so a sender can sign with an old and a new secret
while the secret is being changed. Comparison is in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

TIMESTAMP_HEADER = "Webhook-Timestamp"
SIGNATURE_HEADER = "Webhook-Signature"
# Stays the same on every attempt of one delivery, so receivers can drop a repeat.
ID_HEADER = "Webhook-Id"
VERSION = "v1"

_SIGNATURE = re.compile(rf"^{VERSION}=(?P<hex>[0-9a-f]{{64}})$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


class SignatureError(Exception):
    """Why a delivery is not accepted as signed; the message can be shown to the sender."""


class MissingSignature(SignatureError):
    pass


class MalformedSignature(SignatureError):
    pass


class StaleSignature(SignatureError):
    """Signed longer ago than the tolerance."""


class FutureSignature(SignatureError):
    """Stamped further in the future than clocks drift apart (the tolerance)."""


class BadSignature(SignatureError):
    pass


@dataclass(frozen=True)
class Verified:
    timestamp: int
    # The signature that matched, hex: what a receiver remembers to refuse a replay.
    signature: str


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>." + body` under `secret`."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The headers that sign `body`, stamped with the current time (or `now`)."""
    timestamp = int(time.time() if now is None else now)
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"{VERSION}={signature(secret, timestamp, body)}",
    }


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_seconds: int, now: float | None = None
) -> Verified:
    """Check the signature headers of a delivery of `body`; raise a SignatureError saying what is wrong.

    `headers` is looked up with the names above; pass a case-insensitive mapping (as HTTP
    libraries provide) when the sender's capitalisation may differ.
    """
    raw_timestamp, raw_signatures = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if not raw_timestamp or not raw_signatures:
        raise MissingSignature(f"the {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are required")
    if not _TIMESTAMP.match(raw_timestamp.strip()):
        raise MalformedSignature(f"{TIMESTAMP_HEADER} must be unix seconds")
    presented = [_SIGNATURE.match(part.strip()) for part in raw_signatures.split(",")]
    if not all(presented):
        raise MalformedSignature(f"{SIGNATURE_HEADER} must read {VERSION}=<64 lowercase hex digits>")

    timestamp = int(raw_timestamp)
    age = int(time.time() if now is None else now) - timestamp
    if age > tolerance_seconds:
        raise StaleSignature(f"{TIMESTAMP_HEADER} is {age} s old; at most {tolerance_seconds} s are accepted")
    if -age > tolerance_seconds:
        raise FutureSignature(
            f"{TIMESTAMP_HEADER} is {-age} s in the future; at most {tolerance_seconds} s of clock drift are accepted"
        )

    expected = signature(secret, timestamp, body)
    # Every candidate is compared, so the time taken does not tell which one came close.
    matches = [hmac.compare_digest(expected, match["hex"]) for match in presented if match is not None]
    if not any(matches):
        raise BadSignature("the signature does not match the body and timestamp")
    return Verified(timestamp=timestamp, signature=expected)
