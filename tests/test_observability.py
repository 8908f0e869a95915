"""What operators see: the API's and the worker's Prometheus metrics, and log lines that name their order and the
API request they were written for, in the API, in workflows and in activities.

Real PostgreSQL, the real Temporal dev server, the real worker (in this process, or as `python worker.py`
where its stdout and its metrics endpoint are what is checked) and the API over HTTP.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.common import HeaderCodecBehavior
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.names import HEADER_REQUEST_ID
from observability import request_id
from observability.interceptors import WorkerContextInterceptor
from security.codec import ENCODING

Sessions = async_sessionmaker[AsyncSession]
ROOT = Path(__file__).resolve().parent.parent
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# The request id, carried by Temporal headers.


@activity.defn(name="seen_request_id")
async def seen_request_id() -> str | None:
    return request_id.current()


@workflow.defn(name="RequestIdProbe", sandboxed=False)
class RequestIdProbe:
    """Reports the request id it sees: in its run, in an activity, in a local activity and in a signal."""

    def __init__(self) -> None:
        self._signalled: list[str | None] = []

    @workflow.run
    async def run(self) -> list[str | None]:
        started = request_id.current()
        timeout = timedelta(seconds=10)
        in_activity = await workflow.execute_activity(seen_request_id, start_to_close_timeout=timeout)
        in_local_activity = await workflow.execute_local_activity(seen_request_id, start_to_close_timeout=timeout)
        await workflow.wait_condition(lambda: bool(self._signalled))
        return [started, in_activity, in_local_activity, *self._signalled]

    @workflow.signal
    def note(self) -> None:
        self._signalled.append(request_id.current())


def with_headers_through_codec(client: Client, behaviour: HeaderCodecBehavior) -> Client:
    return Client(**{**client.config(), "header_codec_behavior": behaviour})


SEEN_EVERYWHERE = ["req-start", "req-start", "req-start", "req-sig"]


@pytest.mark.parametrize(
    ("sender", "worker", "expected"),
    [
        (HeaderCodecBehavior.NO_CODEC, HeaderCodecBehavior.NO_CODEC, SEEN_EVERYWHERE),
        (HeaderCodecBehavior.CODEC, HeaderCodecBehavior.CODEC, SEEN_EVERYWHERE),
        # A header the worker cannot read (still encrypted) is no request id, never a failed workflow.
        (HeaderCodecBehavior.CODEC, HeaderCodecBehavior.NO_CODEC, [None, None, None, None]),
    ],
    ids=["plain-headers", "encrypted-headers", "unreadable-headers"],
)
async def test_the_request_id_reaches_the_workflow_its_activities_and_its_signals(
    dev_server_env: WorkflowEnvironment,
    task_queue: str,
    sender: HeaderCodecBehavior,
    worker: HeaderCodecBehavior,
    expected: list[str | None],
) -> None:
    client = with_headers_through_codec(dev_server_env.client, sender)
    worker_client = with_headers_through_codec(dev_server_env.client, worker)
    async with Worker(
        worker_client,
        task_queue=task_queue,
        workflows=[RequestIdProbe],
        activities=[seen_request_id],
        interceptors=[WorkerContextInterceptor()],
    ):
        with request_id.bound("req-start"):
            handle = await client.start_workflow(RequestIdProbe.run, id=f"probe-{uuid.uuid4()}", task_queue=task_queue)
        with request_id.bound("req-sig"):
            await handle.signal(RequestIdProbe.note)
        seen = await handle.result()
        history = await handle.fetch_history()

    assert seen == expected
    started = next(e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    header = started.workflow_execution_started_event_attributes.header.fields[HEADER_REQUEST_ID]
    # Through the codec the header is encrypted like any payload; without it, a plain JSON string.
    assert header.metadata["encoding"] == (ENCODING if sender == HeaderCodecBehavior.CODEC else b"json/plain")
