"""Serve the API: `python -m api` listens on OMS_API_HOST:OMS_API_PORT."""

from __future__ import annotations

import uvicorn

from logging_config import configure_logging
from settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
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
