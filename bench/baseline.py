"""The bare-Temporal baseline each figure is set against: the least a Temporal workflow does for the same job.

- `BareWorkflow(n)`: takes `n` decisions by update (the handler accepts at once), runs one no-op activity for
  each, then completes; with n = 0 it waits for the `done` signal. Its `status` query says which decision
  it waits for, like Spotcheck's `status` (the driver polls both the same way).
- `EmptyWorkflow`: returns at once (for start throughput); its input, if any, is not read.
- `StepWorkflow`: the floor under a decision's step, not a baseline of its own: what Temporal itself is
  asked for when a decision opens the next wait, and nothing else (below).
- `noop`: the no-op activity.

No sandbox passthrough tricks, no data-converter changes: the SDK's defaults.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey

TASK_QUEUE = "bare"
# Two of the attributes a sample's step upserts (domain/visibility.py), registered on the bench's server.
STAGE = SearchAttributeKey.for_keyword("Stage")
AWAITING_ROLE = SearchAttributeKey.for_keyword_list("AwaitingRole")


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


@workflow.defn
class StepWorkflow:
    """Waits like a sample (a wait with a timer); its `step` update does in Temporal what a decision that
    opens the next wait does, in the task that answers: the waiting timer cancelled, the next one started,
    the stage and the awaited role upserted. With `audited`, a no-op local activity before the answer too
    (as an audit row written beside it). No domain code, no database: the least any design pays that opens
    the next wait before it answers."""

    def __init__(self) -> None:
        self.steps = 0
        self.waiting = False

    @workflow.run
    async def run(self) -> int:
        while True:
            taken = self.steps
            self.waiting = True
            try:
                await workflow.wait_condition(lambda t=taken: self.steps > t, timeout=timedelta(days=30))  # type: ignore[misc]
            except TimeoutError:
                return self.steps
            workflow.upsert_search_attributes([STAGE.value_set(f"step-{self.steps}"),
                                               AWAITING_ROLE.value_set(["lab"])])

    @workflow.update
    async def step(self, audited: bool) -> int:
        if audited:
            await workflow.execute_local_activity(noop, self.steps, start_to_close_timeout=timedelta(seconds=30))
        self.steps += 1
        return self.steps

    @workflow.query
    def status(self) -> int | None:
        return 0 if self.waiting else None


WORKFLOWS = [BareWorkflow, EmptyWorkflow, StepWorkflow]
ACTIVITIES = [noop]
