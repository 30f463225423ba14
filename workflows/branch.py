"""BranchProcess: the base of every post-handling branch workflow (`sample-<no>-<branch>`).

A branch waits for its decisions like the sample does (DecisionProcess), shows its own stage in the Web UI,
and keeps its sample informed with `branch_update` signals so the sample's status shows every branch. What
a branch is (title, workflow type, decision kinds, records, parent-close policy) is its spec in
domain/branches.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.branches import BranchCarry, BranchInput, BranchReport, BranchSpec, BranchStatus
    from domain.decisions import Decision
    from domain.status import TimelinePage
    from domain.visibility import identity_attributes
    from workflows.process import DecisionProcess
    from workflows.visibility import branch_details, publish


class BranchProcess(DecisionProcess):
    SPEC: ClassVar[BranchSpec]

    def _setup_branch(
        self, inp: BranchInput, *, extra_check: Callable[[Decision], str | None] | None = None
    ) -> None:
        self._setup(inp.order, inp.clock_origin, extra_check=extra_check, notice_context=self._sample_facts)
        self.input = inp
        if inp.policy is not None:  # the sample's, as recorded in its history
            self._adopt_policy(inp.policy)
        self.stage = "opened"
        self.outcome: str | None = None
        self.enforcement_lead: str | None = None
        self.data: dict[str, Any] = {}
        self._told: BranchReport | None = None  # the report the sample last got (lean runs)
        self._told_count = 0  # reports told in this run: their `seq`
        if inp.carried is not None:  # a continued run: `_resume_state` holds the branch's own part
            self._restore_process(inp.carried)
            self.stage, self.outcome = inp.carried.stage, inp.carried.outcome
            self.enforcement_lead, self.data = inp.carried.enforcement_lead, dict(inp.carried.data)

    # --- what the sample and monitors see -------------------------------------------------------

    def _report(self) -> BranchReport:
        return BranchReport(
            branch=self.SPEC.branch.value,
            workflow_id=workflow.info().workflow_id,
            stage=str(self.stage),
            closed=self.stage == "closed",
            outcome=self.outcome,
            awaiting=self.desk.awaiting(),
            enforcement_lead=self.enforcement_lead,
            data=self.data,
        )

    @workflow.query(name="status")
    def status(self, *args: Any) -> BranchStatus:
        """The branch's report, deadlines, notices and a page of its timeline (the newest by default)."""
        start, page = TimelinePage.of(args).cut(self.timeline)
        return BranchStatus(
            **self._report().model_dump(), timeline=page, timeline_from=start, timeline_total=len(self.timeline),
            deadlines=list(self.deadlines), notices=list(self.notices), needs_operator=self.needs_operator,
        )

    def _sample_facts(self) -> dict[str, Any]:
        """What every notice of a branch can use: the sample's result it follows from."""
        inp = self.input
        return {"failed_items": inp.failed_items, "report_no": inp.report_no, "verdict": inp.verdict,
                "sample_notices": inp.notices, "evidence": [e.model_dump(mode="json") for e in inp.evidence]}

    async def _enter(self, stage: str) -> None:
        self.stage = stage
        self._event("stage", f"{self.SPEC.branch.value}: {stage}")
        await self._changed()

    def _kind(self) -> str:
        """ProcessKind: the branch's name (a merged case says so instead)."""
        return self.SPEC.branch.value

    def _related(self) -> list[tuple[str, str]]:
        """The workflows a monitor goes to from this one, for the details: its sample."""
        return [("sample", self.input.sample_workflow_id)]

    def _show(self) -> None:
        awaiting = self.desk.awaiting()
        kind = self._kind()
        publish(f"{self.SPEC.branch.value}:{self.stage}",
                branch_details(self.order, self.SPEC.title, str(self.stage), self.outcome, awaiting,
                               self.needs_operator, self._related()),
                awaiting=awaiting, needs_operator=self._operator_attribute(),
                estimated=self._estimated_attribute(awaiting),
                identity=identity_attributes(kind, self.order.region if kind == self.SPEC.branch.value else None),
                only_changed=self._lean(), monitored=self._monitored())

    async def _publish(self) -> None:
        self._unpublished = False
        self._show()
        await self._tell_sample()

    async def _tell_sample(self) -> None:
        """The sample's view of this branch follows its changes (lean runs: only when the report changed)."""
        report = self._report()
        if self._lean():
            if report == self._told:
                return
            self._told = report
            self._told_count += 1
            report = report.model_copy(update={"seq": self.runs * 10**9 + self._told_count})
        sample = workflow.get_external_workflow_handle(self.input.sample_workflow_id)
        try:
            await sample.signal("branch_update", self._seal(report.model_dump(mode="json"), sample.id)
                                if self._hardened() else report)
        except Exception:  # noqa: BLE001 - the sample may have closed (a credit listing outlives it)
            workflow.logger.info("sample %s no longer takes branch updates", self.input.sample_workflow_id)

    @property
    def _resume_state(self) -> dict[str, Any]:
        """In a continued run, what `_continue_as_new` was given; else empty."""
        return self.input.carried.state if self.input.carried is not None else {}

    def _continue_due(self) -> bool:
        """Every branch wait's interrupt: the history is long; go on in a new run (`_continue_as_new`)."""
        return self._history_long()

    async def _continue_as_new(self, state: dict[str, Any]) -> BranchReport:
        """Go on in a new run of the same workflow id, at the wait it was in, with everything the branch
        knows; `state` is what its own steps need (JSON)."""
        self._event("continued", f"continued as new (run {self.runs + 1}): the history grew long")
        await self._flush()
        await self._settle()
        carry = BranchCarry(**self._carried(), outcome=self.outcome, enforcement_lead=self.enforcement_lead,
                            data=self.data, state=state)
        workflow.continue_as_new(self.input.model_copy(update={"carried": carry}))

    async def _close(self, outcome: str, *, enforcement_lead: str | None = None) -> BranchReport:
        self.outcome = outcome
        self.enforcement_lead = enforcement_lead
        self.desk.waits.clear()
        await self._enter("closed")
        await self._flush()
        await self._settle()
        return self._report()
