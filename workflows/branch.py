"""BranchProcess: the base of every post-handling branch workflow (`sample-<no>-<branch>`).

A branch waits for its decisions like the sample does (DecisionProcess), shows its own stage in the Web UI,
and keeps its sample informed with `branch_update` signals so the sample's status shows every branch."""

from __future__ import annotations

from typing import Any, ClassVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import visibility as sa
    from domain.branches import BranchInput, BranchReport, BranchStatus
    from domain.status import Awaiting
    from workflows.process import DecisionProcess


class BranchProcess(DecisionProcess):
    BRANCH: ClassVar[str]
    TITLE: ClassVar[str]  # one line in Chinese and English, for timelines and the Web UI

    def _setup_branch(self, inp: BranchInput) -> None:
        self._setup(inp.order, inp.clock_origin)
        self.input = inp
        self.stage = "opened"
        self.outcome: str | None = None
        self.enforcement_lead: str | None = None
        self.data: dict[str, Any] = {}

    # --- what the sample and monitors see -------------------------------------------------------

    def _report(self) -> BranchReport:
        return BranchReport(
            branch=self.BRANCH,
            workflow_id=workflow.info().workflow_id,
            stage=str(self.stage),
            closed=self.stage == "closed",
            outcome=self.outcome,
            awaiting=[
                Awaiting(kind=w.kind.value, roles=w.roles, rule_id=w.deadline.rule_id, title=w.deadline.title,
                         due=w.deadline.due, due_at=w.due_at, basis=w.deadline.basis, overdue=w.overdue,
                         beyond_schedule=w.deadline.beyond_schedule)
                for w in self.desk.waits.values()
            ],
            enforcement_lead=self.enforcement_lead,
            data=self.data,
        )

    @workflow.query(name="status")
    def status(self) -> BranchStatus:
        return BranchStatus(
            **self._report().model_dump(), timeline=list(self.timeline), deadlines=list(self.deadlines),
            notices=list(self.notices),
        )

    def _notice_context(self) -> dict[str, Any]:
        inp = self.input
        return {"failed_items": inp.failed_items, "report_no": inp.report_no, "verdict": inp.verdict,
                "sample_notices": inp.notices, "evidence": [e.model_dump(mode="json") for e in inp.evidence]}

    async def _enter(self, stage: str) -> None:
        self.stage = stage
        self._event("stage", f"{self.BRANCH}: {stage}")
        await self._publish()

    async def _publish(self) -> None:
        waits = list(self.desk.waits.values())
        roles = sorted({r for w in waits for r in w.roles})
        next_due = min((w.due_at for w in waits), default=None)
        workflow.upsert_search_attributes([
            sa.STAGE.value_set(f"{self.BRANCH}:{self.stage}"),
            sa.AWAITING_ROLE.value_set(roles) if roles else sa.AWAITING_ROLE.value_unset(),
            sa.NEXT_DEADLINE.value_set(next_due) if next_due else sa.NEXT_DEADLINE.value_unset(),
            sa.OVERDUE.value_set(any(w.overdue for w in waits)),
        ])
        workflow.set_current_details(self._details(waits))
        await self._tell_sample()

    def _details(self, waits: list[Any]) -> str:
        lines = [f"**{self.order.sample_no}** · {self.TITLE} · stage **{self.stage}**"
                 + (f" · outcome **{self.outcome}**" if self.outcome else "")]
        for w in waits:
            flag = " ⚠️ **overdue**" if w.overdue else ""
            lines.append(f"- waiting for `{w.kind.value}` from **{'/'.join(w.roles)}** by "
                         f"**{w.deadline.due_date}**{flag} — {w.deadline.basis}")
        return "\n".join(lines)

    async def _tell_sample(self) -> None:
        sample = workflow.get_external_workflow_handle(self.input.sample_workflow_id)
        try:
            await sample.signal("branch_update", self._report())
        except Exception:  # noqa: BLE001 - the sample may have closed (a credit listing outlives it)
            workflow.logger.info("sample %s no longer takes branch updates", self.input.sample_workflow_id)

    async def _close(self, outcome: str, *, enforcement_lead: str | None = None) -> BranchReport:
        self.outcome = outcome
        self.enforcement_lead = enforcement_lead
        self.desk.waits.clear()
        await self._enter("closed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._report()
