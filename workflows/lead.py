"""LeadWorkflow (检监联动, `sample-<no>-lead-<n>`): one problem found while buying or sampling (false
advertising, a missing or forged certificate, an illegal ad, unknown origin), fixed with its evidence hashes,
referred to the line responsible for it, and its outcome brought back (the opinion, tasks 12 and 15).

opened → referred (record, letter, handover) → closed (`confirmed` / `unfounded`; `invalid_input` when the
sample handed over a lead that is not one). Started with context {"lead_no": n, "lead": Lead}. A long history
continues as new at the wait, which the new run resumes with its deadline."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.lead_records import LeadRecords
    from domain.branches import BRANCHES, Branch, BranchInput, BranchReport
    from domain.decisions import DecisionKind, Lead, LeadOutcomeData, LeadType
    from domain.records import LeadClosing, LeadEntry, LeadReferral
    from domain.rules import Deadline
    from workflows.branch import BranchProcess
    from workflows.process import WaitInterrupted

# Who takes a lead, by its type (the opinion, task 12: "反馈对应条线"). Ads and advertising claims go to the
# advertising line (广告监管, 广告法); a missing or forged market-access certificate to the certification line
# (认证监管) and, being a violation, to enforcement (执法稽查); a product of unknown origin (来路不明) to
# enforcement outright. Change the line here, e.g. 虚假宣传 outside an ad to 价监竞争 where that is local practice.
ROUTES: dict[LeadType, tuple[str, ...]] = {
    LeadType.FALSE_ADVERTISING: ("广告监管",),
    LeadType.ILLEGAL_AD: ("广告监管",),
    LeadType.MISSING_CERTIFICATE: ("认证监管", "执法稽查"),
    LeadType.FORGED_CERTIFICATE: ("认证监管", "执法稽查"),
    LeadType.UNKNOWN_ORIGIN: ("执法稽查",),
}
# The stages in order: a continued run skips the steps before the one it resumes at.
STAGES = ["opened", "referred"]


@workflow.defn
class LeadWorkflow(BranchProcess):
    SPEC = BRANCHES[Branch.LEAD]

    @workflow.init
    def __init__(self, inp: BranchInput) -> None:
        self._setup_branch(inp)

    @workflow.run
    async def run(self, inp: BranchInput) -> BranchReport:
        try:
            lead_no = int(inp.context["lead_no"])
            lead = Lead.model_validate(inp.context["lead"])
        except (KeyError, TypeError, ValueError) as err:  # ValidationError is a ValueError
            # The sample's mistake, not the lead's: close visibly rather than fail the sample's branch wait.
            self._event("invalid_input", f"no valid lead in the branch input: {err}")
            return await self._close("invalid_input")
        try:
            return await self._steps(lead_no, lead)
        except WaitInterrupted:  # the history grew long (`_continue_due`): go on in a new run, same wait
            return await self._continue_as_new({})  # what the later steps need is in the input

    async def _steps(self, lead_no: int, lead: Lead) -> BranchReport:
        """Recorded and referred, then the wait; a continued run resumes at the wait (`_runs`) with the
        deadline it had."""
        wf_id = workflow.info().workflow_id
        routed_to = "、".join(ROUTES[lead.type])
        due: Deadline | None = None  # a continued run waits on its carried deadline
        if self._runs("opened", STAGES):
            due = await self._refer(lead_no, lead, routed_to)
        self._runs("referred", STAGES)
        answer = await self._await(DecisionKind.LEAD_OUTCOME, "lead_outcome", deadline=due, interrupt=self._continue_due)
        self.data.update({"outcome": answer.outcome, "outcome_reason": answer.reason, "answered_by": answer.actor.id,
                          **LeadOutcomeData.model_validate(answer.data).model_dump(exclude_none=True)})
        await self._do(
            LeadRecords.lead_record_outcome,
            LeadClosing(workflow_id=wf_id, outcome=answer.outcome, reason=answer.reason, closed_at=self.clock.now()),
            summary=f"Record the outcome of lead {lead_no}: {answer.outcome}",
        )
        self._event("lead_outcome", f"{routed_to} reports lead {lead_no} {answer.outcome}"
                    + (f": {answer.reason}" if answer.reason else ""))
        return await self._close(answer.outcome)

    async def _refer(self, lead_no: int, lead: Lead, routed_to: str) -> Deadline:
        """The lead recorded with its evidence, the letter, the hand-over to its line; the deadline it states."""
        wf_id = workflow.info().workflow_id
        self.data.update({"lead_no": lead_no, "type": lead.type.value, "description": lead.description,
                          "routed_to": routed_to, "evidence": [e.sha256 for e in lead.evidence]})
        await self._do(
            LeadRecords.lead_record,
            LeadEntry(workflow_id=wf_id, sample_no=self.order.sample_no, lead_no=lead_no, type=lead.type.value,
                      description=lead.description, evidence=lead.evidence, routed_to=routed_to,
                      recorded_at=self.clock.now()),
            summary=f"Record lead {lead_no} ({lead.type.value}) with {len(lead.evidence)} evidence hashes",
        )
        self._event("lead", f"lead {lead_no} recorded: {lead.type.value}: {lead.description} "
                    f"({len(lead.evidence)} evidence files fixed by SHA-256); routed to {routed_to}")
        await self._enter("referred")
        due = await self._deadline("lead_outcome")
        lead_json = lead.model_dump(mode="json")
        await self._notice("lead_referral", f"lead-referral-{lead_no}",
                           {"lead": lead_json, "lead_no": lead_no, "routed_to": routed_to, "due": str(due.due_date),
                            "due_days": due.length, "notice_no": f"{self.order.sample_no}-XS{lead_no:02d}"})
        receipt = await self._hand_over(
            "enforcement", "refer_lead", f"lead-referral-{lead_no}", routed_to,
            f"线索移送：{self.order.sample_no} 线索{lead_no}（{lead.type.value}）",
            {"sample_no": self.order.sample_no, "lead_no": lead_no, "lead": lead_json, "routed_to": routed_to,
             "due": str(due.due_date), "notice_sha256": self.notices[-1].get("sha256")},
        )
        self.data["handover"] = receipt.reference
        await self._do(LeadRecords.lead_record_referral,
                   LeadReferral(workflow_id=wf_id, handover_reference=receipt.reference),
                   summary=f"Record the referral of lead {lead_no} ({receipt.reference})")
        return due
