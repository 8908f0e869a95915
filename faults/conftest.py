"""Fixtures of the fault suite: its own PostgreSQL server, a fresh stack per drill, the figures and the summary.

`pytest faults/` runs every drill with full batches; `pytest faults/ --reduced` with small ones.
Each drill prints its figures as it ends; the run ends with a table of them all.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from faults.harness import FaultStack, free_port, running_stack
from faults.postgres import PostgresServer, postgres_server
from faults.report import Figures, summary_table

FIGURES = pytest.StashKey[list[Figures]]()


@dataclass(frozen=True)
class Scale:
    """How big the drills are."""

    orders: int
    # Orders placed per second.
    rate: float
    # How long a client keeps retrying one call, and how long the drill waits for orders to finish.
    patience: float
    # Sequences the stock ledger's state machine runs.
    ledger_sequences: int
    reduced: bool


FULL = Scale(orders=60, rate=3.0, patience=240.0, ledger_sequences=60, reduced=False)
REDUCED = Scale(orders=20, rate=2.0, patience=180.0, ledger_sequences=15, reduced=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reduced", action="store_true", help="fault drills with small batches, as CI runs them")


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> Scale:
    return REDUCED if request.config.getoption("--reduced") else FULL


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server(free_port()) as server:
        yield server


@pytest.fixture
async def stack(postgres: PostgresServer, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[FaultStack]:
    """The whole service for one drill, in a database and a data folder of its own."""
    database = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:60]
    async with running_stack(postgres, tmp_path, database) as running:
        yield running


@pytest.fixture
def report(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Callable[[Figures], None]:
    """Print a drill's figures at once and keep them for the summary table."""

    def record(figures: Figures) -> None:
        request.config.stash.setdefault(FIGURES, []).append(figures)
        with capsys.disabled():
            print("\n" + "\n".join(figures.lines()), flush=True)

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    rows = config.stash.get(FIGURES, [])
    if not rows:
        return
    mode = "reduced" if config.getoption("--reduced") else "full"
    terminalreporter.section(f"fault drills ({mode} batches)")
    for row in rows:
        for line in row.lines():
            terminalreporter.write_line(line)
    terminalreporter.write_line("")
    for line in summary_table(rows).splitlines():
        terminalreporter.write_line(line)
