"""Manage API keys from the command line, against the database of DATABASE_URL (or OMS_ settings).

    python -m scripts.api_keys create --name "Shop A" --role client --client-id shop-a
    python -m scripts.api_keys list
    python -m scripts.api_keys revoke KEY_ID
    python -m scripts.api_keys lock KEY_ID
    python -m scripts.api_keys unlock KEY_ID

`create` prints the new key alone on stdout, once (`KEY=$(python -m scripts.api_keys create ...)`);
it is kept nowhere. The hashing secret (OMS_API_KEY_HASH_SECRET) must be the API's. Each change
is logged on stderr as the same security event the API logs (key_created, key_revoked, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import KeyRequest
from db.engine import create_engine, create_sessionmaker
from logging_config import configure_logging
from security.api_keys import KeyInfo, Role, create_key, list_keys, lock_key, log_key_event, revoke_key
from settings import Settings

VIA = "command line"
CHANGES = {"revoke": "key_revoked", "lock": "key_locked", "unlock": "key_unlocked"}


class UsageError(Exception):
    """What the user asked for cannot be done; the message says why."""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.api_keys", description="Manage API keys.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="make a key and print it, once")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--client-id", help="the client a client key acts for (client keys only)")
    commands.add_parser("list", help="every key, without secrets")
    for command, what in (("revoke", "revoke for good"), ("lock", "lock at once"), ("unlock", "lift a lock")):
        commands.add_parser(command, help=what).add_argument("key_id")
    return parser


def state_of(info: KeyInfo) -> str:
    if info.revoked_at is not None:
        return "revoked"
    return "locked" if info.locked_at is not None else "active"


def table(infos: list[KeyInfo]) -> str:
    rows = [("KEY ID", "ROLE", "CLIENT ID", "STATE", "CREATED", "NAME")]
    rows += [
        (
            info.key_id,
            info.role.value,
            info.client_id or "-",
            state_of(info),
            info.created_at.strftime("%Y-%m-%d %H:%M:%SZ"),
            info.name,
        )
        for info in infos
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


async def _create(session: AsyncSession, arguments: argparse.Namespace, settings: Settings) -> str:
    try:
        new = KeyRequest(name=arguments.name, role=arguments.role, client_id=arguments.client_id)
    except ValidationError as error:
        raise UsageError(f"cannot create the key: {error.errors()[0]['msg']}") from None
    key, info = await create_key(
        session, name=new.name, role=new.role, client_id=new.client_id, hash_secret=settings.api_key_hash_secret
    )
    await session.commit()
    log_key_event("key_created", info, via=VIA)
    return key


async def _change(session: AsyncSession, command: str, key_id: str) -> str:
    if command == "revoke":
        info = await revoke_key(session, key_id)
    else:
        info = await lock_key(session, key_id, locked=command == "lock")
    if info is None:
        raise UsageError(f"no API key has the key id {key_id!r}")
    await session.commit()
    log_key_event(CHANGES[command], info, via=VIA)
    return f"{info.key_id}  {state_of(info)}"


async def run(arguments: argparse.Namespace, settings: Settings) -> str:
    """What to print on stdout for the command."""
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            if arguments.command == "create":
                return await _create(session, arguments, settings)
            if arguments.command == "list":
                return table(await list_keys(session))
            return await _change(session, arguments.command, arguments.key_id)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    settings = Settings()
    # stdout carries only the answer (a new key, the list), so logs go to stderr.
    configure_logging(settings.log_level, stream=sys.stderr)
    try:
        print(asyncio.run(run(arguments, settings)))
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    if arguments.command == "create":
        print("This key is shown only now and cannot be read back: store it.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
