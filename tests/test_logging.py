"""Every log line of a process, ours or a library's, comes out in one format with the bound order context.

Each case runs in a fresh interpreter so that what is asserted is exactly what a
process writes to stdout, untouched by pytest's own log capture.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_logging(code: str) -> list[str]:
    script = "import logging, structlog\nfrom logging_config import configure_logging\n" + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stderr == ""
    return result.stdout.splitlines()


def as_json(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def test_stdlib_and_structlog_lines_are_json_with_the_same_keys() -> None:
    lines = as_json(
        run_logging(
            """
            configure_logging("INFO", json=True)
            logging.getLogger("temporalio.worker._workflow").warning("task failed %s times", 3)
            structlog.get_logger("oms.api").warning("order placed")
            """
        )
    )

    assert len(lines) == 2
    stdlib, ours = lines
    assert stdlib.keys() == ours.keys() == {"event", "level", "logger", "timestamp"}
    assert stdlib["event"] == "task failed 3 times"
    assert stdlib["logger"] == "temporalio.worker._workflow"
    assert ours["logger"] == "oms.api"
    assert stdlib["level"] == ours["level"] == "warning"
    assert ours["timestamp"].endswith("Z")


def test_bound_order_context_appears_on_library_and_own_lines() -> None:
    lines = as_json(
        run_logging(
            """
            configure_logging(json=True)
            structlog.contextvars.bind_contextvars(order_id="ord-7", workflow_id="order-ord-7")
            logging.getLogger("uvicorn.error").info("request handled")
            structlog.get_logger("oms.worker").info("reserved", sku="MUG-001")
            """
        )
    )

    for line in lines:
        assert line["order_id"] == "ord-7"
        assert line["workflow_id"] == "order-ord-7"
    assert lines[1]["sku"] == "MUG-001"


def test_configuring_twice_prints_each_line_once() -> None:
    lines = run_logging(
        """
        configure_logging(json=True)
        configure_logging(json=True)
        logging.getLogger("alembic").info("once")
        """
    )

    assert len(lines) == 1


def test_level_filters_both_kinds_of_logger() -> None:
    lines = as_json(
        run_logging(
            """
            configure_logging("WARNING", json=True)
            logging.getLogger("temporalio").info("hidden")
            structlog.get_logger("oms").info("hidden")
            structlog.get_logger("oms").error("shown")
            """
        )
    )

    assert [line["event"] for line in lines] == ["shown"]


def test_not_a_terminal_means_json_and_a_console_renderer_can_be_asked_for() -> None:
    piped = run_logging(
        """
        configure_logging()
        structlog.get_logger("oms").info("piped")
        """
    )
    console = run_logging(
        """
        configure_logging(json=False)
        structlog.get_logger("oms").info("for humans", order_id="ord-1")
        """
    )

    assert json.loads(piped[0])["event"] == "piped"
    assert not console[0].startswith("{")
    assert "for humans" in console[0]
    assert "order_id=ord-1" in console[0]


def test_exceptions_are_kept_in_the_json_line() -> None:
    lines = as_json(
        run_logging(
            """
            configure_logging(json=True)
            try:
                raise ValueError("bad payload")
            except ValueError:
                logging.getLogger("temporalio.activity").exception("activity failed")
            """
        )
    )

    assert len(lines) == 1
    assert "ValueError: bad payload" in lines[0]["exception"]
