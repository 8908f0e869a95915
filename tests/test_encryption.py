"""Encryption at rest, piece by piece: the keyring and its key file, the payload codec and data
converter, encrypted database fields, and the codec server's request bodies."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from models.order import Address, Customer, OrderInput, OrderLine, OrderRequest
from security.codec import (
    ENCODING,
    KEY_ID_METADATA,
    CodecRequestError,
    EncryptionCodec,
    data_converter,
    decode_codec_body,
    encode_codec_body,
)
from security.fields import decrypt_text, encrypt_text, key_id_of
from security.keyring import (
    DecryptionFailed,
    Keyring,
    KeyringError,
    UnknownKeyId,
    create_key_file,
    load_keyring,
    rotate_key_file,
)
from settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EMAIL = "grace.hopper@example.org"


def settings_with(**changes: Any) -> Settings:
    return Settings().model_copy(update={"encryption_keys": None, **changes})


def key_material(keyring: Keyring) -> list[str]:
    return [base64.b64encode(key).decode() for key in keyring.keys.values()]


def order_input() -> OrderInput:
    return OrderInput(
        order_id="o-1",
        request=OrderRequest(
            customer=Customer(id="C-1", name="Grace Hopper", email=EMAIL, phone="+1 202 555 0199"),
            lines=[OrderLine(sku="MUG-1", quantity=2, unit_price=Decimal("12.50"))],
            shipping_address=Address(
                name="Grace Hopper", line1="1 Navy Yard", city="Arlington", postal_code="22202", country="US"
            ),
        ),
    )


def json_payload(value: dict[str, Any]) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


# The keyring and its key file


def test_a_new_key_file_holds_one_active_key_and_only_its_owner_may_read_it(tmp_path: Path) -> None:
    path = tmp_path / "not-yet" / "keys.json"

    created = create_key_file(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_keyring(settings_with(encryption_key_file=str(path)))
    assert loaded == created
    assert loaded.ids == [loaded.active_id]
    assert len(loaded.keys[loaded.active_id]) == 32


def test_an_existing_key_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    original = create_key_file(path)

    with pytest.raises(KeyringError, match="already exists"):
        create_key_file(path)

    assert load_keyring(settings_with(encryption_key_file=str(path))) == original


def test_rotation_makes_a_new_key_active_and_keeps_the_old_ones_for_old_data(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = create_key_file(path)
    old_key, old_data = first.encrypt(b"written before the rotation")

    rotated = rotate_key_file(path)

    assert rotated == load_keyring(settings_with(encryption_key_file=str(path)))
    assert rotated.active_id != first.active_id
    assert set(rotated.ids) == {first.active_id, rotated.active_id}
    assert rotated.decrypt(old_key, old_data) == b"written before the rotation"
    assert rotated.encrypt(b"new")[0] == rotated.active_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_inline_keys_win_over_the_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    create_key_file(path)
    inline = Keyring.generate("inline-1")

    loaded = load_keyring(settings_with(encryption_key_file=str(path), encryption_keys=inline.to_json()))

    assert loaded == inline


def test_a_missing_key_file_says_where_it_was_looked_for_and_how_to_make_one(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"

    with pytest.raises(KeyringError) as error:
        load_keyring(settings_with(encryption_key_file=str(path)))

    assert str(path) in str(error.value)
    assert "scripts.encryption_keys init" in str(error.value)


GOOD_KEY = base64.b64encode(b"k" * 32).decode()


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', '"active"'),
        (json.dumps({"keys": {"k1": GOOD_KEY}}), "no active key"),
        (json.dumps({"active": "k1", "keys": {}}), "no keys"),
        (json.dumps({"active": "k1", "keys": {"k1": "not base64!"}}), "'k1' .* is not base64"),
        (json.dumps({"active": "k1", "keys": {"k1": base64.b64encode(b"k" * 16).decode()}}), "16 bytes.*32"),
        (json.dumps({"active": "k2", "keys": {"k1": GOOD_KEY}}), "active key 'k2' is not among the keys"),
        (json.dumps({"active": "a:b", "keys": {"a:b": GOOD_KEY}}), "key id 'a:b'"),
    ],
    ids=["not-json", "not-an-object", "no-active", "no-keys", "not-base64", "short-key", "unknown-active", "bad-id"],
)
def test_a_malformed_keyring_is_refused_with_the_reason_and_no_key_material(
    tmp_path: Path, text: str, complaint: str
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(text)

    with pytest.raises(KeyringError, match=complaint) as from_file:
        load_keyring(settings_with(encryption_key_file=str(path)))
    with pytest.raises(KeyringError, match=complaint) as inline:
        load_keyring(settings_with(encryption_keys=text))

    assert str(path) in str(from_file.value)
    assert "OMS_ENCRYPTION_KEYS" in str(inline.value)
    assert GOOD_KEY not in str(from_file.value) + str(inline.value)


def test_a_keyring_shown_in_a_log_or_traceback_reveals_no_key() -> None:
    keyring = Keyring.generate("k1").rotated("k2")

    shown = repr(keyring) + str(keyring)

    assert "k2" in shown
    for material in key_material(keyring):
        assert material not in shown
    for key in keyring.keys.values():
        assert repr(key) not in shown


def run_keys_command(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.encryption_keys", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        # Only the keys named on the command line: none of the caller's OMS_ settings.
        env={name: value for name, value in os.environ.items() if not name.startswith("OMS_")},
    )


def test_the_key_command_makes_rotates_and_lists_keys_without_printing_them(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "encryption-keys.json"

    made = run_keys_command("init", "--file", str(path))
    first = load_keyring(settings_with(encryption_key_file=str(path))).active_id
    rotated = run_keys_command("rotate", "--file", str(path))
    listed = run_keys_command("show-ids", "--file", str(path))

    assert made.returncode == rotated.returncode == listed.returncode == 0, made.stderr + rotated.stderr
    keyring = load_keyring(settings_with(encryption_key_file=str(path)))
    # Ids made within one second differ only by their random ends: the new one is whichever is not the first.
    (second,) = set(keyring.ids) - {first}
    assert keyring.active_id == second
    assert sorted(listed.stdout.splitlines()) == sorted([first, f"{second} (active)"])
    printed = made.stdout + made.stderr + rotated.stdout + rotated.stderr + listed.stdout + listed.stderr
    for material in key_material(keyring):
        assert material not in printed


def test_the_key_command_reports_a_missing_file_in_one_line(tmp_path: Path) -> None:
    result = run_keys_command("rotate", "--file", str(tmp_path / "absent.json"))

    assert result.returncode == 1
    assert result.stderr.startswith("error: no encryption keys")
    assert "Traceback" not in result.stderr


# The payload codec


@given(
    metadata=st.dictionaries(st.text(min_size=1, max_size=20), st.binary(max_size=40), max_size=4),
    data=st.binary(max_size=2000),
)
async def test_any_payload_comes_back_unchanged_through_the_codec(metadata: dict[str, bytes], data: bytes) -> None:
    codec = EncryptionCodec(Keyring.generate("k1"))
    payload = Payload(metadata=metadata, data=data)

    assert await codec.decode(await codec.encode([payload])) == [payload]


async def test_an_encoded_payload_is_marked_names_its_key_and_shows_none_of_the_original() -> None:
    codec = EncryptionCodec(Keyring.generate("k1"))
    payload = json_payload({"email": EMAIL})

    [encoded] = await codec.encode([payload])

    assert dict(encoded.metadata) == {"encoding": ENCODING, KEY_ID_METADATA: b"k1"}
    assert EMAIL.encode() not in encoded.SerializeToString()
    assert b"json/plain" not in encoded.SerializeToString()


async def test_the_same_payload_encrypts_differently_each_time() -> None:
    codec = EncryptionCodec(Keyring.generate("k1"))
    payload = json_payload({"email": EMAIL})

    first, second = await codec.encode([payload, payload])

    assert first.data != second.data


async def test_tampered_ciphertext_is_refused() -> None:
    codec = EncryptionCodec(Keyring.generate("k1"))
    [encoded] = await codec.encode([json_payload({"total": "10.00"})])
    tampered = bytearray(encoded.data)
    tampered[-20] ^= 0x01

    with pytest.raises(DecryptionFailed, match="'k1' does not authenticate"):
        await codec.decode([Payload(metadata=encoded.metadata, data=bytes(tampered))])


async def test_a_payload_under_a_key_the_ring_lacks_is_refused_naming_the_key() -> None:
    [encoded] = await EncryptionCodec(Keyring.generate("retired-7")).encode([json_payload({"a": 1})])

    with pytest.raises(UnknownKeyId, match="'retired-7' is not in the keyring") as error:
        await EncryptionCodec(Keyring.generate("k1")).decode([encoded])

    assert error.value.key_id == "retired-7"


async def test_payloads_written_before_encryption_pass_through_decoding() -> None:
    codec = EncryptionCodec(Keyring.generate("k1"))
    plain = [json_payload({"order_id": "o-1"}), Payload(metadata={"encoding": b"binary/null"})]

    assert await codec.decode(plain) == plain


async def test_after_a_rotation_old_payloads_decode_and_new_ones_use_the_new_key() -> None:
    old_ring = Keyring.generate("k1")
    new_ring = old_ring.rotated("k2")
    [old] = await EncryptionCodec(old_ring).encode([json_payload({"n": 1})])

    codec = EncryptionCodec(new_ring)
    [new] = await codec.encode([json_payload({"n": 2})])

    assert new.metadata[KEY_ID_METADATA] == b"k2"
    assert [json.loads(p.data) for p in await codec.decode([old, new])] == [{"n": 1}, {"n": 2}]


async def test_the_data_converter_round_trips_the_order_models_encrypted() -> None:
    converter = data_converter(Keyring.generate("k1"))
    order = order_input()

    payloads = await converter.encode([order])

    assert EMAIL.encode() not in b"".join(p.SerializeToString() for p in payloads)
    assert await converter.decode(payloads, [OrderInput]) == [order]


async def test_failure_messages_and_stack_traces_travel_encrypted() -> None:
    converter = data_converter(Keyring.generate("k1"))
    try:
        raise ApplicationError(f"card of {EMAIL} refused", type="PaymentRefused", non_retryable=True)
    except ApplicationError as raised:
        failure = Failure()
        await converter.encode_failure(raised, failure)

    assert (failure.message, failure.stack_trace) == ("Encoded failure", "")
    assert EMAIL.encode() not in failure.SerializeToString()
    assert b"test_encryption.py" not in failure.SerializeToString()
    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError)
    assert decoded.message == f"card of {EMAIL} refused"
    assert decoded.type == "PaymentRefused"


# Encrypted database fields


@given(text=st.text(max_size=500))
def test_any_text_comes_back_from_an_encrypted_field(text: str) -> None:
    keyring = Keyring.generate("k1")

    stored = encrypt_text(keyring, text, context="orders.pii:o-1")

    assert stored.startswith("v1:k1:")
    assert decrypt_text(keyring, stored, context="orders.pii:o-1") == text


def test_an_encrypted_field_names_its_key_and_reads_after_a_rotation() -> None:
    keyring = Keyring.generate("k1")
    stored = encrypt_text(keyring, EMAIL, context="orders.pii:o-1")

    rotated = keyring.rotated("k2")

    assert EMAIL not in stored
    assert key_id_of(stored) == "k1"
    assert decrypt_text(rotated, stored, context="orders.pii:o-1") == EMAIL
    assert key_id_of(encrypt_text(rotated, EMAIL, context="orders.pii:o-1")) == "k2"


def test_an_encrypted_field_copied_to_another_row_does_not_decrypt() -> None:
    keyring = Keyring.generate("k1")
    stored = encrypt_text(keyring, EMAIL, context="orders.pii:o-1")

    with pytest.raises(DecryptionFailed):
        decrypt_text(keyring, stored, context="orders.pii:o-2")


@pytest.mark.parametrize("stored", ["plain text", "v1:k1", "v2:k1:AAAA", "v1:k1:not base64!"])
def test_a_value_that_is_not_an_encrypted_field_is_refused(stored: str) -> None:
    with pytest.raises(DecryptionFailed):
        decrypt_text(Keyring.generate("k1"), stored, context="orders.pii:o-1")


# The codec server's bodies, as the Temporal UI sends them


def ui_body(*payloads: Payload) -> dict[str, Any]:
    """The body the Temporal UI posts: the payloads in protobuf's JSON form."""
    body: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=payloads))
    return body


async def test_the_codec_server_decodes_what_the_service_encoded_for_the_ui() -> None:
    keyring = Keyring.generate("k1")
    payloads = await data_converter(keyring).encode([order_input()])
    body = json.loads(json.dumps(ui_body(*payloads)))

    answer = await decode_codec_body(EncryptionCodec(keyring), body)

    [decoded] = json.loads(json.dumps(answer))["payloads"]
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(decoded["data"]))["request"]["customer"]["email"] == EMAIL


async def test_codec_server_bodies_round_trip_in_the_ui_shape() -> None:
    codec = EncryptionCodec(Keyring.generate("k1"))
    body = ui_body(json_payload({"email": EMAIL}), json_payload({"n": 2}), Payload(metadata={"encoding": b"x"}))

    encoded = await encode_codec_body(codec, body)
    decoded = await decode_codec_body(codec, json.loads(json.dumps(encoded)))

    assert [set(item) for item in encoded["payloads"]] == [{"metadata", "data"}] * 3
    assert EMAIL not in json.dumps(encoded)
    assert EMAIL not in base64.b64decode(encoded["payloads"][0]["data"]).decode(errors="replace")
    assert json_format.ParseDict(decoded, Payloads()) == json_format.ParseDict(body, Payloads())


async def test_an_empty_codec_request_gets_an_empty_answer() -> None:
    codec = EncryptionCodec(Keyring.generate("k1"))

    assert await decode_codec_body(codec, {"payloads": []}) == {"payloads": []}


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"payloads": "abc"},
        {"payloads": ["abc"]},
        {"payloads": [{"data": "not base64!"}]},
        {"payloads": [{"metadata": {"encoding": 7}}]},
        {"payloads": [{"metadata": "abc"}]},
    ],
    ids=["not-an-object", "payloads-not-a-list", "payload-not-an-object", "data-not-base64", "metadata-number", "meta"],
)
async def test_a_codec_body_of_another_shape_is_refused_as_a_bad_request(body: Any) -> None:
    with pytest.raises(CodecRequestError):
        await decode_codec_body(EncryptionCodec(Keyring.generate("k1")), body)


@pytest.mark.parametrize("command", [["worker.py"], ["-m", "api"]], ids=["worker", "api"])
def test_the_worker_and_the_api_refuse_to_start_without_keys_saying_where_they_looked(
    tmp_path: Path, command: list[str]
) -> None:
    absent = tmp_path / "keys.json"
    env = {name: value for name, value in os.environ.items() if not name.startswith("OMS_")}
    env["OMS_ENCRYPTION_KEY_FILE"] = str(absent)

    result = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert f"no encryption keys: {absent} does not exist" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_payload_encryption_can_be_switched_off_only_outside_production() -> None:
    plain = Settings(payload_encryption=False)
    production = {"environment": "production", "database_url": "postgresql://oms@db/oms", "payload_encryption": False}
    secrets = {
        "external_api_key": "x",
        "api_key_hash_secret": "y",
        "carrier_webhook_secret": "z",
        "purchasing_webhook_secret": "w",
    }

    assert plain.payload_encryption is False
    with pytest.raises(ValueError, match="OMS_PAYLOAD_ENCRYPTION cannot be off in production"):
        Settings(**production, **secrets)
    assert Settings(**{**production, "payload_encryption": True}, **secrets).payload_encryption
