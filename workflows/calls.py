"""One way for a workflow to call an activity: the options every Spotcheck activity shares.

- a bounded start-to-close timeout and the shared, bounded retry policy;
- ABANDON on cancellation: a process that stops waiting (a merged case took over, a listing ended) must not
  send a cancel request that races the activity's completion (the time-skipping server then refuses the
  workflow task for good); every write is idempotent, so an abandoned one that completes is harmless;
- a summary in words, shown in the Web UI's event history;
- `local=True` for the short bookkeeping steps (deadlines, the sample's projection): a local activity runs in
  the worker within the workflow task and leaves one marker event instead of three events and a second
  workflow task (see docs/design.md §8, patch `lean-bookkeeping`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar, overload

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

T = TypeVar("T")

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Bounded: about a quarter of an hour of retries rides out a database or network outage; after that, or at
# once for data that can never be written (activities/errors.py), the process asks an operator.
RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=40)


@overload
async def call(
    activity: Callable[..., Awaitable[T]], arg: Any, *, summary: str, result_type: type | None = None,
    local: bool = False, start_to_close: timedelta = ACTIVITY_TIMEOUT, retry_policy: RetryPolicy = RETRY,
) -> T: ...


@overload
async def call(
    activity: str, arg: Any, *, summary: str, result_type: type | None = None, local: bool = False,
    start_to_close: timedelta = ACTIVITY_TIMEOUT, retry_policy: RetryPolicy = RETRY,
) -> Any: ...


async def call(
    activity: Any, arg: Any, *, summary: str, result_type: type | None = None, local: bool = False,
    start_to_close: timedelta = ACTIVITY_TIMEOUT, retry_policy: RetryPolicy = RETRY,
) -> Any:
    """Run `activity` (a function, an activity method of a class, or a registered name) with `arg`;
    `start_to_close` and `retry_policy` only for a step that has a way round a slow one (the audit row's fuse)."""
    run: Callable[..., Awaitable[Any]] = (
        workflow.execute_local_activity if local else workflow.execute_activity
    )
    return await run(
        activity,
        arg,
        start_to_close_timeout=start_to_close,
        retry_policy=retry_policy,
        cancellation_type=ActivityCancellationType.ABANDON,
        summary=summary,
        result_type=result_type,
    )
