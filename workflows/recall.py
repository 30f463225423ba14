"""RecallWorkflow (`sample-<no>-recall`): 缺陷研判与召回 after a final fail (docs/design.md §3; the opinion's
task 9).

defect_assessment → no_defect: closed `no_defect`
                  → defect: recall_decision (voluntary / ordered) → notice (责令召回通知书 or 召回备案通知书)
                    → recall_plan → in_progress: a progress report every period while `in_progress`
                    → `completed` → summary → closed `recalled`, data {type, reports}.
Every wait has its rule pack deadline; a missed one escalates (Overdue, escalation notice) and the late
decision is still taken. The `recalls` row holds the branch's state and is upserted at every step.
When its history grows long the branch continues as new at the wait it is in (docs/design.md §8), carrying
the row (with its progress reports) and the assessment and recall decisions; the new run waits again on the
same deadline.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.recall_records import RecallRecords
    from domain.branches import BRANCHES, Branch, BranchInput
    from domain.decisions import Decision, DecisionKind, RecallProgressData
    from domain.records import RecallRow
    from domain.rules import Deadline
    from domain.status import BranchReport
    from workflows.branch import BranchProcess
    from workflows.process import WaitInterrupted

# The stages that wait, in order (a continued run skips the steps before the one it resumes at).
RECALL = ["defect_assessment", "recall_decision", "recall_plan", "in_progress", "summary"]


@workflow.defn
class RecallWorkflow(BranchProcess):
    SPEC = BRANCHES[Branch.RECALL]

    @workflow.init
    def __init__(self, inp: BranchInput) -> None:
        self._setup_branch(inp, extra_check=self._progress_problem)
        self.row: RecallRow | None = None
        self.assessment: Decision | None = None
        self.decision: Decision | None = None
        if state := self._resume_state:  # a continued run: what the earlier steps left
            self.row = RecallRow.model_validate(state["row"]) if state.get("row") else None
            self.assessment = Decision.model_validate(state["assessment"]) if state.get("assessment") else None
            self.decision = Decision.model_validate(state["decision"]) if state.get("decision") else None

    @workflow.run
    async def run(self, inp: BranchInput) -> BranchReport:
        if inp.carried is None:
            self._event("started", f"recall branch opened for sample {inp.order.sample_no}")
            await self._enter("defect_assessment")
        try:
            return await self._recall()
        except WaitInterrupted:  # the history grew long (`_continue_due`): go on in a new run
            return await self._continue_as_new({
                "row": self.row.model_dump(mode="json") if self.row else None,
                "assessment": self.assessment.model_dump(mode="json") if self.assessment else None,
                "decision": self.decision.model_dump(mode="json") if self.decision else None,
            })

    async def _recall(self) -> BranchReport:
        """The recall from the assessment to closed. Each step ends by entering the next stage; a continued
        run starts at the step of the stage it was in (`_runs`), whose wait takes the carried deadline."""
        plan_due: Deadline | None = None
        if self._runs("defect_assessment", RECALL):
            # The rule pack has no period for the regulator's own assessment. Order 19's 2-working-day incident
            # report is the nearest legal period for a product that may endanger consumers; its expiry
            # (enforcement_lead) escalates here, which is what a late assessment needs.
            self.assessment = await self._await(DecisionKind.DEFECT_ASSESSMENT, "recall_incident_report",
                                                interrupt=self._continue_due)
            await self._save(assessment=self.assessment.outcome)
            if self.assessment.outcome == "no_defect":
                return await self._finish("no_defect")
            await self._enter("recall_decision")

        if self._runs("recall_decision", RECALL):
            # Same rule again rather than no deadline: a confirmed defect calls for immediate recall (Order 19),
            # and an untimed wait would never show as NextDeadline or Overdue. On expiry the case officer is
            # escalated to, who may then order the recall the enterprise did not volunteer.
            self.decision = await self._await(DecisionKind.RECALL_DECISION, "recall_incident_report",
                                              interrupt=self._continue_due)
            self.data = {"type": self.decision.outcome, "reports": 0}
            await self._save(recall_type=self.decision.outcome)
            await self._enter("recall_plan")
            plan_due = await self._deadline("recall_plan")
            assert self.assessment is not None
            await self._issue_notice(self.assessment, self.decision, plan_due)

        if self._runs("recall_plan", RECALL):
            # In a continued run plan_due is None: the wait takes the deadline it had (the notice is issued).
            await self._await(DecisionKind.RECALL_PLAN, "recall_plan", deadline=plan_due,
                              interrupt=self._continue_due)
            await self._save(plan_at=self.clock.now())
            await self._enter("in_progress")

        if self._runs("in_progress", RECALL):
            await self._follow_progress()
            await self._enter("summary")

        self._runs("summary", RECALL)
        # Starts now: the trigger is the end of the recall, i.e. the report that said `completed`.
        await self._await(DecisionKind.RECALL_SUMMARY, "recall_summary", interrupt=self._continue_due)
        await self._save(summary_at=self.clock.now())
        return await self._finish("recalled")

    async def _follow_progress(self) -> None:
        """A progress report per period, each period starting at the previous report (or the plan), until
        one says the recall is completed. A late report escalates, and the next period runs from it. A run
        continued mid-period waits on that period's deadline, and the row carried holds the reports so far."""
        assert self.row is not None
        while True:
            report = await self._await(DecisionKind.RECALL_PROGRESS, "recall_progress",
                                       interrupt=self._continue_due)
            due = self.deadlines[-1]  # the deadline that wait ran against (a continued run's carried list too)
            entry = {
                "n": len(self.row.progress) + 1,
                "outcome": report.outcome,
                "at": self.clock.now().isoformat(),
                "due": str(due.due_date),
                "late": self.clock.now() > due.due,
                "actor": {"id": report.actor.id, "role": report.actor.role.value},
                "request_id": report.request_id,
                "data": report.data,
            }
            progress = [*self.row.progress, entry]
            self.data["reports"] = len(progress)
            if report.outcome == "completed":
                await self._save(progress=progress, completed_at=self.clock.now())
                return
            await self._save(progress=progress)

    # --- notice and record ------------------------------------------------------------------------

    async def _issue_notice(self, assessment: Decision, decision: Decision, plan_due: Deadline) -> None:
        # Only to state the periods in the notice: these waits start later, from the plan and the end.
        progress = await self._deadline("recall_progress", keep=False)
        summary = await self._deadline("recall_summary", keep=False)
        order = self.order
        producer = order.labelled_producer or order.sampled_party  # the recall is the producer's duty
        await self._notice(
            "recall_order",
            "recall-notice",
            {
                "recall_type": decision.outcome,
                "producer": producer.model_dump(mode="json"),
                "defect": str(assessment.data.get("defect") or ""),
                "scope": str(decision.data.get("scope") or ""),
                "plan_length": plan_due.length,
                "plan_unit": plan_due.unit,
                "plan_due": str(plan_due.due_date),
                "progress_length": progress.length,
                "progress_unit": progress.unit,
                "summary_length": summary.length,
                "summary_unit": summary.unit,
                "basis": plan_due.basis,
            },
        )

    async def _save(self, **changes: Any) -> None:
        base = self.row or RecallRow(
            workflow_id=workflow.info().workflow_id, sample_no=self.order.sample_no, updated_at=workflow.now()
        )
        self.row = base.model_copy(update={**changes, "updated_at": workflow.now()})
        await self._do(RecallRecords.save, self.row,
                   summary=f"Record the recall of sample {self.order.sample_no} at stage {self.stage}")

    async def _finish(self, outcome: str) -> BranchReport:
        await self._save(closed_outcome=outcome)
        return await self._close(outcome)

    # --- validation beyond the role matrix and the payload -------------------------------------

    def _progress_problem(self, decision: Decision) -> str | None:
        """The recovered count is cumulative: a report may not go below an earlier one."""
        if decision.kind is not DecisionKind.RECALL_PROGRESS or self.row is None:
            return None
        data = RecallProgressData.model_validate(decision.data)
        before = max((_recovered(p) for p in self.row.progress), default=0)
        if data.recovered is not None and data.recovered < before:
            return (f"data.recovered: {data.recovered} is fewer than the {before} units already reported "
                    "recovered (the count is cumulative)")
        return None


def _recovered(entry: dict[str, Any]) -> int:
    value = entry.get("data", {}).get("recovered")
    return int(value) if isinstance(value, int) else 0

