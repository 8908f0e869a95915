"""Brute-force blocking per source address and request rate limits per API key, kept in memory.

Both count within one API process: with several API processes behind a load balancer, each
enforces the limits on the requests it serves. They are a brake on guessing keys and on a
runaway client, not an exact quota. The clock is monotonic, so a change of the wall clock
neither lifts nor extends a block.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]

# Beyond this many tracked sources or keys, the ones with nothing left to remember are forgotten,
# so a flood from many addresses cannot grow the tables without bound.
MAX_TRACKED = 100_000


def retry_after(seconds: float) -> int:
    """Whole seconds for a Retry-After header: never 0, which would invite an immediate retry."""
    return max(1, math.ceil(seconds))


class SourceBlocker:
    """`limit` failed authentications from one source within `window` seconds block it for `block` seconds."""

    def __init__(self, limit: int, window: float, block: float, clock: Clock = time.monotonic) -> None:
        if limit < 1:
            raise ValueError("the failure limit must be at least 1")
        self._limit = limit
        self._window = window
        self._block = block
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}

    @property
    def block_seconds(self) -> float:
        return self._block

    def blocked_for(self, source: str) -> float | None:
        """Seconds until the block of `source` ends, or None when it is not blocked."""
        until = self._blocked_until.get(source)
        if until is None:
            return None
        remaining = until - self._clock()
        if remaining <= 0:
            del self._blocked_until[source]
            return None
        return remaining

    def failed(self, source: str) -> bool:
        """Count a failed authentication; True when it is the one that blocks the source."""
        now = self._clock()
        failures = self._failures.setdefault(source, deque())
        failures.append(now)
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if len(failures) < self._limit:
            self._forget_stale(now)
            return False
        del self._failures[source]
        self._blocked_until[source] = now + self._block
        return True

    def _forget_stale(self, now: float) -> None:
        if len(self._failures) + len(self._blocked_until) <= MAX_TRACKED:
            return
        self._failures = {s: f for s, f in self._failures.items() if f and f[-1] > now - self._window}
        self._blocked_until = {s: until for s, until in self._blocked_until.items() if until > now}


class RateLimiter:
    """At most `limit` requests per key in any `window` seconds (a sliding window)."""

    def __init__(self, limit: int, window: float = 60.0, clock: Clock = time.monotonic) -> None:
        if limit < 1:
            raise ValueError("the rate limit must be at least 1")
        self._limit = limit
        self._window = window
        self._clock = clock
        self._requests: dict[str, deque[float]] = {}

    def admit(self, key: str) -> float | None:
        """Count a request of `key` and return None, or, over the limit, the seconds until one is allowed."""
        now = self._clock()
        requests = self._requests.setdefault(key, deque())
        while requests and requests[0] <= now - self._window:
            requests.popleft()
        if len(requests) >= self._limit:
            return requests[0] + self._window - now
        requests.append(now)
        if len(self._requests) > MAX_TRACKED:
            self._requests = {k: r for k, r in self._requests.items() if r and r[-1] > now - self._window}
        return None
