"""Chromium for the browser tests, as Playwright drives it here.

Playwright drives Debian's Chromium (TEST_CHROMIUM, which `make test` sets through
scripts/install-chromium.sh; else `chromium` on the PATH): it never downloads a browser of its
own, and a missing browser fails the tests that need one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import Browser, async_playwright

# Without the background-networking flags Chromium reaches out to the network on its own.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("no Chromium: run the suite with `make test`, which installs Debian's chromium package")
    return path


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium, closed on exit."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        yield browser
        await browser.close()
