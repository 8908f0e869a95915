"""All configuration, read once from the environment (prefix OMS_, or a .env file)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models import names

DEV_CREDENTIAL = "local-dev-credential"
# Development-only secrets; production refuses to start with any of them.
DEV_API_KEY_HASH_SECRET = "local-dev-api-key-hash-secret"
DEV_WEBHOOK_SECRET = "local-dev-webhook-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMS_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    log_level: str = "INFO"

    # DATABASE_URL (no prefix) is honoured too, as most platforms set it.
    database_url: str = Field(
        default="sqlite:///data/oms.sqlite3",
        validation_alias="DATABASE_URL",
    )
    db_pool_size: int = 10

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    # gRPC compression of the Temporal client's requests: gzip (the SDK's default) or none. Payloads
    # are encrypted, so gzip mostly costs CPU; `make bench` measures either.
    temporal_grpc_compression: Literal["gzip", "none"] = "gzip"
    task_queue: str = names.TASK_QUEUE
    # The Temporal UI as operators' browsers reach it: the console links each order to its workflow there.
    temporal_ui_url: str = "http://127.0.0.1:8233"
    # The console shows a SKU as low on stock when this many units or fewer are available over all warehouses.
    low_stock_units: int = Field(default=5, ge=0)

    # Review rules.
    review_manual_threshold: Decimal = Decimal("10000.00")
    review_hard_limit: Decimal = Decimal("1000000.00")
    review_timeout: timedelta = timedelta(hours=48)
    backorder_timeout: timedelta = timedelta(days=7)
    delivery_timeout: timedelta = timedelta(days=14)

    # Returns: how long after delivery a client may return goods, the value above which an operator
    # reviews a return, and how long the customer has to send the goods once the label is issued.
    return_window_days: int = Field(default=30, ge=0)
    return_review_threshold: Decimal = Decimal("1000.00")
    return_shipping_days: int = Field(default=30, ge=1)

    # Warehouses are drawn from in this order; unlisted ones come after, by code.
    warehouse_priority: Annotated[list[str], NoDecode] = []

    # Outside systems.
    carrier_url: str = "http://127.0.0.1:8100/carrier"
    finance_url: str = "http://127.0.0.1:8100/finance"
    crm_url: str = "http://127.0.0.1:8100/crm"
    notifications_url: str = "http://127.0.0.1:8100/notifications"
    purchasing_url: str = "http://127.0.0.1:8100/purchasing"
    external_api_key: str = DEV_CREDENTIAL
    http_timeout_seconds: float = 5.0
    http_max_connections: int = 100

    # API keys: stored as HMAC-SHA256 under this secret; the bootstrap key is made an admin key at start-up.
    api_key_hash_secret: str = DEV_API_KEY_HASH_SECRET
    bootstrap_admin_key: str | None = None
    # Brute force: this many failed authentications from one source within the window block it for a while.
    auth_failure_limit: int = 10
    auth_failure_window_seconds: float = 60.0
    auth_block_seconds: float = 300.0
    # POST /orders per API key per minute.
    order_rate_limit_per_minute: int = 600

    # Encryption of Temporal payloads and personal data in the database: a JSON keyring file
    # ({"active": id, "keys": {id: base64 of 32 bytes}}), or the same JSON in OMS_ENCRYPTION_KEYS.
    encryption_key_file: str = "data/encryption-keys.json"
    encryption_keys: str | None = None
    # Off only to measure what encryption costs (make bench --plain-payloads); refused in production.
    payload_encryption: bool = True
    # Browser origins (the Temporal UI) allowed to call the codec endpoint.
    codec_cors_origins: Annotated[list[str], NoDecode] = ["http://127.0.0.1:8233", "http://localhost:8233"]

    # Webhooks: the carrier signs its tracking events with this secret; outbound purchasing
    # notices are signed with another. Deliveries older than the tolerance are refused.
    carrier_webhook_secret: str = DEV_WEBHOOK_SECRET
    purchasing_webhook_secret: str = DEV_WEBHOOK_SECRET
    webhook_tolerance_seconds: int = 300
    # Hosts (names, addresses or CIDR networks) subscriptions may target although they are private.
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = []
    # Order events to subscribers: attempts per event before giving up, the wait before the second
    # attempt (doubling after each further failure, up to the maximum), the time one attempt may take.
    webhook_delivery_attempts: int = 10
    webhook_retry_seconds: float = 10.0
    webhook_retry_max_seconds: float = 3600.0
    webhook_timeout_seconds: float = 10.0
    # How often the dispatcher looks for due events, and how many it sends at once.
    webhook_poll_seconds: float = 1.0
    webhook_batch_size: int = 20

    # Requests: the largest body accepted, in bytes.
    max_body_bytes: int = 65_536

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # How long the API waits for an order workflow to answer a query or an update.
    api_workflow_timeout_seconds: float = 10.0

    # The worker's Temporal SDK metrics, served for Prometheus at http://<address>/metrics; empty or 0 serves none.
    # The API serves its own at GET /metrics on its port.
    worker_metrics_address: str = "127.0.0.1:9464"
    # Orders the worker keeps in memory between their workflow tasks (each about 0.3 MB); one evicted
    # is replayed from its history when it next has work, which costs CPU but never correctness.
    worker_max_cached_workflows: int = Field(default=1000, ge=0)
    # Workflows run in the SDK's sandbox, which re-imports their modules for every run and checks each
    # activation for calls a workflow must not make. The test suite runs them sandboxed (determinism is
    # checked on every path it walks and on every kept history); the worker runs them without it, which
    # costs a fifth less CPU per order and a third of the memory per cached order (README, Benchmark).
    workflow_sandbox: bool = False
    # Worker processes on this machine (`python worker.py --processes N` wins): above 1, a supervisor runs
    # them (worker_supervisor.py), each serving its metrics on the port above + its index, and on a stop
    # kills any still running after the grace period.
    worker_processes: int = Field(default=1, ge=1)
    worker_stop_grace_seconds: float = Field(default=30.0, gt=0)

    # Backups (python -m scripts.backup): the folder they go to (one sub-folder each), how many are kept,
    # the Temporal stores beside the order database (sqlite:///file or postgresql:// URLs, comma-separated),
    # and with an interval, the Temporal schedule that takes one every so often (`make run`, compose).
    backup_dir: str = "backups"
    backup_keep: int = Field(default=7, ge=1)
    backup_temporal_urls: Annotated[list[str], NoDecode] = ["sqlite:///data/temporal.sqlite3"]
    backup_interval: timedelta | None = None
    # Off-site copies in S3-compatible storage, when a bucket is set; the endpoint for a store other than AWS.
    backup_s3_bucket: str = ""
    backup_s3_prefix: str = "oms-backups/"
    backup_s3_endpoint_url: str = ""
    backup_s3_region: str = "us-east-1"
    backup_s3_access_key_id: str = ""
    backup_s3_secret_access_key: str = ""

    # Bulk jobs: how many of a job's items are in flight at once, and the history length past which a
    # job's run hands over to a new one. Imports may send bodies up to this size.
    bulk_concurrency: int = Field(default=20, ge=1, le=200)
    bulk_max_history_events: int = Field(default=4_000, ge=100)
    bulk_max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=65_536)

    # Demand forecast: the demand-forecast schedule the worker registers at start runs this often (daily by
    # default, at midnight UTC; empty or 0 registers none), reading this many days of orders, so many SKUs
    # per activity.
    forecast_interval: timedelta | None = timedelta(days=1)
    forecast_history_days: int = Field(default=365, ge=42)
    forecast_chunk_size: int = Field(default=50, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, data: dict[str, object]) -> dict[str, object]:
        for name in ("warehouse_priority", "codec_cors_origins", "webhook_allowed_hosts", "backup_temporal_urls"):
            value = data.get(name)
            if isinstance(value, str):
                data[name] = [item.strip() for item in value.split(",") if item.strip()]
        return data

    @field_validator("worker_metrics_address")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        value = value.strip()
        if value in ("", "0"):
            return ""
        host, colon, port = value.rpartition(":")
        if not (colon and host and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError("must be host:port, e.g. 0.0.0.0:9464, or empty or 0 to serve no metrics")
        return value

    @field_validator("backup_interval", "forecast_interval", mode="before")
    @classmethod
    def _no_interval_when_empty(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        return None if value in ("", 0) else value

    @field_validator("backup_interval")
    @classmethod
    def _interval_of_a_minute_or_more(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(minutes=1):
            raise ValueError("a backup interval must be a minute or more (ISO 8601 such as PT6H, or seconds)")
        return value

    @field_validator("forecast_interval")
    @classmethod
    def _forecast_at_most_hourly(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(hours=1):
            raise ValueError("a forecast interval must be an hour or more (ISO 8601 such as P1D, or seconds)")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production":
            for name, development_value in (
                ("external_api_key", DEV_CREDENTIAL),
                ("api_key_hash_secret", DEV_API_KEY_HASH_SECRET),
                ("carrier_webhook_secret", DEV_WEBHOOK_SECRET),
                ("purchasing_webhook_secret", DEV_WEBHOOK_SECRET),
            ):
                if getattr(self, name) == development_value:
                    raise ValueError(f"OMS_{name.upper()} must be set in production")
            if self.database_url.startswith("sqlite"):
                raise ValueError("DATABASE_URL must point at PostgreSQL in production")
            if not self.payload_encryption:
                raise ValueError("OMS_PAYLOAD_ENCRYPTION cannot be off in production")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
