"""Configuration of the stand-in service, read from the environment (prefix STANDINS_)."""

from __future__ import annotations

from decimal import Decimal

from pydantic_settings import BaseSettings, SettingsConfigDict

from settings import DEV_CREDENTIAL, DEV_WEBHOOK_SECRET


class StandinConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STANDINS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8100
    api_key: str = DEV_CREDENTIAL
    # Where the carrier posts tracking events: the order service's webhook; each attempt is
    # signed with this secret, the order service's OMS_CARRIER_WEBHOOK_SECRET.
    webhook_url: str = "http://127.0.0.1:8000/webhooks/carrier"
    webhook_secret: str = DEV_WEBHOOK_SECRET
    # What the purchasing inbox checks the signature of shortage notices with: OMS_PURCHASING_WEBHOOK_SECRET.
    purchasing_webhook_secret: str = DEV_WEBHOOK_SECRET
    # "in_transit" comes this long after confirmation, "delivered" twice as long.
    tracking_delay_seconds: float = 2.0
    tax_rate: Decimal = Decimal("0.20")
    # Attempts per tracking event before the carrier gives up on our webhook.
    webhook_attempts: int = 5
    # Wait before the second attempt; it doubles with each further one.
    webhook_backoff_seconds: float = 0.5
