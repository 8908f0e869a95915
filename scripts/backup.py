"""Backups from the command line (and `make backup`), of the stores the settings name.

    python -m scripts.backup create [--no-upload]   take one now: a folder under OMS_BACKUP_DIR, uploaded when S3 is set
    python -m scripts.backup list [--remote]        the backups, newest first (--remote: those in S3 too)
    python -m scripts.backup verify [NAME]          checksums, and a restore into a scratch database (NAME: latest)
    python -m scripts.backup restore NAME [--force] restore every store; NAME may be "latest"
    python -m scripts.backup schedule               register the backup-periodic schedule (OMS_BACKUP_INTERVAL)
    python -m scripts.backup worker                 the schedule, and a worker that takes only backups

The stores: the order database (DATABASE_URL) and the Temporal stores (OMS_BACKUP_TEMPORAL_URLS).
`restore` refuses stores that hold tables unless --force; stop the service before restoring.
Errors are one line on stderr and the exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

import structlog
from temporalio.worker import Worker

from activities.backup import BackupActivities
from backup.manifest import BackupError
from backup.schedule import ensure_backup_schedule
from backup.store import create, list_backups, restore, verify
from logging_config import configure_logging
from settings import Settings
from temporal_client import connect
from workflows.backup import BackupWorkflow

log = structlog.get_logger("oms.backup")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.backup", description="Back up and restore the service.")
    commands = parser.add_subparsers(dest="command", required=True)
    create_command = commands.add_parser("create", help="take a backup now")
    create_command.add_argument("--no-upload", action="store_true", help="keep it local even when S3 is configured")
    list_command = commands.add_parser("list", help="the backups, newest first")
    list_command.add_argument("--remote", action="store_true", help="list those in S3 too")
    verify_command = commands.add_parser("verify", help="check a backup and restore it into scratch databases")
    verify_command.add_argument("name", nargs="?", default="latest")
    restore_command = commands.add_parser("restore", help="restore a backup into the configured stores")
    restore_command.add_argument("name", help='a backup name from `list`, or "latest"')
    restore_command.add_argument("--force", action="store_true", help="replace stores that are not empty")
    commands.add_parser("schedule", help="register the backup-periodic schedule")
    commands.add_parser("worker", help="register the schedule and run a worker taking the backups")
    return parser


def progress(step: str) -> None:
    print(f"  {step}", file=sys.stderr, flush=True)


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def listing(settings: Settings, remote: bool) -> str:
    rows = [("NAME", "TAKEN", "SIZE", "STORES", "SCHEMA", "WHERE")]
    for item in list_backups(settings, remote=remote):
        manifest = item.local
        where = "+".join(place for place, there in (("local", manifest), ("s3", item.remote)) if there)
        rows.append(
            (
                item.name,
                manifest.created_at.strftime("%Y-%m-%d %H:%M:%S UTC") if manifest else "-",
                human(manifest.bytes) if manifest else "-",
                ",".join(part.name for part in manifest.parts) if manifest else "-",
                (manifest.alembic_revision or "-") if manifest else "-",
                where,
            )
        )
    if len(rows) == 1:
        return f"no backups in {settings.backup_dir}" + (" or S3" if remote else "")
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


async def run_worker(settings: Settings) -> None:
    client = await connect(settings)
    log.info("backup schedule " + await ensure_backup_schedule(client, settings), every=str(settings.backup_interval))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    backups = BackupActivities(settings)
    async with Worker(
        client, task_queue=settings.task_queue, workflows=[BackupWorkflow], activities=[backups.take_backup]
    ):
        log.info("backup worker started", task_queue=settings.task_queue)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    # Reading the migration scripts (restore checks the backup's schema revision) would log each plugin.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        if arguments.command == "create":
            created = create(settings, upload=not arguments.no_upload, progress=progress)
            manifest = created.manifest
            print(f"backup {manifest.name}: {human(manifest.bytes)} in {created.folder} ({manifest.seconds:.1f} s)")
            for part in manifest.parts:
                print(f"  {part.file}  {human(part.bytes)}  sha256 {part.sha256}  from {part.source}")
            if created.uploaded_to:
                print(f"  uploaded to {created.uploaded_to}")
            for gone in created.deleted:
                print(f"  removed {gone} (keeping the newest {settings.backup_keep})")
        elif arguments.command == "list":
            print(listing(settings, arguments.remote))
        elif arguments.command == "verify":
            for line in verify(settings, arguments.name, progress=progress):
                print(line)
            print("the backup is sound")
        elif arguments.command == "restore":
            for line in restore(settings, arguments.name, force=arguments.force, progress=progress):
                print(line)
        elif arguments.command == "schedule":
            print(f"backup schedule {asyncio.run(_ensure(settings))}: every {settings.backup_interval}")
        elif arguments.command == "worker":
            if settings.backup_interval is None:
                raise BackupError("set OMS_BACKUP_INTERVAL (e.g. PT6H) for the backup worker")
            asyncio.run(run_worker(settings))
    except BackupError as error:
        print(f"backup: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"backup: {error}", file=sys.stderr)
        return 1
    return 0


async def _ensure(settings: Settings) -> str:
    return await ensure_backup_schedule(await connect(settings), settings)


if __name__ == "__main__":
    sys.exit(main())
