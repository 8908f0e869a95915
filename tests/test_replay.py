"""Histories of representative runs replay without non-determinism against today's workflow code.

A failure here means a change would break orders already in flight: guard it with
workflow.patched() rather than recording the histories again.

The kept histories were recorded without encryption; they replay through the service's own
data converter, as histories written before encryption was switched on must.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from security.codec import data_converter
from tests.conftest import TEST_KEYRING
from workflows.order import OrderWorkflow
from workflows.refunds import RefundWorkflow
from workflows.replenishment import ReplenishmentWorkflow
from workflows.returns import ReturnWorkflow

# One folder per generation of the workflow code (tests/histories/record.py).
HISTORIES = sorted((Path(__file__).parent / "histories").glob("*/*.json"))
TEXTS = {f"{path.parent.name}/{path.stem}": path.read_text() for path in HISTORIES}
# The after-sales workflows' (returns, refunds), one folder per generation under returns/
# (tests/histories/record_returns.py).
RETURN_HISTORIES = sorted((Path(__file__).parent / "histories" / "returns").glob("*/*.json"))
RETURN_TEXTS = {f"returns/{path.parent.name}/{path.stem}": path.read_text() for path in RETURN_HISTORIES}


def test_the_kept_histories_cover_every_kind_of_run_in_each_generation() -> None:
    generations = {path.parent.name for path in HISTORIES}
    assert len(generations) >= 2
    for generation in generations:
        assert len([path for path in HISTORIES if path.parent.name == generation]) >= 6, generation


@pytest.mark.parametrize("name", TEXTS)
async def test_history_replays_without_non_determinism(name: str) -> None:
    history = WorkflowHistory.from_json(name, TEXTS[name])
    replayer = Replayer(workflows=[OrderWorkflow, ReplenishmentWorkflow], data_converter=data_converter(TEST_KEYRING))

    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)

    assert result.replay_failure is None


def test_the_kept_return_histories_cover_every_way_a_return_ends() -> None:
    endings = {path.stem for path in RETURN_HISTORIES}
    assert {"return_refunded", "return_declined", "return_cancelled", "return_expired"} <= endings


@pytest.mark.parametrize("name", RETURN_TEXTS)
async def test_return_history_replays_without_non_determinism(name: str) -> None:
    history = WorkflowHistory.from_json(name, RETURN_TEXTS[name])
    replayer = Replayer(workflows=[ReturnWorkflow, RefundWorkflow], data_converter=data_converter(TEST_KEYRING))

    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)

    assert result.replay_failure is None
