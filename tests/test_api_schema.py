"""The API against its own OpenAPI schema, fuzzed by schemathesis over a real stack.

Every operation is called with boundary values and generated data, valid and invalid, then in
sequences (an order placed, then read, cancelled, reviewed), over HTTP to the API of a running
stack: stand-ins, worker, PostgreSQL and the Temporal dev server. Every check schemathesis has
runs on every answer: none may be a server error, every status, header and body must be the one
the schema documents, valid data must be accepted and invalid data refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from schemathesis.engine import Status, StopReason, events, from_schema
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from db.orders import encode_cursor
from models.fields import PRINTABLE_ASCII
from tests.keys import bearer
from tests.stack import Stack, running_stack

# A fixed seed and derandomized generation: a run sends the same requests every time.
SEED = 20_250_301
# Generated cases per operation and mode in the fuzzing phase; the coverage phase adds every boundary.
MAX_EXAMPLES = 20
# A cursor as the service hands them out. A made-up one is rightly refused, which the schema cannot say.
CURSOR = encode_cursor(datetime(2100, 1, 1, tzinfo=UTC), "0")


@pytest.fixture
async def stack(
    dev_server_env: WorkflowEnvironment,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    task_queue: str,
) -> AsyncIterator[Stack]:
    # Generated requests without a key must be answered 401 every time, not block the run's address.
    unblocked = {"auth_failure_limit": 1_000_000}
    async with running_stack(
        dev_server_env.client, database_url, sessionmaker, task_queue, settings=unblocked
    ) as stack:
        yield stack


@pytest.fixture
def api_headers(stack: Stack) -> dict[str, str]:
    """The headers every request of the run carries: an admin key, which may call every operation."""
    return bearer(stack.keys.admin)


def idempotency_key_per_body(_context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """Make a generated Idempotency-Key of POST /orders unique to its body.

    The generator sends one key with different bodies, which the API rightly refuses (422) and the
    schema cannot express; a key derived from the body is still replayed whenever the body is.
    """
    key = case.headers.get("Idempotency-Key") if case.headers else None
    if case.operation.label != "POST /orders" or not isinstance(key, str) or not re.fullmatch(PRINTABLE_ASCII, key):
        return case
    digest = hashlib.sha256(json.dumps(case.body, sort_keys=True, default=str).encode()).hexdigest()[:16]
    case.headers["Idempotency-Key"] = f"{key[:200]}-{digest}"
    return case


@dataclass
class Run:
    operations: set[str] = field(default_factory=set)
    tested: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    stop_reason: StopReason | None = None


def run_schemathesis(openapi: dict[str, Any], base_url: str, headers: dict[str, str]) -> Run:
    """Every phase and every check of schemathesis against the API at `base_url`."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},
            "base-url": base_url,
            "headers": headers,
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"max-steps": 6, "generation": {"max-examples": 5}}},
            "checks": {"enabled": True},
            "parameters": {"query.cursor": CURSOR},
            # Rules no schema can state, so a schema-valid request may rightly be refused: only a client
            # key has a client id, a subscription URL must resolve to a public address, an audit
            # cursor must be one the service handed out, an analytics period runs forwards, at most a
            # year, between 1970 and 2999; a bulk action's filter matches between 1 and 1,000 orders, an
            # import's external_refs are its own and its CSV has the documented columns, a job's cursor
            # is one the service handed out.
            "operations": [
                {"include-name": name, "checks": {"positive_data_acceptance": {"enabled": False}}}
                for name in (
                    "POST /keys",
                    "POST /webhooks/subscriptions",
                    "GET /audit",
                    *(
                        f"GET /analytics/{part}"
                        for part in ("summary", "orders", "fulfilment", "skus", "customers", "returns")
                    ),
                )
            ]
            + [
                # Each bulk job started works through orders beside the run: fewer examples keep it short.
                {
                    "include-name": name,
                    "checks": {"positive_data_acceptance": {"enabled": False}},
                    "generation": {"mode": "all", "max-examples": 5, "deterministic": True, "database": "none"},
                }
                for name in (
                    "POST /bulk/actions",
                    "POST /bulk/orders",
                    "GET /bulk/{job_id}",
                    "POST /bulk/{job_id}/retry",
                    "POST /bulk/{job_id}/cancel",
                )
            ],
        }
    )
    schema = schemathesis.openapi.from_dict(openapi, config=config)
    schema.hook("map_case")(idempotency_key_per_body)
    run = Run(operations={f"{method.upper()} {path}" for path, item in openapi["paths"].items() for method in item})
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            if event.label is not None and event.status != Status.SKIP:
                run.tested.add(event.label)
            run.problems.extend(
                f"{check.name}: {check.failure_info.failure}\n{check.failure_info.code_sample}"
                for checks in event.recorder.checks.values()
                for check in checks
                if check.failure_info is not None
            )
        elif isinstance(event, events.NonFatalError):
            run.problems.append(f"{event.label}: schemathesis could not test it: {event.info}")
        elif isinstance(event, events.FatalError):
            run.problems.append(f"schemathesis stopped: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            run.stop_reason = event.stop_reason
            run.problems.extend(str(failure) for failure in event.failures)
    return run


async def test_every_answer_conforms_to_the_schema_and_none_is_a_server_error(
    stack: Stack, api_headers: dict[str, str]
) -> None:
    openapi = (await stack.api.get("/openapi.json")).json()

    # Schemathesis calls the API synchronously; the stack keeps serving on this event loop meanwhile.
    run = await asyncio.to_thread(run_schemathesis, openapi, str(stack.api.base_url), api_headers)

    assert not run.problems, "\n\n".join(run.problems)
    assert run.stop_reason == StopReason.COMPLETED
    assert run.tested == run.operations
