"""CertificationWorkflow (`sample-<no>-certification`): a failed product carrying a CCC certificate is
reported to its certification body, which must suspend or revoke the certificate (认证认可条例 Art. 26; the
opinion's task 6).

notifying: 认证机构告知函 rendered and handed over (`certification` / `notify_certification_body`)
→ awaiting_action: `certificate_action` suspended / revoked / none (with reason) within the local-policy
days; late escalates and the late answer is still taken → closed with the action as outcome.
The `certificate_actions` row is upserted at each step. A long history continues as new at the wait (the
row carried), which the new run resumes with its deadline.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.certification_records import CertificationRecords
    from domain.branches import BRANCHES, Branch, BranchInput
    from domain.decisions import CertificateActionData, Decision, DecisionKind
    from domain.records import CertificateActionRow
    from domain.rules import Deadline
    from domain.status import BranchReport
    from workflows.branch import BranchProcess
    from workflows.process import WaitInterrupted

# Addressee when the sample does not name the body (context "certification_body"): the notice still reads.
DEFAULT_BODY = "发证认证机构"
# The stages in order: a continued run skips the steps before the one it resumes at.
STAGES = ["notifying", "awaiting_action"]


@workflow.defn
class CertificationWorkflow(BranchProcess):
    SPEC = BRANCHES[Branch.CERTIFICATION]

    @workflow.init
    def __init__(self, inp: BranchInput) -> None:
        self._setup_branch(inp, extra_check=self._certificate_problem)
        row = self._resume_state.get("row")  # a continued run: the row as last saved
        self.row: CertificateActionRow | None = CertificateActionRow.model_validate(row) if row else None

    @workflow.run
    async def run(self, inp: BranchInput) -> BranchReport:
        certificate = inp.order.product.ccc_certificate
        if not certificate:
            # The sample starts this branch only for a certified product: without a certificate there is
            # nobody to tell, and no retry can change that.
            raise ApplicationError(
                f"sample {inp.order.sample_no}: the product has no CCC certificate; no certification branch",
                type="NoCccCertificate", non_retryable=True,
            )
        try:
            return await self._steps(inp, certificate)
        except WaitInterrupted:  # the history grew long (`_continue_due`): go on in a new run, same wait
            return await self._continue_as_new({"row": self.row.model_dump(mode="json") if self.row else None})

    async def _steps(self, inp: BranchInput, certificate: str) -> BranchReport:
        """Notifying, then the wait; a continued run resumes at the wait (`_runs`) with the deadline it had."""
        due: Deadline | None = None  # a continued run waits on its carried deadline
        if self._runs("notifying", STAGES):
            due = await self._notify(inp, certificate)
            await self._enter("awaiting_action")
        self._runs("awaiting_action", STAGES)
        action = await self._await(DecisionKind.CERTIFICATE_ACTION, "certificate_action", deadline=due,
                                   interrupt=self._continue_due)
        self.data.update(action=action.outcome, reason=action.reason)
        await self._save(action=action.outcome, reason=action.reason, decided_at=self.clock.now())
        return await self._close(action.outcome)

    async def _notify(self, inp: BranchInput, certificate: str) -> Deadline:
        """The letter to the certification body, handed over; the deadline it states."""
        body = str(inp.context.get("certification_body") or DEFAULT_BODY)
        self.data = {"certificate_no": certificate, "certification_body": body}
        self._event("started", f"certification branch opened for certificate {certificate}")
        await self._enter("notifying")
        # Computed first so the letter can state the date; the period runs from telling the body, i.e. now.
        due = await self._deadline("certificate_action")
        await self._notice(
            "certification_notice",
            "certification-notice",
            {"certificate_no": certificate, "certification_body": body, "action_length": due.length,
             "action_unit": due.unit, "action_due": str(due.due_date)},
        )
        letter = self.notices[-1]
        receipt = await self._hand_over(
            "certification", "notify_certification_body", "certification-notice", body,
            f"CCC 获证产品抽查不合格告知: 证书 {certificate}",
            {"certificate_no": certificate, "sample_no": inp.order.sample_no, "report_no": inp.report_no,
             "failed_items": inp.failed_items, "notice_sha256": letter["sha256"], "due": str(due.due_date)},
        )
        self.data["handover_reference"] = receipt.reference
        await self._save(body_notified_at=self.clock.now(), handover_reference=receipt.reference)
        return due

    async def _save(self, **changes: Any) -> None:
        base = self.row or CertificateActionRow(
            workflow_id=workflow.info().workflow_id, sample_no=self.order.sample_no,
            certificate_no=self.order.product.ccc_certificate or "",
        )
        self.row = base.model_copy(update=changes)
        await self._do(CertificationRecords.save, self.row,
                   summary=f"Record the certificate action for sample {self.order.sample_no} at stage {self.stage}")

    def _certificate_problem(self, decision: Decision) -> str | None:
        """The action must be on this product's certificate (the payload itself is checked already)."""
        if decision.kind is not DecisionKind.CERTIFICATE_ACTION:
            return None
        data = CertificateActionData.model_validate(decision.data)
        own = self.order.product.ccc_certificate
        if data.certificate_no is not None and data.certificate_no != own:
            return f"data.certificate_no: {data.certificate_no} is not this product's certificate ({own})"
        return None
