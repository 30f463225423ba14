"""Post-handling of a sample (docs/design.md, "Branches"): every consequence of a final fail runs as its own
child workflow `sample-<no>-<branch>`; the sample follows them through `branch_update` signals and closes when
every branch it waits for has closed. Which branches are awaited and their parent-close policies are in
their specs (domain/branches.py); follow-up samples are started by the rectification branch, abandoned:
they are samples of their own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from domain.branches import BRANCHES, Branch, BranchInput, branch_workflow_id
    from domain.decisions import Lead
    from domain.status import Awaiting, BranchReport
    from domain.visibility import sample_attributes
    from workflows.process import DecisionProcess

PARENT_CLOSE = {"terminate": ParentClosePolicy.TERMINATE, "abandon": ParentClosePolicy.ABANDON}

# What the sample tells a branch it starts: its result, with the branch and its context.
BranchInputFor = Callable[[Branch, dict[str, Any]], BranchInput]


class Branches:
    """The sample's branches: starts them, follows their reports, and forwards what one branch's end
    means for another (an enforcement lead, a heavy penalty for the credit check)."""

    def __init__(self, sample: DecisionProcess, input_for: BranchInputFor, seal: Callable[[Any, str], Any]) -> None:
        self.sample = sample
        self.input_for = input_for
        self.seal = seal  # internal signals to a branch are sealed
        self.reports: dict[str, BranchReport] = {}
        self._awaited: dict[str, ChildWorkflowHandle[Any, BranchReport]] = {}
        self._credit: ChildWorkflowHandle[Any, BranchReport] | None = None
        self._changed = False

    def update(self, report: BranchReport) -> None:
        """A branch's stage, awaited decisions and deadlines changed; `follow` publishes it. A report older
        than the one held (its `seq`: two signals sent in one task may arrive swapped) is dropped."""
        known = self.reports.get(report.workflow_id)
        if known is not None and known.seq is not None and report.seq is not None and report.seq < known.seq:
            return
        if known is None or not known.closed:
            self.reports[report.workflow_id] = report
            self._changed = True

    def open_waits(self) -> list[Awaiting]:
        """Every open wait of every branch still running, for the sample's own visibility."""
        return [a for b in self.reports.values() if not b.closed for a in b.awaiting]

    def running(self) -> bool:
        """Whether an awaited branch of this run has not closed yet."""
        return any(not h.done() for h in self._awaited.values())

    def has(self, branch: Branch) -> bool:
        return any(b.branch == branch.value for b in self.reports.values())

    async def start(self, branch: Branch, context: dict[str, Any] | None = None, n: int | None = None) -> None:
        spec = BRANCHES[branch]
        inp = self.input_for(branch, context or {})
        wf_id = branch_workflow_id(inp.sample_workflow_id, branch.value, n)
        handle = await workflow.start_child_workflow(
            spec.workflow,
            inp,
            id=wf_id,
            task_queue=workflow.info().task_queue,
            result_type=BranchReport,
            parent_close_policy=PARENT_CLOSE[spec.parent_close],
            search_attributes=sample_attributes(inp.order, stage=f"{branch.value}:opened", verdict=inp.verdict,
                                                kind=branch.value),
            static_summary=f"{spec.title} · {inp.order.summary}",
        )
        self.reports[wf_id] = BranchReport(branch=branch.value, workflow_id=wf_id, stage="opened")
        if spec.awaited:
            self._awaited[wf_id] = handle
        if branch is Branch.CREDIT:
            self._credit = handle
        self.sample._event("branch", f"branch opened: {spec.title} ({wf_id})")

    async def start_leads(self, leads: list[Lead]) -> None:
        """检监联动: each problem found while buying goes to its line at once, whatever the verdict."""
        for n, lead in enumerate(leads, start=1):
            await self.start(Branch.LEAD, {"lead_no": n, "lead": lead.model_dump(mode="json")}, n)

    async def follow(self) -> None:
        """Until every awaited branch has closed: publish their changes, and act on each one's end."""
        handled: set[str] = set()
        while len(handled) < len(self._awaited) or self._changed:
            await workflow.wait_condition(
                lambda: self._changed or any(h.done() and wid not in handled for wid, h in self._awaited.items())
            )
            for wid, handle in list(self._awaited.items()):
                if handle.done() and wid not in handled:
                    handled.add(wid)
                    await self._closed(handle.result())
            self._changed = False
            await self.sample._publish()

    async def _closed(self, report: BranchReport) -> None:
        self.reports[report.workflow_id] = report
        self.sample._event(
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
        if self.has(Branch.ENFORCEMENT):
            await self.sample._hand_over(
                "enforcement", "add_lead", f"lead-from-{report.workflow_id}", "执法稽查",
                f"线索: {report.enforcement_lead}", {"from": report.workflow_id, "reason": report.enforcement_lead},
            )
        else:
            await self.start(Branch.ENFORCEMENT, {"reason": f"{report.branch}: {report.enforcement_lead}"})

    async def _tell(self, handle: ChildWorkflowHandle[Any, Any], signal: str, arg: Any) -> None:
        try:
            await handle.signal(signal, self.seal(arg, handle.id))
        except Exception:  # noqa: BLE001 - the branch may have closed meanwhile; nothing to tell then
            workflow.logger.info("branch %s no longer takes %s", handle.id, signal)
