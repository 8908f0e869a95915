"""The one way this project connects to Temporal: encrypted pydantic payloads on every client, API and worker
alike, and the request id of the API request being served on every call (observability.interceptors)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from observability.interceptors import RequestIdClientInterceptor
from security.codec import data_converter
from security.keyring import Keyring, load_keyring
from settings import Settings


async def connect(settings: Settings, keyring: Keyring | None = None, *, runtime: Runtime | None = None) -> Client:
    """A client whose payloads are encrypted under `keyring`, by default the ring the settings name.

    With payload encryption switched off (development only, to measure its cost) payloads go as JSON.
    `runtime` is the SDK's default unless given, e.g. one serving metrics (`metrics_runtime`).
    """
    encrypting = (keyring or load_keyring(settings)) if settings.payload_encryption else None
    converter = data_converter(encrypting)
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=converter,
        interceptors=client_interceptors(converter),
        runtime=runtime,
    )


def client_interceptors(converter: DataConverter) -> list[RequestIdClientInterceptor]:
    """What every client of the service carries: the request id on its calls, encoded by its own converter."""
    return [RequestIdClientInterceptor(converter.payload_converter)]


def metrics_runtime(bind_address: str) -> Runtime | None:
    """A Temporal runtime whose SDK metrics Prometheus scrapes at http://<bind_address>/metrics; None for no address.

    The server starts with the runtime; an address in use or malformed raises ValueError saying so.
    """
    if not bind_address:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))
