"""Waiting in a test for what happens elsewhere: a workflow, a server, another task.

`eventually(probe)` calls the probe until it returns a value instead of raising NotYet or
AssertionError, and fails with the last reason once the time is up; `until(condition)` waits for a
plain condition to hold. A probe may be a plain function or a coroutine function.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class NotYet(Exception):
    """Raised by an `eventually` probe whose condition does not hold yet; its message says why."""


async def eventually(probe: Callable[[], Awaitable[T] | T], *, timeout: float, interval: float = 0.1) -> T:
    """Call `probe` until it returns instead of raising NotYet or AssertionError; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = probe()
            if inspect.isawaitable(answer):
                return await answer
            return answer
        except (NotYet, AssertionError) as problem:
            if time.monotonic() >= deadline:
                raise AssertionError(f"not within {timeout:.0f} s: {problem}") from problem
        await asyncio.sleep(interval)


async def until(condition: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> None:
    """Wait until `condition()` is true; fail after `timeout` seconds."""

    def holds() -> None:
        if not condition():
            raise NotYet("the condition does not hold")

    await eventually(holds, timeout=timeout, interval=interval)
