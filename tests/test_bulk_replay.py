"""The bulk job workflow's kept histories replay without non-determinism.

One folder per generation of the workflow code in tests/histories/bulk/, recorded by
`python -m tests.histories.record_bulk <generation>`; a change to workflows/bulk.py that alters them
goes behind workflow.patched() and records a new generation, the older ones staying.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from security.codec import data_converter
from tests.conftest import TEST_KEYRING
from workflows.bulk import BulkJobWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories" / "bulk").glob("*/*.json"))
TEXTS = {f"bulk/{path.parent.name}/{path.stem}": path.read_text() for path in HISTORIES}


def test_the_kept_bulk_histories_cover_a_refusal_a_retry_a_cancellation_and_a_hand_over() -> None:
    kinds = {path.stem for path in HISTORIES}
    assert {
        "bulk_completed_with_a_refusal",
        "bulk_failed_item_retried",
        "bulk_cancelled",
        "bulk_continued_as_new",
    } <= kinds


@pytest.mark.parametrize("name", TEXTS)
async def test_bulk_history_replays_without_non_determinism(name: str) -> None:
    history = WorkflowHistory.from_json(name, TEXTS[name])
    replayer = Replayer(workflows=[BulkJobWorkflow], data_converter=data_converter(TEST_KEYRING))

    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)

    assert result.replay_failure is None
