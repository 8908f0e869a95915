"""Serve the API: `python -m api` listens on OMS_API_HOST:OMS_API_PORT."""

from __future__ import annotations

import sys

import structlog
import uvicorn

from logging_config import configure_logging
from security.keyring import KeyringError, load_keyring
from settings import get_settings

log = structlog.get_logger("oms.api")


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    try:
        # Checked before serving, so missing or broken keys are one line rather than a failed start-up.
        load_keyring(settings)
    except KeyringError as error:
        log.error(str(error))
        sys.exit(1)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        loop="uvloop",
        http="httptools",
        # Logging is configured above; request lines would only repeat what callers already know.
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
