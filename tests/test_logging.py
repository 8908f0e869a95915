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


# Personal data never reaches a log line.


def test_personal_fields_are_masked_at_any_depth_and_business_fields_are_kept() -> None:
    [line] = as_json(
        run_logging(
            """
            configure_logging(json=True)
            structlog.get_logger("oms").info(
                "order placed",
                order_id="ord-1",
                sku="MUG-001",
                email="ada@example.com",
                customer={"id": "C-1", "name": "Ada Lovelace", "phone": "+44 20 7946 0000"},
                orders=[{"shipping_address": {"line1": "12 St James Square", "city": "London"}}],
                contact={"postal_code": "SW1Y 4JH", "national_id": "AB123456C", "payment_token": "tok_visa_4242"},
            )
            """
        )
    )

    assert line["order_id"] == "ord-1"
    assert line["sku"] == "MUG-001"
    assert line["logger"] == "oms"
    assert line["email"] == "[redacted]"
    assert line["customer"] == {"id": "C-1", "name": "[redacted]", "phone": "[redacted]"}
    assert line["orders"] == [{"shipping_address": "[redacted]"}]
    assert line["contact"] == {"postal_code": "[redacted]", "national_id": "[redacted]", "payment_token": "[redacted]"}


def test_models_are_masked_like_the_dicts_they_dump_to() -> None:
    [line] = as_json(
        run_logging(
            """
            from models.order import Address, Customer
            configure_logging(json=True)
            structlog.get_logger("oms").info(
                "checking",
                who=Customer(id="C-1", name="Ada Lovelace", email="ada@example.com", phone="+44 20 7946 0000"),
                where=Address(name="Ada Lovelace", line1="12 St James Square", line2="Flat 2", city="London",
                              postal_code="SW1Y 4JH", country="GB"),
            )
            """
        )
    )

    assert line["who"] == {"id": "C-1", "name": "[redacted]", "email": "[redacted]", "phone": "[redacted]"}
    assert line["where"] == {
        "name": "[redacted]",
        "line1": "[redacted]",
        "line2": "[redacted]",
        "city": "London",
        "postal_code": "[redacted]",
        "country": "GB",
    }


def test_email_addresses_in_any_text_are_masked_in_library_lines_and_exceptions_too() -> None:
    lines = as_json(
        run_logging(
            """
            configure_logging(json=True)
            logging.getLogger("temporalio.activity").warning("notify %s failed", "ada.l@example.co.uk")
            try:
                raise ValueError("no mailbox grace@example.org")
            except ValueError:
                structlog.get_logger("oms").exception("notification failed", note="cc bob+x@mail.example.com")
            """
        )
    )
    text = json.dumps(lines)

    assert lines[0]["event"] == "notify [redacted] failed"
    assert lines[1]["note"] == "cc [redacted]"
    assert "ValueError: no mailbox [redacted]" in lines[1]["exception"]
    for address in ("ada.l@example.co.uk", "grace@example.org", "bob+x@mail.example.com"):
        assert address not in text


def test_the_console_renderer_masks_as_well() -> None:
    [line] = run_logging(
        """
        configure_logging(json=False)
        structlog.get_logger("oms").info("placed", email="ada@example.com", note="from ada@example.com")
        """
    )

    assert "ada@example.com" not in line
    assert "email=[redacted]" in line


# Temporal's own loggers.


def test_temporal_details_become_fields_and_an_order_workflow_names_its_order() -> None:
    workflow_line, activity_line, bound_line = as_json(
        run_logging(
            """
            configure_logging(json=True)
            workflow = {"workflow_id": "order-ord-9", "workflow_type": "OrderWorkflow", "run_id": "r-1", "attempt": 1}
            logging.getLogger("temporalio.workflow").info("workflow started", extra={"temporal_workflow": workflow})
            activity = {"workflow_id": "replenish-MUG-001", "activity_type": "notify_purchasing", "attempt": 3}
            logging.getLogger("temporalio.activity").warning("attempt failed", extra={"temporal_activity": activity})
            structlog.contextvars.bind_contextvars(order_id="ord-bound")
            logging.getLogger("temporalio.workflow").info("bound wins", extra={"temporal_workflow": workflow})
            """
        )
    )

    assert workflow_line["event"] == "workflow started"
    assert (workflow_line["workflow_id"], workflow_line["order_id"]) == ("order-ord-9", "ord-9")
    assert (workflow_line["workflow_type"], workflow_line["run_id"]) == ("OrderWorkflow", "r-1")
    assert "temporal_workflow" not in workflow_line
    assert (activity_line["workflow_id"], activity_line["activity_type"], activity_line["attempt"]) == (
        "replenish-MUG-001",
        "notify_purchasing",
        3,
    )
    assert "order_id" not in activity_line
    assert "temporal_activity" not in activity_line
    assert bound_line["order_id"] == "ord-bound"
