"""The test tiers: a test is in the unit tier only when it reaches neither PostgreSQL nor Temporal."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import tier_of

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Collected:
    """What tier_of reads of a collected test: the fixtures it reaches and its own marks."""

    fixturenames: list[str]
    marks: list[str] = field(default_factory=list)

    def iter_markers(self) -> Iterator[pytest.Mark]:
        return (getattr(pytest.mark, name).mark for name in self.marks)


@pytest.mark.parametrize(
    ("fixtures", "marks", "tier"),
    [
        (["tmp_path"], [], "unit"),
        (["sessionmaker", "engine", "database_url"], [], "integration"),
        (["harness", "time_skipping_env", "task_queue"], [], "integration"),
        (["stack", "dev_server_env", "database_url"], [], "system"),
        (["tmp_path"], ["system"], "system"),
        (["task_queue"], ["integration", "parametrize"], "integration"),
        (["database_url"], ["system"], "system"),
    ],
)
def test_a_test_is_in_the_highest_tier_its_fixtures_or_marks_reach(
    fixtures: list[str], marks: list[str], tier: str
) -> None:
    assert tier_of(Collected(fixtures, marks)) == tier  # type: ignore[arg-type]


def test_the_unit_selection_needs_no_database_and_leaves_out_what_reaches_a_service() -> None:
    env = {name: value for name, value in os.environ.items() if name != "TEST_DATABASE_URL"}
    modules = (
        "tests/test_review_rules.py",
        "tests/test_review.py",
        "tests/test_local_stack.py",
        "tests/test_temporal_ui.py",
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", "unit", *modules],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    unit = {line.split("::")[1].split("[")[0] for line in collected}

    assert "test_an_email_is_checked_without_looking_its_domain_up" in unit
    assert "test_a_damaged_admin_key_file_is_refused_with_what_to_do" in unit
    # Through the sessionmaker fixture: PostgreSQL.
    assert "test_the_limits_come_from_settings" not in unit
    # Marked by hand: it starts the whole stack, Temporal's dev server included, in a subprocess.
    assert "test_make_run_serves_the_api_and_temporal_ui_and_ctrl_c_stops_every_child" not in unit
    # The browser tests share one whole stack through a fixture of their module's own.
    assert [line for line in collected if line.startswith("tests/test_temporal_ui.py")] == []
