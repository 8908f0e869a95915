"""Temporal interceptors: the request id travels with Temporal calls, and worker log lines name their order.

`RequestIdClientInterceptor` (on every client temporal_client.connect makes, the API's and the worker's):
a workflow started, signalled, updated or queried while a request id is bound carries it in a header.

`WorkerContextInterceptor` (on every worker build_worker makes):

- A workflow binds the request id of its start header while it runs, and that of a signal's, an
  update's or a query's header while it handles them; every activity and local activity started in
  that context carries the id on. The binding lives in the workflow's own asyncio tasks and comes from
  the history, so it is the same on replay. The workflow logs when it starts and how it ends through
  `workflow.logger`, which writes nothing while a workflow replays.
- An activity binds its workflow_id, the order_id that id names, its activity_type and the request id
  to the log context of its task.

Headers are encoded with the payload converter alone. Whether the SDK then runs them through the
payload codec too is the client's `header_codec_behavior` (by default it does not, so the request id,
an opaque token and nothing personal, is readable in the history); either way the SDK decodes before
an interceptor reads, and `request_id.from_headers` takes anything unreadable for no id at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

import structlog
from temporalio import activity, client, workflow
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadConverter
from temporalio.exceptions import FailureError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    HandleQueryInput,
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    StartActivityInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from models.names import order_id_of
from observability import request_id


class RequestIdClientInterceptor(client.Interceptor):
    """Puts the bound request id on the calls a client makes; `converter` is the client's payload converter."""

    def __init__(self, converter: PayloadConverter) -> None:
        self._converter = converter

    def intercept_client(self, next: client.OutboundInterceptor) -> client.OutboundInterceptor:
        return _ClientOutbound(next, self._converter)


class _ClientOutbound(client.OutboundInterceptor):
    def __init__(self, next: client.OutboundInterceptor, converter: PayloadConverter) -> None:
        super().__init__(next)
        self._converter = converter

    def _headers(self, headers: Mapping[str, Payload]) -> Mapping[str, Payload]:
        return request_id.with_current(headers, self._converter)

    async def start_workflow(self, input: client.StartWorkflowInput) -> client.WorkflowHandle[Any, Any]:
        input.headers = self._headers(input.headers)
        return await super().start_workflow(input)

    async def signal_workflow(self, input: client.SignalWorkflowInput) -> None:
        input.headers = self._headers(input.headers)
        await super().signal_workflow(input)

    async def start_workflow_update(self, input: client.StartWorkflowUpdateInput) -> client.WorkflowUpdateHandle[Any]:
        input.headers = self._headers(input.headers)
        return await super().start_workflow_update(input)

    async def query_workflow(self, input: client.QueryWorkflowInput) -> Any:
        input.headers = self._headers(input.headers)
        return await super().query_workflow(input)


class WorkerContextInterceptor(Interceptor):
    """Binds the request id and the order's context in workflows and activities; see the module docstring."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInbound(next)

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _WorkflowInbound


class _ActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        """Bound for the rest of the activity's task, not just this call: the SDK runs every activity in a
        task of its own and logs a failed attempt after this returns, and that line should name its
        order and request too."""
        info = activity.info()
        context: dict[str, str | None] = {
            "workflow_id": info.workflow_id,
            "order_id": order_id_of(info.workflow_id) if info.workflow_id else None,
            "activity_type": info.activity_type,
            request_id.KEY: request_id.from_headers(input.headers, activity.payload_converter()),
        }
        structlog.contextvars.bind_contextvars(**{key: value for key, value in context.items() if value})
        return await self.next.execute_activity(input)


def _bound_from(headers: Mapping[str, Payload]) -> AbstractContextManager[object]:
    return request_id.bound(request_id.from_headers(headers, workflow.payload_converter()))


class _WorkflowInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        self.next.init(_WorkflowOutbound(outbound))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        with _bound_from(input.headers):
            workflow.logger.info("workflow started")
            try:
                result = await self.next.execute_workflow(input)
            except FailureError as error:
                # Only these fail the workflow; any other error fails the task, which Temporal retries
                # and the SDK logs itself.
                workflow.logger.warning("workflow failed: %s", error)
                raise
            workflow.logger.info("workflow completed")
            return result

    async def handle_signal(self, input: HandleSignalInput) -> None:
        with _bound_from(input.headers):
            await self.next.handle_signal(input)

    async def handle_query(self, input: HandleQueryInput) -> Any:
        with _bound_from(input.headers):
            return await self.next.handle_query(input)

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        with _bound_from(input.headers):
            self.next.handle_update_validator(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        with _bound_from(input.headers):
            return await self.next.handle_update_handler(input)


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = request_id.with_current(input.headers, workflow.payload_converter())
        return self.next.start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = request_id.with_current(input.headers, workflow.payload_converter())
        return self.next.start_local_activity(input)
