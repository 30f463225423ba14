"""Post-handling of a sample (DESIGN.md §2 step 6): every consequence of a final fail runs as its own child
workflow `sample-<no>-<branch>`; the sample follows them through `branch_update` signals and closes when
every branch it waits for has closed.

Parent-close policies, and why:
- credit: ABANDON and not awaited. A credit listing lasts a year (or until repaired); holding the sample
  open that long would keep every sample "open" in the monitors' lists for nothing. The listing is its
  own record with its own timers; it keeps running after the sample closes.
- every other branch (rectification, enforcement, recall, certification, platform, leads): awaited, and
  TERMINATE on close (the default) — they close before the sample does, so the policy never fires in
  practice; it only guards against a sample that is itself terminated by an operator.
- follow-up samples are started by the rectification branch with ABANDON: they are samples of their own.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from domain.branches import Branch, BranchInput, branch_workflow_id
    from domain.decisions import Lead
    from domain.status import Awaiting, BranchReport
    from domain.visibility import sample_attributes

# Workflow type names: started by name so that the sample does not import every branch module.
BRANCH_WORKFLOW = {
    Branch.RECTIFICATION: "RectificationWorkflow",
    Branch.CREDIT: "CreditWorkflow",
    Branch.ENFORCEMENT: "EnforcementWorkflow",
    Branch.RECALL: "RecallWorkflow",
    Branch.CERTIFICATION: "CertificationWorkflow",
    Branch.PLATFORM: "PlatformWorkflow",
    Branch.LEAD: "LeadWorkflow",
}

BRANCH_TITLE = {
    Branch.RECTIFICATION: "责令整改 rectification",
    Branch.CREDIT: "信用约束 credit listing",
    Branch.ENFORCEMENT: "移交执法稽查 enforcement",
    Branch.RECALL: "缺陷研判与召回 recall",
    Branch.CERTIFICATION: "CCC 认证处置 certification",
    Branch.PLATFORM: "网抽下架 platform delisting",
    Branch.LEAD: "检监联动线索 lead",
}


class PostHandling:
    """Mixin of SampleWorkflow: starts the branches, follows them, and forwards what one branch's end
    means for another (an enforcement lead, a heavy penalty for the credit check)."""

    branches: dict[str, BranchReport]
    _awaited: dict[str, ChildWorkflowHandle[Any, BranchReport]]
    _credit: ChildWorkflowHandle[Any, BranchReport] | None
    _branches_changed: bool

    def _setup_branches(self) -> None:
        self.branches = {}
        self._awaited = {}
        self._credit = None
        self._branches_changed = False

    @workflow.signal(name="branch_update")
    def branch_update(self, report: BranchReport) -> None:
        """A branch's stage, awaited decisions and deadlines changed; the main loop publishes it."""
        known = self.branches.get(report.workflow_id)
        if known is None or not known.closed:
            self.branches[report.workflow_id] = report
            self._branches_changed = True

    async def _start_branch(
        self, branch: Branch, *, context: dict[str, Any] | None = None, n: int | None = None,
        awaited: bool = True,
    ) -> None:
        sample_id = workflow.info().workflow_id
        wf_id = branch_workflow_id(sample_id, branch.value, n)
        inp = BranchInput(
            branch=branch, order=self.order, sample_workflow_id=sample_id,  # type: ignore[attr-defined]
            clock_origin=self.clock.origin, verdict=self.verdict.value,  # type: ignore[attr-defined]
            failed_items=self.failed_items, report_no=self.report_no,  # type: ignore[attr-defined]
            evidence=self.evidence,  # type: ignore[attr-defined]
            notices=[{k: n.get(k) for k in ("template", "title", "sha256")} for n in self.notices],  # type: ignore[attr-defined]
            context=context or {},
        )
        handle = await workflow.start_child_workflow(
            BRANCH_WORKFLOW[branch],
            inp,
            id=wf_id,
            task_queue=workflow.info().task_queue,
            result_type=BranchReport,
            parent_close_policy=ParentClosePolicy.TERMINATE if awaited else ParentClosePolicy.ABANDON,
            search_attributes=sample_attributes(
                self.order, stage=f"{branch.value}:opened", verdict=self.verdict.value  # type: ignore[attr-defined]
            ),
            static_summary=f"{BRANCH_TITLE[branch]} · {self.order.summary}",  # type: ignore[attr-defined]
        )
        self.branches[wf_id] = BranchReport(branch=branch.value, workflow_id=wf_id, stage="opened")
        if awaited:
            self._awaited[wf_id] = handle
        if branch is Branch.CREDIT:
            self._credit = handle
        self._event("branch", f"branch opened: {BRANCH_TITLE[branch]} ({wf_id})")  # type: ignore[attr-defined]

    async def _start_leads(self, leads: list[Lead]) -> None:
        """检监联动: each problem found while buying goes to its line at once, whatever the verdict."""
        for n, lead in enumerate(leads, start=1):
            await self._start_branch(
                Branch.LEAD, n=n, context={"lead_no": n, "lead": lead.model_dump(mode="json")}
            )

    async def _follow_branches(self) -> None:
        """Until every awaited branch has closed: publish their changes, and act on each one's end."""
        handled: set[str] = set()
        while len(handled) < len(self._awaited) or self._branches_changed:
            await workflow.wait_condition(
                lambda: self._branches_changed
                or any(h.done() and wid not in handled for wid, h in self._awaited.items())
            )
            for wid, handle in list(self._awaited.items()):
                if handle.done() and wid not in handled:
                    handled.add(wid)
                    await self._branch_closed(handle.result())
            self._branches_changed = False
            await self._publish()  # type: ignore[attr-defined]

    async def _branch_closed(self, report: BranchReport) -> None:
        self.branches[report.workflow_id] = report
        self._event(  # type: ignore[attr-defined]
            "branch_closed", f"branch closed: {report.branch} → {report.outcome}"
            + (f" ({report.enforcement_lead})" if report.enforcement_lead else ""),
        )
        if report.branch == Branch.ENFORCEMENT.value and report.data.get("heavy") and self._credit:
            # A heavy penalty counts for the serious-dishonesty check of the credit branch.
            await self._tell(self._credit, "enforcement_result", report.data)
        if report.enforcement_lead:
            await self._enforcement_lead(report)

    async def _enforcement_lead(self, report: BranchReport) -> None:
        """A branch's end that calls for enforcement (missed rectification, refused delisting, …): the
        sample's own enforcement case takes it when there is one, else a case is opened for it."""
        has_case = any(b.branch == Branch.ENFORCEMENT.value for b in self.branches.values())
        if has_case:
            await self._hand_over(  # type: ignore[attr-defined]
                "enforcement", "add_lead", f"lead-from-{report.workflow_id}", "执法稽查",
                f"线索: {report.enforcement_lead}", {"from": report.workflow_id, "reason": report.enforcement_lead},
            )
        else:
            await self._start_branch(
                Branch.ENFORCEMENT, context={"reason": f"{report.branch}: {report.enforcement_lead}"}
            )

    async def _tell(self, handle: ChildWorkflowHandle[Any, Any], signal: str, arg: Any) -> None:
        try:
            await handle.signal(signal, arg)
        except Exception:  # noqa: BLE001 - the branch may have closed meanwhile; nothing to tell then
            workflow.logger.info("branch %s no longer takes %s", handle.id, signal)

    def _branch_waits(self) -> list[Awaiting]:
        """Every open wait of every branch still running, for the sample's own visibility."""
        return [a for b in self.branches.values() if not b.closed for a in b.awaiting]
