"""Serve the stand-ins: `python -m standins` (settings from STANDINS_* variables)."""

from __future__ import annotations

import uvicorn

from logging_config import configure_logging
from standins.app import create_app
from standins.config import StandinConfig


def main() -> None:
    config = StandinConfig()
    configure_logging("INFO")
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
