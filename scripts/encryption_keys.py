"""Manage the encryption key file: `python -m scripts.encryption_keys init|rotate|show-ids [--file PATH]`.

  init      create the file with one fresh key (mode 0600); refuses to replace an existing file
  rotate    add a fresh key and make it the active one; older keys stay, to read older data
  show-ids  list the key ids, marking the active one

The file defaults to OMS_ENCRYPTION_KEY_FILE (data/encryption-keys.json). Nothing here prints
key material. After a rotation, restart the API and the worker so they encrypt under the new key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from security.keyring import Keyring, KeyringError, create_key_file, load_keyring, read_key_file, rotate_key_file
from settings import Settings


def describe(keyring: Keyring) -> str:
    return "\n".join(f"{key_id}{' (active)' if key_id == keyring.active_id else ''}" for key_id in keyring.ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.encryption_keys", description="Manage the encryption key file."
    )
    parser.add_argument("command", choices=["init", "rotate", "show-ids"])
    parser.add_argument("--file", type=Path, help="the key file (default: OMS_ENCRYPTION_KEY_FILE)")
    arguments = parser.parse_args(argv)
    settings = Settings()
    path: Path = arguments.file or Path(settings.encryption_key_file)
    try:
        if arguments.command == "init":
            keyring = create_key_file(path)
            print(f"created {path} with key {keyring.active_id}")
        elif arguments.command == "rotate":
            keyring = rotate_key_file(path)
            print(f"{path}: {keyring.active_id} is now the active key of {len(keyring.ids)}")
        elif arguments.file is None:
            # Without --file: the keys the service would run with, inline ones included.
            print(describe(load_keyring(settings)))
        else:
            print(describe(read_key_file(path)))
    except KeyringError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if arguments.command != "show-ids" and settings.encryption_keys:
        print("note: OMS_ENCRYPTION_KEYS is set and wins over any key file", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
