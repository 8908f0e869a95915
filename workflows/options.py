"""Timeouts and retry policies of the workflows' steps, by kind of step."""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio.common import RetryPolicy


class StepOptions(TypedDict):
    start_to_close_timeout: timedelta
    retry_policy: RetryPolicy


# Database steps need no task of their own: local activities, retried until the database answers.
DB_STEP: StepOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)),
}
# Outside systems: retried with backoff until they answer; business refusals are non-retryable errors.
EXTERNAL_STEP: StepOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=10)),
}
# CRM and notifications are best effort: a few tries, then logged and left.
BEST_EFFORT_STEP: StepOptions = {
    "start_to_close_timeout": timedelta(seconds=15),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=5
    ),
}
