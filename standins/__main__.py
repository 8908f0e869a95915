"""Serve the stand-ins: `python -m standins` (settings from STANDINS_* variables)."""

from __future__ import annotations

import uvicorn

from standins.app import create_app
from standins.config import StandinConfig


def main() -> None:
    config = StandinConfig()
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="info")


if __name__ == "__main__":
    main()
