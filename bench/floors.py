"""The floors under two of the goals: what Temporal itself is asked for by work a figure cannot leave out, with
no domain code and no database, run on the bare worker beside the baselines (bench/baseline.py).

- `StepWorkflow`: the floor under a decision's round trip.

A module of its own: the bare worker runs sandboxed, and the sandbox imports a workflow's module again for
every instance, so a class added to bench/baseline.py would make every bare workflow, and the RSS baseline,
heavier.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey

from bench.baseline import noop

# Two of the attributes a sample's step upserts (domain/visibility.py), registered on the bench's server.
STAGE = SearchAttributeKey.for_keyword("Stage")
AWAITING_ROLE = SearchAttributeKey.for_keyword_list("AwaitingRole")


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


WORKFLOWS = [StepWorkflow]
