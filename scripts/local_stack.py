"""`make run`: the whole service on this machine, in the foreground, stopped cleanly by Ctrl-C.

SIGTERM (from a supervisor: systemd, docker stop) and SIGHUP (its terminal closing) stop it the
same way: each child leads a session of its own, so only this process can stop them.

Starts a Temporal dev server (state kept under the data folder), brings the
database to the newest schema, seeds a demo catalogue and 90 days of demo order
history (once), then runs the stand-in outside systems, the worker and the API
as child processes sharing one environment; with no forecast yet it triggers the
demand-forecast schedule once. If any child dies the rest are stopped and the
exit status is 1.

Payloads and customer data are encrypted: unless keys are configured
(OMS_ENCRYPTION_KEYS or OMS_ENCRYPTION_KEY_FILE), the first run makes a key file
in the data folder and every later run reuses it. The Temporal UI decodes
payloads through the API's codec endpoint once the operator has signed in at
its /codec/login page and followed the steps listed there.

The API requires a key: the first run makes a local admin key, kept in the data
folder (`admin-key`, readable by its owner only) and reused by every later run,
hands it to the API as its bootstrap admin key and prints it in the banner.

Environment (defaults in brackets), so a second stack can run beside the first:
  OMS_STACK_DATA_DIR [data]            SQLite database, Temporal state and the encryption key file
  OMS_STACK_TEMPORAL_PORT [7233]       Temporal frontend (gRPC)
  OMS_STACK_TEMPORAL_UI_PORT [8233]    Temporal web UI
  OMS_API_PORT [8000]                  the API (its metrics at /metrics)
  OMS_STACK_WORKER_METRICS_PORT [9464] the worker's Temporal SDK metrics, at /metrics
  OMS_WORKER_PROCESSES [1]             worker processes under one supervisor (python worker.py --processes),
                                       process I serving its metrics on the port above + I
  STANDINS_PORT [8100]                 the stand-in outside systems
  DATABASE_URL                         PostgreSQL instead of SQLite under the data folder
  OMS_BOOTSTRAP_ADMIN_KEY              an admin key of your own instead of the one in the data folder
  OMS_BACKUP_INTERVAL                  e.g. PT6H: the backup-periodic schedule takes a backup that often,
                                       into OMS_BACKUP_DIR [backups beside the data folder]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.engine import make_url
from temporalio.service import ConnectConfig, RPCError, ServiceClient

from backup.schedule import ensure_backup_schedule
from db.engine import create_engine, create_sessionmaker
from db.migrate import upgrade
from forecast_schedule import ensure_forecast_schedule
from logging_config import configure_logging
from models.forecast import FORECAST_SCHEDULE_ID
from models.forecast_tables import DemandForecastRow
from models.names import SEARCH_ATTRIBUTES
from scripts.demo_catalogue import FLAGGED_CUSTOMER_ID, seed
from scripts.demo_history import seed_history
from security.api_keys import InvalidKey, new_key, split_key
from security.keyring import KeyringError, create_key_file, load_keyring, read_key_file
from settings import Settings
from temporal_client import connect
from worker_supervisor import child_metrics_address

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

TEMPORAL_START_SECONDS = 60.0
API_READY_SECONDS = 60.0
STOP_GRACE_SECONDS = 15.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
OUTSIDE_SYSTEMS = ("carrier", "finance", "crm", "notifications", "purchasing")
ADMIN_KEY_FILE = "admin-key"

log = structlog.get_logger("oms.local_stack")

# The body of the curl example in the banner.
DEMO_ORDER = (
    '{"customer": {"id": "cust-1001", "name": "Ada Lovelace", "email": "ada@example.com", '
    '"phone": "+44 20 7946 0000"}, '
    '"lines": [{"sku": "MUG-001", "quantity": 2, "unit_price": "12.50"}, '
    '{"sku": "BOOK-003", "quantity": 1, "unit_price": "29.00"}], '
    '"shipping_address": {"name": "Ada Lovelace", "line1": "12 St James Square", "city": "London", '
    '"postal_code": "SW1Y 4JH", "country": "GB"}}'
)


class StackError(Exception):
    """Why the stack cannot run, told to the user in one line."""


@dataclass(frozen=True)
class StackConfig:
    data_dir: Path
    temporal_port: int
    temporal_ui_port: int
    api_port: int
    standins_port: int
    # Benchmarks compare against a server keeping nothing on disk.
    temporal_in_memory: bool = False
    # None: the worker serves no metrics, as in the fault drills and benchmarks, which make their config by hand.
    worker_metrics_port: int | None = None
    # `make run` only: 90 days of demo order history and a first forecast of it. The drills and
    # benchmarks count every order in the database as theirs.
    demo_history: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> StackConfig:
        def port(name: str, default: int) -> int:
            value = environ.get(name, str(default))
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise StackError(f"{name}={value!r} is not a port number")
            return int(value)

        return cls(
            data_dir=Path(environ.get("OMS_STACK_DATA_DIR", "data")).resolve(),
            temporal_port=port("OMS_STACK_TEMPORAL_PORT", 7233),
            temporal_ui_port=port("OMS_STACK_TEMPORAL_UI_PORT", 8233),
            api_port=port("OMS_API_PORT", 8000),
            standins_port=port("STANDINS_PORT", 8100),
            worker_metrics_port=port("OMS_STACK_WORKER_METRICS_PORT", 9464),
            demo_history=True,
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def worker_metrics_address(self) -> str:
        return f"127.0.0.1:{self.worker_metrics_port}" if self.worker_metrics_port else ""

    def ports(self) -> dict[str, tuple[int, str]]:
        ports = {
            "Temporal server": (self.temporal_port, "OMS_STACK_TEMPORAL_PORT"),
            "Temporal UI": (self.temporal_ui_port, "OMS_STACK_TEMPORAL_UI_PORT"),
            "API": (self.api_port, "OMS_API_PORT"),
            "stand-ins": (self.standins_port, "STANDINS_PORT"),
        }
        if self.worker_metrics_port:
            ports["worker metrics"] = (self.worker_metrics_port, "OMS_STACK_WORKER_METRICS_PORT")
        return ports

    @property
    def codec_url(self) -> str:
        return f"{self.api_url}/codec"

    def database_url(self, settings: Settings) -> str:
        if settings.database_url != Settings.model_fields["database_url"].default:
            return settings.database_url
        return f"sqlite:///{self.data_dir / 'oms.sqlite3'}"

    def key_file(self, settings: Settings) -> Path | None:
        """The stack's own key file, or None when keys are configured (inline, or a file named by hand)."""
        configured_file = settings.encryption_key_file != Settings.model_fields["encryption_key_file"].default
        if settings.encryption_keys or configured_file:
            return None
        return self.data_dir / "encryption-keys.json"

    def child_environment(
        self, environ: Mapping[str, str], database_url: str, settings: Settings, key_file: Path | None
    ) -> dict[str, str]:
        env = dict(environ)
        # Outside-system URLs set by hand win, so one of them can point at a real sandbox.
        for system in OUTSIDE_SYSTEMS:
            env.setdefault(f"OMS_{system.upper()}_URL", f"http://127.0.0.1:{self.standins_port}/{system}")
        # The Temporal UI calls the codec endpoint from the browser, from this stack's UI origin.
        ui = self.temporal_ui_port
        env.setdefault("OMS_CODEC_CORS_ORIGINS", f"http://127.0.0.1:{ui},http://localhost:{ui}")
        env.setdefault("OMS_TEMPORAL_UI_URL", f"http://127.0.0.1:{ui}")
        if key_file is not None:
            env["OMS_ENCRYPTION_KEY_FILE"] = str(key_file)
        # Backups (the worker takes the scheduled ones) of this stack's Temporal file, beside the data folder.
        env.setdefault(
            "OMS_BACKUP_TEMPORAL_URLS",
            "" if self.temporal_in_memory else f"sqlite:///{self.data_dir / 'temporal.sqlite3'}",
        )
        env.setdefault("OMS_BACKUP_DIR", str(self.data_dir.parent / "backups"))
        env.update(
            DATABASE_URL=database_url,
            OMS_TEMPORAL_ADDRESS=f"127.0.0.1:{self.temporal_port}",
            OMS_API_PORT=str(self.api_port),
            OMS_WORKER_METRICS_ADDRESS=self.worker_metrics_address,
            STANDINS_PORT=str(self.standins_port),
            STANDINS_WEBHOOK_URL=f"{self.api_url}/webhooks/carrier",
            # The stand-in carrier signs with the secret the API checks, the purchasing inbox
            # checks with the one the worker signs with.
            STANDINS_WEBHOOK_SECRET=settings.carrier_webhook_secret,
            STANDINS_PURCHASING_WEBHOOK_SECRET=settings.purchasing_webhook_secret,
            PYTHONUNBUFFERED="1",
        )
        return env


def local_admin_key(data_dir: Path) -> str:
    """The local stack's admin key: made on the first run, kept in the data folder for its owner only, reused after."""
    path = data_dir / ADMIN_KEY_FILE
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = new_key()
        # Created with its final mode, so that the key is never readable by others, not even for a moment.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(key + "\n")
        return key
    try:
        split_key(key)
    except InvalidKey:
        raise StackError(f"{path} does not hold an API key: delete it, and the next run makes a new one") from None
    path.chmod(0o600)
    return key


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    # Stopped on purpose (stop_child), to be started again: not a child that died.
    stopped: bool = False


class LocalStack:
    def __init__(self, config: StackConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.database_url = config.database_url(settings)
        self.key_file = config.key_file(settings)
        self.env = config.child_environment(os.environ, self.database_url, settings, self.key_file)
        self.children: list[Child] = []
        self.admin_key = ""

    async def start(self) -> None:
        self._refuse_taken_ports()
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_keys()
        self.admin_key = self.env.get("OMS_BOOTSTRAP_ADMIN_KEY") or local_admin_key(self.config.data_dir)
        await self._start_temporal()
        log.info("migrating database", database=_without_password(self.database_url))
        await asyncio.to_thread(upgrade, self.database_url)
        await self._seed()
        await self._spawn("stand-ins", sys.executable, "-m", "standins")
        await self._spawn("worker", sys.executable, str(ROOT / "worker.py"))
        # Only the API is given the admin key.
        await self._spawn("API", sys.executable, "-m", "api", env={"OMS_BOOTSTRAP_ADMIN_KEY": self.admin_key})
        await self._wait_for_api()
        await self._first_forecast()
        if self.settings.backup_interval is not None:
            await self._schedule_backups()

    async def supervise(self, stop: asyncio.Event) -> int:
        """Wait for a stop request (exit status 0) or the first child to die (1)."""
        stopped = asyncio.create_task(stop.wait())
        exits = {asyncio.create_task(child.process.wait()): child for child in self.children}
        done, pending = await asyncio.wait({stopped, *exits}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if stopped in done:
            log.info("stopping")
            return 0
        dead = next(exits[task] for task in done if task in exits)
        log.error(f"the {dead.name} exited with code {dead.process.returncode}; stopping the stack")
        return 1

    async def stop(self) -> None:
        """Stop the children newest first, so the Temporal server goes last."""
        for child in reversed(self.children):
            await _stop_child(child)
        self.children.clear()

    async def _schedule_backups(self) -> None:
        """The backup-periodic schedule, created or brought up to date; the worker takes its backups."""
        settings = self.settings.model_copy(
            update={"temporal_address": f"127.0.0.1:{self.config.temporal_port}"}
            | ({"encryption_key_file": str(self.key_file)} if self.key_file else {})
        )
        outcome = await ensure_backup_schedule(await connect(settings), settings)
        log.info(f"backup schedule {outcome}", every=str(settings.backup_interval), into=self.env["OMS_BACKUP_DIR"])

    def worker_metrics_addresses(self) -> list[str]:
        """Where the worker serves its metrics: one address per worker process (none when not served)."""
        base = self.config.worker_metrics_address
        if not base:
            return []
        return [child_metrics_address(base, index) for index in range(self.settings.worker_processes)]

    def _refuse_taken_ports(self) -> None:
        ports = self.config.ports()
        for index, address in enumerate(self.worker_metrics_addresses()[1:], start=1):
            port = int(address.rsplit(":", 1)[1])
            ports[f"worker metrics of process {index}"] = (port, "OMS_STACK_WORKER_METRICS_PORT")
        for what, (port, variable) in ports.items():
            if _port_taken(port):
                raise StackError(f"port {port} for the {what} is already in use: stop what holds it or set {variable}")

    def _prepare_keys(self) -> None:
        """Make the stack's key file on the first run; check that the keys every child will load are sound."""
        try:
            if self.key_file is None:
                load_keyring(self.settings)
                return
            if self.key_file.exists():
                read_key_file(self.key_file)
            else:
                keyring = create_key_file(self.key_file)
                log.info("created an encryption key file", path=str(self.key_file), key_id=keyring.active_id)
        except KeyringError as error:
            raise StackError(str(error)) from None

    async def _start_temporal(self) -> None:
        attributes = [arg for item in SEARCH_ATTRIBUTES.items() for arg in ("--search-attribute", "=".join(item))]
        temporal = await self._spawn(
            "Temporal server",
            str(BIN / "temporal"),
            "server",
            "start-dev",
            *(
                []
                if self.config.temporal_in_memory
                else ["--db-filename", str(self.config.data_dir / "temporal.sqlite3")]
            ),
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.config.temporal_port),
            "--ui-port",
            str(self.config.temporal_ui_port),
            "--ui-codec-endpoint",
            self.config.codec_url,
            # The UI's news feed is fetched from the internet; a local stack needs none of it.
            "--ui-disable-news-fetch",
            "--namespace",
            self.settings.temporal_namespace,
            "--log-level",
            "warn",
            *attributes,
        )
        address = f"127.0.0.1:{self.config.temporal_port}"
        deadline = asyncio.get_running_loop().time() + TEMPORAL_START_SECONDS
        while True:
            self._check_alive()
            try:
                service = await asyncio.wait_for(ServiceClient.connect(ConnectConfig(target_host=address)), timeout=5)
                await service.check_health()
                log.info("Temporal server is up", target=address, pid=temporal.process.pid)
                return
            except (RuntimeError, RPCError, TimeoutError, OSError):
                if asyncio.get_running_loop().time() > deadline:
                    raise StackError(
                        f"the Temporal server did not answer on {address} within {TEMPORAL_START_SECONDS:.0f}s"
                    ) from None
                await asyncio.sleep(0.5)

    async def _seed(self) -> None:
        engine = create_engine(self.database_url, pool_size=2)
        try:
            sessionmaker = create_sessionmaker(engine)
            await seed(sessionmaker)
            if self.config.demo_history:
                keyring = load_keyring(self.settings) if self.key_file is None else read_key_file(self.key_file)
                added = await seed_history(sessionmaker, keyring, datetime.now(UTC).date())
                log.info("demo order history ready", orders_added=added)
        finally:
            await engine.dispose()
        log.info("demo catalogue ready")

    async def _first_forecast(self) -> None:
        """With no forecast yet (a first start), trigger the demand-forecast schedule so there is one to show."""
        settings = self.settings.model_copy(
            update={"temporal_address": f"127.0.0.1:{self.config.temporal_port}"}
            | ({"encryption_key_file": str(self.key_file)} if self.key_file else {})
        )
        if settings.forecast_interval is None or not self.config.demo_history:
            return
        engine = create_engine(self.database_url, pool_size=1)
        try:
            async with create_sessionmaker(engine)() as session:
                forecast_made = await session.scalar(select(DemandForecastRow.sku).limit(1))
        finally:
            await engine.dispose()
        if forecast_made is None:
            client = await connect(settings)
            # The worker registers the schedule too; whichever comes first creates it, the other updates it.
            await ensure_forecast_schedule(client, settings)
            await client.get_schedule_handle(FORECAST_SCHEDULE_ID).trigger()
            log.info("demand forecast triggered for the demo history")

    async def _spawn(self, name: str, *command: str, env: Mapping[str, str] | None = None) -> Child:
        # Each child leads its own process group: Ctrl-C reaches only this
        # supervisor, which then stops the children in order.
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env={**self.env, **(env or {})}, start_new_session=True
        )
        child = Child(name, process)
        self.children.append(child)
        log.info("started", child=name, pid=process.pid)
        return child

    def _check_alive(self) -> None:
        for child in self.children:
            if child.process.returncode is not None and not child.stopped:
                raise StackError(f"the {child.name} exited during start-up with code {child.process.returncode}")

    async def _wait_for_api(self) -> None:
        url = f"{self.config.api_url}/readyz"
        deadline = asyncio.get_running_loop().time() + API_READY_SECONDS
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                self._check_alive()
                try:
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise StackError(f"the API was not ready at {url} within {API_READY_SECONDS:.0f}s")
                await asyncio.sleep(0.5)

    def banner(self) -> str:
        api = self.config.api_url
        ui = f"http://127.0.0.1:{self.config.temporal_ui_port}"
        admin_key_file = self.config.data_dir / ADMIN_KEY_FILE
        place_order = " ".join(
            [
                f"curl -s -X POST {api}/orders",
                f"-H 'Authorization: Bearer {self.admin_key}'",
                "-H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1'",
                f"-d '{DEMO_ORDER}'",
            ]
        )
        # A database URL with a password came from the environment, where the command finds it too.
        database = "" if make_url(self.database_url).password else f"DATABASE_URL='{self.database_url}' "
        make_key = f"{database}{sys.executable} -m scripts.api_keys create --name 'demo shop' --role client"
        addresses = self.worker_metrics_addresses()
        worker_metrics = " ".join(f"http://{address}/metrics" for address in addresses) or "not served"
        about_worker_metrics = "Temporal SDK metrics"
        if len(addresses) > 1:
            about_worker_metrics += f", one endpoint per worker process ({len(addresses)} under a supervisor)"
        return f"""
Order management is running. Ctrl-C stops everything.

  API          {api}   (OpenAPI docs: {api}/docs)
  Console      {api}/console   (sign in with the admin key below)
  Temporal UI  {ui}   (to see orders decoded, sign in at {self.config.codec_url}/login)
  Stand-ins    http://127.0.0.1:{self.config.standins_port}
  Metrics      API {api}/metrics   (Prometheus text; an operator or admin key)
               worker {worker_metrics}   ({about_worker_metrics})
  Database     {_without_password(self.database_url)}
  Data keys    {self.key_file or "as configured (OMS_ENCRYPTION_KEYS or OMS_ENCRYPTION_KEY_FILE)"}
  Admin key    {self.admin_key}   (local only; kept in {admin_key_file})

Place a demo order (customer id {FLAGGED_CUSTOMER_ID} goes to manual review; CHAIR-006 is nearly out of stock):

  {place_order}

Make a key for a shop (it sees only its own orders):

  {make_key} --client-id shop-1
"""

    # One child at a time, for fault drills (faults/): stop it as an outage or a crash would, start it again.

    def child(self, name: str) -> Child:
        """The child of that name most recently started."""
        for child in reversed(self.children):
            if child.name == name:
                return child
        raise StackError(f"the stack has no child named {name!r}")

    async def stop_child(self, name: str, *, kill: bool = False) -> None:
        """Stop one child: SIGKILL at once with `kill` (a crash), otherwise SIGTERM and a grace period."""
        child = self.child(name)
        child.stopped = True
        if kill:
            _signal_group(child.process.pid, signal.SIGKILL)
            await child.process.wait()
            log.info("killed", child=name, pid=child.process.pid)
        else:
            await _stop_child(child)

    async def restart_child(self, name: str) -> Child:
        """Start a stopped child again as `start` did, keeping its place in the stopping order."""
        old = self.child(name)
        if old.process.returncode is None:
            raise StackError(f"the {name} is still running")
        place = self.children.index(old)
        self.children.remove(old)
        commands = {
            "stand-ins": (sys.executable, "-m", "standins"),
            "worker": (sys.executable, str(ROOT / "worker.py")),
            "API": (sys.executable, "-m", "api"),
        }
        if name == "Temporal server":
            await self._start_temporal()
        elif name in commands:
            await self._spawn(name, *commands[name])
        else:
            raise StackError(f"the {name} cannot be restarted")
        new = self.children.pop()
        self.children.insert(place, new)
        if name == "API":
            await self._wait_for_api()
        return new


async def _stop_child(child: Child) -> None:
    process = child.process
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=STOP_GRACE_SECONDS)
        except TimeoutError:
            log.warning("did not stop in time, killing it", child=child.name, pid=process.pid)
            _signal_group(process.pid, signal.SIGKILL)
            await process.wait()
    # Anything the child left behind in its group goes too.
    _signal_group(process.pid, signal.SIGKILL)
    log.info("stopped", child=child.name, exit_code=process.returncode)


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        # Servers set SO_REUSEADDR too, so a socket in TIME_WAIT does not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _without_password(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def _unless_stopped(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Run `work` unless a stop is requested first; True when it completed."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        stopped.cancel()
        task.result()
        return True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return False


async def run(config: StackConfig, settings: Settings) -> int:
    stack = LocalStack(config, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Every signal that ends a foreground program; one left to its default would end this process
    # alone and leave the children running.
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        if not await _unless_stopped(stack.start(), stop):
            return 0
        print(stack.banner(), flush=True)
        return await stack.supervise(stop)
    except StackError as error:
        log.error(str(error))
        return 1
    finally:
        await stack.stop()


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    # The readiness polling would otherwise log every attempt.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        config = StackConfig.from_env(os.environ)
    except StackError as error:
        log.error(str(error))
        sys.exit(1)
    sys.exit(asyncio.run(run(config, settings)))


if __name__ == "__main__":
    main()
