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
from workflows.replenishment import ReplenishmentWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
TEXTS = {path.stem: path.read_text() for path in HISTORIES}


def test_the_kept_histories_cover_every_kind_of_run() -> None:
    assert len(HISTORIES) >= 6


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays_without_non_determinism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, TEXTS[path.stem])
    replayer = Replayer(workflows=[OrderWorkflow, ReplenishmentWorkflow], data_converter=data_converter(TEST_KEYRING))

    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)

    assert result.replay_failure is None
