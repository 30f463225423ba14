"""The bare-Temporal baseline each figure is set against: the least a Temporal workflow does for the same job.

- `BareWorkflow(n)`: takes `n` decisions by update (the handler accepts at once), runs one no-op activity for
  each, then completes; with n = 0 it waits for the `done` signal. Its `status` query says which decision
  it waits for, like Spotcheck's `status` (the driver polls both the same way).
- `EmptyWorkflow`: returns at once (for start throughput); its input, if any, is not read.
- `noop`: the no-op activity.

No sandbox passthrough tricks, no data-converter changes: the SDK's defaults.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

TASK_QUEUE = "bare"


@activity.defn
async def noop(step: int) -> int:
    return step


@workflow.defn
class BareWorkflow:
    def __init__(self) -> None:
        self.taken = 0  # decisions accepted
        self.waiting_for: int | None = None  # the decision awaited, once the workflow waits for it
        self.done = False

    @workflow.run
    async def run(self, decisions: int) -> int:
        if decisions == 0:
            self.waiting_for = 0
            await workflow.wait_condition(lambda: self.done)
            return 0
        for step in range(decisions):
            self.waiting_for = step
            await workflow.wait_condition(lambda s=step: self.taken > s)  # type: ignore[misc]
            self.waiting_for = None
            await workflow.execute_activity(noop, step, start_to_close_timeout=timedelta(seconds=30))
        return decisions

    @workflow.update
    async def decide(self, step: int) -> int:
        self.taken += 1
        return step

    @workflow.update
    async def noop_update(self, step: int) -> int:
        return step

    @workflow.signal
    async def finish(self) -> None:
        self.done = True

    @workflow.query
    def status(self) -> int | None:
        return self.waiting_for


@workflow.defn
class EmptyWorkflow:
    @workflow.run
    async def run(self, *_input: Any) -> None:
        return None


WORKFLOWS = [BareWorkflow, EmptyWorkflow]
ACTIVITIES = [noop]
