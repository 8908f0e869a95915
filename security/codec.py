"""Temporal payloads encrypted end to end: the codec, the project's data converter, the codec server's bodies.

Every payload the API and the worker hand to Temporal (workflow and activity inputs and results,
signals, updates, queries, failure messages and stack traces) is serialised whole and encrypted
with AES-256-GCM under the keyring's active key before it leaves the process, so the Temporal
server and its database only ever hold ciphertext. The key id travels in the payload's metadata,
so payloads written under an older key still decode after a rotation. Payloads that are not
marked encrypted pass through untouched: histories written before encryption keep replaying.

The Temporal UI decodes payloads by POSTing them to a codec server; `decode_codec_body` and
`encode_codec_body` are that server's work, so an HTTP route only reads the body and answers.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from security.keyring import Keyring, KeyringError

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each whole payload (its metadata and data), under the keyring's active key."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id, sealed = self.keyring.encrypt(payload.SerializeToString())
        return Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()}, data=sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA)
        if not key_id:
            raise KeyringError(f"an encrypted payload names no key (no {KEY_ID_METADATA!r} metadata)")
        return Payload.FromString(self.keyring.decrypt(key_id.decode(errors="replace"), payload.data))


def data_converter(keyring: Keyring | None) -> DataConverter:
    """The project's one data converter: pydantic payloads, failure messages and stack traces kept in a
    payload rather than in the clear, and everything encrypted under `keyring`.

    `None` leaves payloads unencrypted. The service never runs so (it always loads a keyring); the
    replay-history recorder does, so the kept histories can be read and replayed without any key.
    """
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keyring) if keyring is not None else None,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


# The codec server: the body the Temporal UI sends to /codec/encode and /codec/decode, and answers with.
#   {"payloads": [{"metadata": {"encoding": "<base64>", ...}, "data": "<base64>"}, ...]}


class CodecRequestError(ValueError):
    """A codec request body that is not the shape the Temporal UI sends; a 400, not a 500."""


async def encode_codec_body(codec: PayloadCodec, body: Any) -> dict[str, Any]:
    """Encode the payloads of a codec request body; the answer has the same shape."""
    return await _apply(codec.encode, body)


async def decode_codec_body(codec: PayloadCodec, body: Any) -> dict[str, Any]:
    """Decode the payloads of a codec request body; the answer has the same shape."""
    return await _apply(codec.decode, body)


async def _apply(transform: Callable[[Sequence[Payload]], Awaitable[list[Payload]]], body: Any) -> dict[str, Any]:
    payloads = await transform(_payloads_from_body(body))
    return {"payloads": [_payload_to_json(payload) for payload in payloads]}


def _payloads_from_body(body: Any) -> list[Payload]:
    if not isinstance(body, Mapping) or not isinstance(body.get("payloads"), list):
        raise CodecRequestError('the body must be {"payloads": [...]}')
    return [_payload_from_json(index, item) for index, item in enumerate(body["payloads"])]


def _payload_from_json(index: int, item: Any) -> Payload:
    if not isinstance(item, Mapping):
        raise CodecRequestError(f"payload {index} is not an object")
    metadata = item.get("metadata", {})
    data = item.get("data", "")
    if not isinstance(metadata, Mapping) or not all(isinstance(value, str) for value in metadata.values()):
        raise CodecRequestError(f"payload {index}: metadata must map names to base64 strings")
    if not isinstance(data, str):
        raise CodecRequestError(f"payload {index}: data must be a base64 string")
    try:
        return Payload(metadata={str(name): _unbase64(value) for name, value in metadata.items()}, data=_unbase64(data))
    except (binascii.Error, ValueError):
        raise CodecRequestError(f"payload {index} holds a value that is not base64") from None


def _payload_to_json(payload: Payload) -> dict[str, Any]:
    return {
        "metadata": {name: base64.b64encode(value).decode() for name, value in payload.metadata.items()},
        "data": base64.b64encode(payload.data).decode(),
    }


def _unbase64(value: str) -> bytes:
    # As protobuf's JSON reader does: the standard or the URL-safe alphabet, padded or not.
    standard = value.replace("-", "+").replace("_", "/")
    return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
