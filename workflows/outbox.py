"""`OutboxDispatcherWorkflow`: keeps one `dispatch_outbox` activity running at a time, for ever. One per task
queue (`outbox-dispatcher-<task queue>`), started idempotently by every worker that has an outbox
configuration (worker.py). Each activity dispatches for a bounded time and heartbeats, so a worker that dies
is noticed within the heartbeat timeout and the next attempt runs on another; the history continues as new
before it grows long."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from domain.outbox import DispatchPlan

# The activity module imports its HTTP and SMTP clients, which the sandbox must not re-import (samples-python).
with workflow.unsafe.imports_passed_through():
    from activities.outbox import OutboxDispatch

RUNS_PER_HISTORY = 100  # about 8 events a run: a few hundred events, then continue-as-new
# A run that failed for good (a non-retryable error): pause before the next, never stop dispatching.
PAUSE_AFTER_FAILURE = timedelta(minutes=1)


def dispatcher_id(task_queue: str) -> str:
    return f"outbox-dispatcher-{task_queue}"


@workflow.defn
class OutboxDispatcherWorkflow:
    @workflow.run
    async def run(self, plan: DispatchPlan) -> None:
        for _ in range(RUNS_PER_HISTORY):
            try:
                await workflow.execute_activity_method(
                    OutboxDispatch.dispatch_outbox,
                    plan,
                    # the run itself, plus the deliveries in flight when it ends (each bounded by the lease)
                    start_to_close_timeout=timedelta(seconds=2 * plan.run_seconds),
                    heartbeat_timeout=timedelta(seconds=plan.heartbeat_seconds),
                    # a database or worker outage is waited out however long it lasts: no data is at stake
                    retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
                    summary="Send the due outbox messages",
                )
            except ActivityError:
                workflow.logger.warning("dispatch_outbox failed for good; trying again after a pause")
                await workflow.sleep(PAUSE_AFTER_FAILURE, summary="Pause after a failed dispatch run")
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(plan)
