"""All configuration, read once from the environment (prefix OMS_, or a .env file)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models import names

DEV_CREDENTIAL = "local-dev-credential"


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
    task_queue: str = names.TASK_QUEUE

    # Review rules.
    review_manual_threshold: Decimal = Decimal("10000.00")
    review_hard_limit: Decimal = Decimal("1000000.00")
    review_timeout: timedelta = timedelta(hours=48)
    backorder_timeout: timedelta = timedelta(days=7)
    delivery_timeout: timedelta = timedelta(days=14)

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

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # How long the API waits for an order workflow to answer a query or an update.
    api_workflow_timeout_seconds: float = 10.0

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, data: dict[str, object]) -> dict[str, object]:
        value = data.get("warehouse_priority")
        if isinstance(value, str):
            data["warehouse_priority"] = [code.strip() for code in value.split(",") if code.strip()]
        return data

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production":
            if self.external_api_key == DEV_CREDENTIAL:
                raise ValueError("OMS_EXTERNAL_API_KEY must be set in production")
            if self.database_url.startswith("sqlite"):
                raise ValueError("DATABASE_URL must point at PostgreSQL in production")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
