"""The polling helpers every test waits with: they return the first answer, and fail with the last reason."""

from __future__ import annotations

import pytest

from tests.polling import NotYet, eventually, until


async def test_eventually_returns_the_first_answer_of_a_probe_that_stops_saying_not_yet() -> None:
    calls: list[int] = []

    async def third_time_lucky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise NotYet(f"only {len(calls)} calls")
        return "ready"

    assert await eventually(third_time_lucky, timeout=5, interval=0) == "ready"
    assert len(calls) == 3


async def test_eventually_takes_a_plain_function_and_retries_a_failed_assertion() -> None:
    answers = iter([1, 2, 3])

    def at_least_three() -> int:
        answer = next(answers)
        assert answer >= 3, f"{answer} is below 3"
        return answer

    assert await eventually(at_least_three, timeout=5, interval=0) == 3


async def test_eventually_fails_after_the_timeout_with_the_last_reason() -> None:
    def never() -> None:
        raise NotYet("the order is still received")

    with pytest.raises(AssertionError, match=r"not within 0 s: the order is still received"):
        await eventually(never, timeout=0.05, interval=0.01)


async def test_eventually_lets_any_other_error_through_at_once() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("the order ended cancelled")

    with pytest.raises(RuntimeError, match="ended cancelled"):
        await eventually(broken, timeout=5, interval=0)
    assert len(calls) == 1


async def test_until_waits_for_a_condition_and_fails_when_it_never_holds() -> None:
    ticks = iter(range(10))
    await until(lambda: next(ticks) == 2, timeout=5, interval=0)
    assert next(ticks) == 3

    with pytest.raises(AssertionError, match="the condition does not hold"):
        await until(lambda: False, timeout=0.05, interval=0.01)
