"""The encryption keys: a ring of AES-256-GCM keys, one of them active for new data.

The ring is JSON, kept in a file (OMS_ENCRYPTION_KEY_FILE) or given inline (OMS_ENCRYPTION_KEYS, which wins):

    {"active": "<key id>", "keys": {"<key id>": "<base64 of 32 bytes>", ...}}

New data is encrypted under the active key and names it; every key of the ring still decrypts what
was written under it, so rotating (a new active key, the old ones kept) leaves old data readable.
Errors name the file and the key id, never key material.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from settings import Settings

KEY_BYTES = 32
NONCE_BYTES = 12
# Key ids travel in payload metadata and in stored values separated by ":", so they are kept plain.
KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class KeyringError(ValueError):
    """The keys are missing or malformed; the message says which and where."""


class UnknownKeyId(KeyringError):
    """Data names a key that is not in the ring: the ring lost a key it still needs."""

    def __init__(self, key_id: str, known: list[str]) -> None:
        super().__init__(f"encryption key {key_id!r} is not in the keyring (it holds {', '.join(known)})")
        self.key_id = key_id


class DecryptionFailed(ValueError):
    """The ciphertext does not authenticate under the key it names: tampered, truncated or misplaced."""


def new_key_id() -> str:
    """A key id that sorts by creation time and does not collide with one made the same second."""
    return f"k{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Keyring:
    active_id: str
    # Left out of repr, so a keyring in a log line or a traceback shows no key material.
    keys: Mapping[str, bytes] = field(repr=False)
    _ciphers: Mapping[str, AESGCM] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key_id, key in self.keys.items():
            if not KEY_ID.match(key_id):
                raise KeyringError(f"key id {key_id!r} is not 1-64 letters, digits, '.', '_' or '-'")
            if len(key) != KEY_BYTES:
                raise KeyringError(f"key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}")
        if self.active_id not in self.keys:
            raise KeyringError(f"the active key {self.active_id!r} is not among the keys ({', '.join(self.ids)})")
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))
        object.__setattr__(self, "_ciphers", {key_id: AESGCM(key) for key_id, key in self.keys.items()})

    @classmethod
    def generate(cls, key_id: str | None = None) -> Keyring:
        """A ring of one fresh random key, active."""
        key_id = key_id or new_key_id()
        return cls(active_id=key_id, keys={key_id: AESGCM.generate_key(bit_length=8 * KEY_BYTES)})

    @classmethod
    def from_json(cls, text: str, source: str) -> Keyring:
        """Parse the ring's JSON; `source` names where it came from in error messages."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise KeyringError(f"{source} is not valid JSON (line {error.lineno}, column {error.colno})") from None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), dict):
            raise KeyringError(f'{source} must be {{"active": "<key id>", "keys": {{"<key id>": "<base64>"}}}}')
        active, encoded = document.get("active"), document["keys"]
        if not isinstance(active, str):
            raise KeyringError(f'{source} names no active key ("active": "<key id>")')
        if not encoded:
            raise KeyringError(f"{source} holds no keys")
        keys: dict[str, bytes] = {}
        for key_id, value in encoded.items():
            try:
                keys[key_id] = base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise KeyringError(f"key {key_id!r} in {source} is not base64") from None
        try:
            return cls(active_id=active, keys=keys)
        except KeyringError as error:
            raise KeyringError(f"{source}: {error}") from None

    def to_json(self) -> str:
        """The ring with its key material: for the key file or OMS_ENCRYPTION_KEYS only, never for a log."""
        keys = {key_id: base64.b64encode(key).decode() for key_id, key in self.keys.items()}
        return json.dumps({"active": self.active_id, "keys": keys}, indent=2)

    def rotated(self, key_id: str | None = None) -> Keyring:
        """This ring with one more fresh key, which becomes the active one."""
        key_id = key_id or new_key_id()
        if key_id in self.keys:
            raise KeyringError(f"key id {key_id!r} is already in the keyring")
        return Keyring(active_id=key_id, keys={**self.keys, key_id: AESGCM.generate_key(bit_length=8 * KEY_BYTES)})

    @property
    def ids(self) -> list[str]:
        return sorted(self.keys)

    def encrypt(self, plaintext: bytes, associated_data: bytes | None = None) -> tuple[str, bytes]:
        """Encrypt under the active key: (key id, 96-bit random nonce followed by ciphertext and tag)."""
        nonce = os.urandom(NONCE_BYTES)
        return self.active_id, nonce + self._ciphers[self.active_id].encrypt(nonce, plaintext, associated_data)

    def decrypt(self, key_id: str, sealed: bytes, associated_data: bytes | None = None) -> bytes:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyId(key_id, self.ids)
        try:
            return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated_data)
        except InvalidTag:
            raise DecryptionFailed(
                f"data encrypted under key {key_id!r} does not authenticate: it was altered or belongs elsewhere"
            ) from None


def load_keyring(settings: Settings) -> Keyring:
    """The ring the service runs with: OMS_ENCRYPTION_KEYS if set, else the key file."""
    if settings.encryption_keys:
        return Keyring.from_json(settings.encryption_keys, "OMS_ENCRYPTION_KEYS")
    return read_key_file(Path(settings.encryption_key_file))


def read_key_file(path: Path) -> Keyring:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise KeyringError(
            f"no encryption keys: {path} does not exist. Create it with "
            f"`python -m scripts.encryption_keys init --file {path}`, or set OMS_ENCRYPTION_KEYS"
        ) from None
    except OSError as error:
        raise KeyringError(f"cannot read the encryption key file {path}: {error.strerror}") from None
    return Keyring.from_json(text, f"the encryption key file {path}")


def create_key_file(path: Path) -> Keyring:
    """Write a new ring of one fresh key to `path` (mode 0600, parent directory made); never overwrites."""
    if path.exists():
        raise KeyringError(f"{path} already exists; rotate its keys instead of replacing them")
    keyring = Keyring.generate()
    _write(path, keyring, replace=False)
    return keyring


def rotate_key_file(path: Path) -> Keyring:
    """Add a fresh key to the file's ring and make it active; the old keys stay to read old data."""
    keyring = read_key_file(path).rotated()
    _write(path, keyring, replace=True)
    return keyring


def _write(path: Path, keyring: Keyring, *, replace: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Written beside the target (mkstemp makes it 0600) and then moved into place whole:
    # a crash leaves the old ring or the new one, never half of one.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(keyring.to_json() + "\n")
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            # A link fails if the path appeared meanwhile, where a rename would overwrite it.
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise KeyringError(f"{path} already exists; rotate its keys instead of replacing them") from None
    finally:
        Path(temporary).unlink(missing_ok=True)
