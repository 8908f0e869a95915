"""Compensation: undo steps registered right after their do step succeeded, run in reverse, each once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import FailureError


class Saga:
    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], Awaitable[None]]]] = []

    def register(self, description: str, undo: Callable[[], Awaitable[None]]) -> None:
        self._undo.append((description, undo))

    def replace(self, description: str, undo: Callable[[], Awaitable[None]] | None) -> None:
        """Undo the step named `description` with `undo` from now on (None: nothing left to undo); added if new."""
        for index, (registered, _) in enumerate(self._undo):
            if registered == description:
                if undo is None:
                    del self._undo[index]
                else:
                    self._undo[index] = (description, undo)
                return
        if undo is not None:
            self._undo.append((description, undo))

    def clear(self) -> None:
        """Forget the undo steps: what they would undo is now final."""
        self._undo.clear()

    async def compensate(self) -> list[str]:
        """Run every registered undo step, newest first; returns the ones that failed for good."""
        failed: list[str] = []
        while self._undo:
            description, undo = self._undo.pop()
            try:
                await undo()
            except FailureError:
                workflow.logger.exception("compensation failed: %s", description)
                failed.append(description)
        return failed
