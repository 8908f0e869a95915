"""The in-process limits on their own clock: failures and requests count only within their window."""

from __future__ import annotations

from security.limits import RateLimiter, SourceBlocker, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_spread_wider_than_the_window_never_block() -> None:
    clock = Clock()
    blocker = SourceBlocker(limit=3, window=60, block=300, clock=clock)

    for _ in range(10):
        assert blocker.failed("10.0.0.1") is False
        clock.now += 31

    assert blocker.blocked_for("10.0.0.1") is None


def test_the_limit_th_failure_in_the_window_blocks_that_source_alone_until_the_block_ends() -> None:
    clock = Clock()
    blocker = SourceBlocker(limit=3, window=60, block=300, clock=clock)

    assert [blocker.failed("10.0.0.1") for _ in range(3)] == [False, False, True]

    assert blocker.blocked_for("10.0.0.1") == 300
    assert blocker.blocked_for("10.0.0.2") is None
    clock.now += 299.5
    assert blocker.blocked_for("10.0.0.1") == 0.5
    clock.now += 0.5
    assert blocker.blocked_for("10.0.0.1") is None
    # A fresh start: the failures that caused the block no longer count.
    assert blocker.failed("10.0.0.1") is False


def test_a_key_over_its_rate_is_told_when_the_oldest_request_leaves_the_window() -> None:
    clock = Clock()
    limiter = RateLimiter(limit=2, window=60, clock=clock)

    assert limiter.admit("key-a") is None
    clock.now += 20
    assert limiter.admit("key-a") is None
    clock.now += 10
    assert limiter.admit("key-a") == 30
    assert limiter.admit("key-b") is None
    clock.now += 30
    assert limiter.admit("key-a") is None


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert [retry_after(seconds) for seconds in (0.0, 0.2, 1.0, 1.01, 59.9)] == [1, 1, 1, 2, 60]
