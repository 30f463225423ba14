"""RecallWorkflow (`sample-<no>-recall`): 缺陷研判与召回 after a final fail (DESIGN.md §2 step 6; the opinion's
task 9).

defect_assessment → no_defect: closed `no_defect`
                  → defect: recall_decision (voluntary / ordered) → notice (责令召回通知书 or 召回备案通知书)
                    → recall_plan → in_progress: a progress report every period while `in_progress`
                    → `completed` → summary → closed `recalled`, data {type, reports}.
Every wait has its rule pack deadline; a missed one escalates (Overdue, escalation notice) and the late
decision is still taken. The `recalls` row holds the branch's state and is upserted at every step.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    from activities.recall_records import RecallRecords, RecallRow
    from domain.branches import BranchInput
    from domain.decisions import Decision, DecisionKind, first_error
    from domain.rules import Deadline
    from domain.status import BranchReport
    from workflows.branch import BranchProcess
    from workflows.process import ACTIVITY_TIMEOUT, RETRY


# --- what `data` may hold for the recall's decisions (the shared PAYLOADS table has none for them) -----


class _Data(BaseModel):
    # A misspelt field must not vanish silently from the record.
    model_config = ConfigDict(extra="forbid")


class DefectAssessmentData(_Data):
    defect: str | None = Field(default=None, description="the defect found, in words")
    hazard: str | None = Field(default=None, description="the risk to persons or property")


class RecallDecisionData(_Data):
    scope: str | None = Field(default=None, description="batches, production period or models concerned")
    units: int | None = Field(default=None, ge=0, description="units concerned")


class RecallPlanData(_Data):
    plan_no: str | None = None
    units: int | None = Field(default=None, ge=0, description="units to recall")
    measures: str | None = Field(default=None, description="repair, replacement, refund, …")


class RecallProgressData(_Data):
    recovered: int | None = Field(default=None, ge=0, description="units recovered so far (cumulative)")
    note: str | None = None


class RecallSummaryData(_Data):
    report_no: str | None = None
    recovered: int | None = Field(default=None, ge=0, description="units recovered in all")


RECALL_PAYLOADS: dict[DecisionKind, type[_Data]] = {
    DecisionKind.DEFECT_ASSESSMENT: DefectAssessmentData,
    DecisionKind.RECALL_DECISION: RecallDecisionData,
    DecisionKind.RECALL_PLAN: RecallPlanData,
    DecisionKind.RECALL_PROGRESS: RecallProgressData,
    DecisionKind.RECALL_SUMMARY: RecallSummaryData,
}


@workflow.defn
class RecallWorkflow(BranchProcess):
    BRANCH = "recall"
    TITLE = "缺陷研判与召回 defect assessment and recall"

    @workflow.init
    def __init__(self, inp: BranchInput) -> None:
        self._setup_branch(inp)
        self.row: RecallRow | None = None

    @workflow.run
    async def run(self, inp: BranchInput) -> BranchReport:
        self._event("started", f"recall branch opened for sample {inp.order.sample_no}")
        await self._enter("defect_assessment")
        # The rule pack has no period for the regulator's own assessment. Order 19's 2-working-day incident
        # report is the nearest legal period for a product that may endanger consumers; its expiry
        # (enforcement_lead) escalates here, which is what a late assessment needs.
        assessment = await self._await(DecisionKind.DEFECT_ASSESSMENT, "recall_incident_report")
        await self._save(assessment=assessment.outcome)
        if assessment.outcome == "no_defect":
            return await self._finish("no_defect")

        await self._enter("recall_decision")
        # Same rule again rather than no deadline: a confirmed defect calls for immediate recall (Order 19),
        # and an untimed wait would never show as NextDeadline or Overdue. On expiry the case officer is
        # escalated to, who may then order the recall the enterprise did not volunteer.
        decision = await self._await(DecisionKind.RECALL_DECISION, "recall_incident_report")
        self.data = {"type": decision.outcome, "reports": 0}
        await self._save(recall_type=decision.outcome)

        await self._enter("recall_plan")
        plan_due = await self._deadline("recall_plan")
        await self._issue_notice(assessment, decision, plan_due)
        await self._await(DecisionKind.RECALL_PLAN, "recall_plan", deadline=plan_due)
        await self._save(plan_at=self.clock.now())

        await self._enter("in_progress")
        await self._follow_progress()

        await self._enter("summary")
        # Starts now: the trigger is the end of the recall, i.e. the report that said `completed`.
        await self._await(DecisionKind.RECALL_SUMMARY, "recall_summary")
        await self._save(summary_at=self.clock.now())
        return await self._finish("recalled")

    async def _follow_progress(self) -> None:
        """A progress report per period, each period starting at the previous report (or the plan), until
        one says the recall is completed. A late report escalates, and the next period runs from it."""
        assert self.row is not None
        while True:
            report = await self._await(DecisionKind.RECALL_PROGRESS, "recall_progress")
            due = self.deadlines[-1]  # the deadline that wait ran against
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
        await workflow.execute_activity_method(
            RecallRecords.save,
            self.row,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            cancellation_type=ActivityCancellationType.ABANDON,
            summary=f"Record the recall of sample {self.order.sample_no} at stage {self.stage}",
        )

    async def _finish(self, outcome: str) -> BranchReport:
        await self._save(closed_outcome=outcome)
        return await self._close(outcome)

    # --- validation beyond the role matrix (pure: it runs in the update validator too) -------------

    def _extra_problem(self, decision: Decision) -> str | None:
        model = RECALL_PAYLOADS.get(decision.kind)
        if model is None:
            return None
        try:
            data = model.model_validate(decision.data)
        except ValidationError as err:
            return f"malformed data for {decision.kind.value}: {first_error(err, 'data.')}"
        if isinstance(data, RecallProgressData) and data.recovered is not None and self.row is not None:
            before = max((_recovered(p) for p in self.row.progress), default=0)
            if data.recovered < before:
                return (f"data.recovered: {data.recovered} is fewer than the {before} units already reported "
                        "recovered (the count is cumulative)")
        return None


def _recovered(entry: dict[str, Any]) -> int:
    value = entry.get("data", {}).get("recovered")
    return int(value) if isinstance(value, int) else 0

