"""ProductCaseWorkflow: one per product (`case-<credit code>-<brand>-<model>`), the cross-region merge
(并案, the opinion's task 14).

Every final fail of the product arrives by signal-with-start (`report_fail`, a FailReport). When fails
from two or more regions fall within one merge window (rule `merge_window`), not counting a batch sampled a
second time, the case opens ONE merged enforcement case `<case id>-merged-<n>` and each contributing
sample's enforcement branch is told to follow it (`follow_merged_case`), so they close instead of running
their own cases; later fails inside that window join it. The case ends itself once the window after its
last fail has passed without a new fail, and continues as new when its history grows long.

Stages (`Stage` search attribute): collecting → merged → closed.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.calendar import compute_deadline
    from activities.product_case import ProductCaseActivities
    from domain import signing
    from domain import visibility as sa
    from domain.branches import Branch, BranchInput
    from domain.intake import summarise
    from domain.product_case import (
        MERGE_WINDOW_RULE,
        Assessment,
        CaseFail,
        FailReport,
        MergedCase,
        ProductCaseState,
        ProductCaseStatus,
        assess,
        batch_key,
        merged_case_id,
        product_case_id,
    )
    from domain.records import CaseRecord
    from domain.rules import DeadlineRequest
    from domain.status import BranchReport
    from workflows.calls import call
    from workflows.enforcement import EnforcementWorkflow
    from workflows.process import HARDENED, LEAN, MONITORING
    from workflows.visibility import clock_line, link, publish, shanghai

# A fail date becomes a moment for the deadline activity: noon, China time (no DST, a fixed offset).
CHINA = timezone(timedelta(hours=8))
NOON = time(12, 0, tzinfo=CHINA)
KEEP_SEEN = 1000  # sample numbers of dropped fails remembered, so a very late repeat is still ignored
KEEP_REJECTED = 20
# Released runs only recorded a sample joining a merged case; newer runs add it to the case itself.
MERGED_JOINS = "merged-case-joins"

__all__ = ["FailReport", "ProductCaseWorkflow", "product_case_id"]


def merged_sample(fail: CaseFail) -> dict[str, Any]:
    """A sample as the merged case's file lists it (案件移送函, enforcement_cases.merged_samples)."""
    return {"sample_no": fail.sample_no, "workflow_id": fail.sample_workflow_id, "region": fail.region,
            "batch": fail.batch, "report_no": fail.report_no}


@workflow.defn
class ProductCaseWorkflow:
    @workflow.init
    def __init__(self, state: ProductCaseState) -> None:
        self.s = state
        self.key = state.key
        # Signals that arrived before a continue-as-new are handled first.
        self.pending: list[Any] = list(state.pending)
        self.s.pending = []
        self.rejected: list[str] = []
        self.closed = False
        self._hardened: bool | None = None
        self._lean: bool | None = None
        self._monitored: bool | None = None

    # --- signals and the query -----------------------------------------------------------------

    @workflow.signal(name="report_fail")
    def report_fail(self, *args: Any) -> None:
        """A final fail (FailReport), sealed by the reporting activity. Any arguments are taken: a malformed
        or forged report is kept as rejected in the status; the main loop handles reports in order."""
        raw = self._internal("report_fail", args)
        if raw is not None:
            self.pending.append(raw)

    @workflow.signal(name="branch_update")
    def branch_update(self, *args: Any) -> None:
        """The merged enforcement cases report here (this case is their `sample_workflow_id`)."""
        try:
            report = BranchReport.model_validate(self._internal("branch_update", args))
        except ValidationError:
            return
        for m in self.s.merged:
            if m.workflow_id == report.workflow_id:
                m.stage, m.outcome = report.stage, report.outcome

    @workflow.query(name="status")
    def status(self, *args: Any) -> ProductCaseStatus:
        return ProductCaseStatus(
            key=self.key, stage=self.stage, fails=list(self.s.fails),
            merged_case_id=self.s.merged[-1].workflow_id if self.s.merged else None,
            merged=list(self.s.merged), closes_at=self.s.closes_at, rejected=list(self.rejected),
        )

    @property
    def stage(self) -> str:
        if self.closed:
            return "closed"
        latest = max((f.failed_on for f in self.s.fails), default=None)
        if self.s.merged and latest is not None and latest <= self.s.merged[-1].window_ends:
            return "merged"
        return "collecting"

    # --- the case ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, state: ProductCaseState) -> ProductCaseStatus:
        self._versions()
        await self._publish()
        while True:
            while self.pending:
                if self._history_long():
                    await self._continue_as_new()
                await self._take(self.pending.pop(0))
            if not await self._quiet_window_passed():
                continue
            await self._close()
            # A fail that arrived while closing reopens the case rather than being lost.
            if not self.pending:
                return self.status()
            self.closed = False

    async def _quiet_window_passed(self) -> bool:
        """True when the merge window after the last fail ended with no new fail (at once when the case
        never received a valid fail)."""
        if self.s.closes_at is None:
            return True
        try:
            await workflow.wait_condition(
                lambda: bool(self.pending), timeout=max(timedelta(0), self.s.closes_at - workflow.now()),
                timeout_summary=f"Merge window of {self.key.case_id} ends without a new fail",
            )
            return False
        except TimeoutError:
            return True

    async def _take(self, raw: Any) -> None:
        try:
            report = FailReport.model_validate(raw)
        except ValidationError as exc:
            return self._reject(f"not a fail report: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
        if product_case_id(report.order) != self.key.case_id:
            return self._reject(f"{report.sample_no} is a fail of {product_case_id(report.order)}, not of this case")
        if self._known(report.sample_no):
            return  # the same fail reported again (a retried activity): it counts once
        deadline = await call(
            compute_deadline,
            DeadlineRequest(rule_id=MERGE_WINDOW_RULE, start=datetime.combine(report.failed_on, NOON)),
            summary=f"Compute the merge window of the fail of sample {report.sample_no}",
            local=bool(self._lean),
        )
        fail = CaseFail(
            sample_no=report.sample_no, sample_workflow_id=report.sample_workflow_id,
            enforcement_workflow_id=report.enforcement_workflow_id, region=report.region, batch=report.batch,
            report_no=report.report_no, failed_on=report.failed_on, window_ends=deadline.due_date,
        )
        verdict = assess(self.s.fails, self.s.merged, fail, self.s.seen_batches)
        fail.duplicate_of = verdict.duplicate_of
        self.s.fails.append(fail)
        self.s.reports[fail.sample_no] = report
        # The window is on the sample's (possibly compressed) clock: its length in real time.
        closes = workflow.now() + (deadline.due - deadline.start) / report.time_scale
        self.s.closes_at = max(closes, self.s.closes_at) if self.s.closes_at else closes
        changed = [fail]
        merged: MergedCase | None = None
        if verdict.merges:
            merged = await self._open_merged_case(verdict)
            changed = [self._fail(no) for no in merged.members]
        elif verdict.join:
            merged = await self._join(verdict.join, fail)
        await self._record(changed, merged)
        await self._publish()

    def _internal(self, name: str, args: tuple[Any, ...]) -> Any | None:
        """An internal signal's payload; junk and forgeries are refused (kept as rejected, summarised)."""
        self._versions()
        payload, problem = signing.open_internal(args, workflow.info().workflow_id, sealed=bool(self._hardened))
        if problem is not None:
            self._reject(f"{name}: {problem} ({summarise(args).sha256})")
        return payload

    def _reject(self, why: str) -> None:
        workflow.logger.warning("product case %s: %s", self.key.case_id, why)
        self.rejected = [*self.rejected, why][-KEEP_REJECTED:]

    def _known(self, sample_no: str) -> bool:
        return sample_no in self.s.seen_samples or any(f.sample_no == sample_no for f in self.s.fails)

    def _fail(self, sample_no: str) -> CaseFail:
        return next(f for f in self.s.fails if f.sample_no == sample_no)

    # --- the merged case -----------------------------------------------------------------------

    async def _open_merged_case(self, verdict: Assessment) -> MergedCase:
        """Start ONE merged enforcement case from the first contributing fail's order, then tell each
        contributing sample's enforcement branch to follow it. ABANDON: the merged case is the product's
        enforcement proceeding and outlives this case's quiet window (and any continue-as-new)."""
        n = self.s.merges_before + len(self.s.merged) + 1
        wid = merged_case_id(self.key.case_id, n)
        members = [self._fail(no) for no in [*verdict.members, *verdict.followers]]
        first = self.s.reports[verdict.members[0]]
        evidence = {e.sha256: e for no in verdict.members for e in self.s.reports[no].evidence}
        inp = BranchInput(
            branch=Branch.ENFORCEMENT, order=first.order, sample_workflow_id=self.key.case_id,
            clock_origin=first.clock_origin, verdict="fail", failed_items=first.failed_items,
            report_no=first.report_no, evidence=list(evidence.values()), notices=first.notices,
            context={
                "reason": "merged_case",
                "merged_samples": [merged_sample(f) for f in members],
                "product_case": self.key.case_id,
            },
        )
        try:
            await workflow.start_child_workflow(
                EnforcementWorkflow.run, inp, id=wid, parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=TypedSearchAttributes([
                    *sa.identity_attributes(sa.MERGED_CASE), SearchAttributePair(sa.SAMPLE_NO, first.sample_no),
                    SearchAttributePair(sa.PRODUCT_CODE, self.key.product_code),
                    SearchAttributePair(sa.ENTERPRISE_CODE, self.key.credit_code),
                ]),
                static_summary=f"并案 merged enforcement case · {len(members)} samples from "
                               f"{'/'.join(verdict.regions)} · {self.key.summary}",
            )
        except WorkflowAlreadyStartedError:
            # Only after a lost record of an earlier run's numbering: the id is taken, follow that case.
            workflow.logger.warning("merged case %s already exists", wid)
        merged = MergedCase(
            workflow_id=wid, opened_on=min(f.failed_on for f in members),
            window_ends=max(f.window_ends for f in members if f.duplicate_of is None),
            members=[f.sample_no for f in members], regions=verdict.regions,
        )
        self.s.merged.append(merged)
        for f in members:
            f.merged_case = wid
            self.s.reports.pop(f.sample_no, None)  # a merged fail never opens another merge
        await self._tell_to_follow(wid, members)
        return merged

    async def _join(self, wid: str, fail: CaseFail) -> MergedCase | None:
        fail.merged_case = wid
        self.s.reports.pop(fail.sample_no, None)
        merged = next((m for m in self.s.merged if m.workflow_id == wid), None)
        if merged is not None:
            merged.members.append(fail.sample_no)
            if fail.duplicate_of is None and fail.region not in merged.regions:
                merged.regions = sorted([*merged.regions, fail.region])
        # The merged case lists the joining sample in its case file (a supplementary letter once its
        # transfer letter is out); the sample's own branch closes in the case's favour.
        if self._lean or workflow.patched(MERGED_JOINS):
            await self._add_to_merged_case(wid, fail)
        await self._tell_to_follow(wid, [fail])
        return merged

    async def _add_to_merged_case(self, wid: str, fail: CaseFail) -> None:
        try:
            await workflow.get_external_workflow_handle(wid).signal(
                EnforcementWorkflow.add_merged_sample, signing.seal(merged_sample(fail), wid),
            )
        except Exception:  # noqa: BLE001 - the merged case has closed: the join stays in this case's record
            workflow.logger.warning("%s joins %s, which has closed: recorded in the product case only",
                                    fail.sample_no, wid)

    async def _tell_to_follow(self, wid: str, fails: list[CaseFail]) -> None:
        async def tell(f: CaseFail) -> None:
            try:
                await workflow.get_external_workflow_handle(f.enforcement_workflow_id).signal(
                    EnforcementWorkflow.follow_merged_case,
                    signing.seal(wid, f.enforcement_workflow_id) if self._hardened else wid,
                )
                f.followed = True
            except Exception:  # noqa: BLE001 - the branch already closed (or never opened): nothing to stop
                workflow.logger.info("%s takes no follow_merged_case", f.enforcement_workflow_id)
                f.followed = False

        await asyncio.gather(*(tell(f) for f in fails))

    # --- ending, continuing, and what people see -----------------------------------------------

    async def _close(self) -> None:
        self.closed = True
        await self._record([], None, closed_at=workflow.now())
        await self._publish()
        await workflow.wait_condition(workflow.all_handlers_finished)

    def _history_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= \
            self.s.continue_after_events

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._compacted())

    def _compacted(self) -> ProductCaseState:
        """Only what a later fail can still meet: fails whose window reaches the latest fail date and the
        merged cases still open; the rest leave only their sample numbers and batches (for dedup)."""
        horizon = max((f.failed_on for f in self.s.fails), default=date.min)
        kept = [f for f in self.s.fails if f.window_ends >= horizon]
        dropped = [f for f in self.s.fails if f.window_ends < horizon]
        merged = [m for m in self.s.merged if m.window_ends >= horizon]
        batches = dict(self.s.seen_batches)
        for f in dropped:
            key = batch_key(f.batch)
            if key is not None and f.duplicate_of is None:
                batches.setdefault(key, f.sample_no)
        return self.s.model_copy(update={
            "fails": kept,
            "merged": merged,
            "merges_before": self.s.merges_before + len(self.s.merged) - len(merged),
            "reports": {no: r for no, r in self.s.reports.items() if any(f.sample_no == no for f in kept)},
            "pending": list(self.pending),
            "seen_samples": [*self.s.seen_samples, *(f.sample_no for f in dropped)][-KEEP_SEEN:],
            "seen_batches": batches,
        })

    async def _record(self, fails: list[CaseFail], merged: MergedCase | None,
                      closed_at: datetime | None = None) -> None:
        await call(
            ProductCaseActivities.product_case_record,
            CaseRecord(key=self.key, fails=fails, merged_case_workflow_id=merged.workflow_id if merged else None,
                       merged_at=workflow.now() if merged else None, closed_at=closed_at),
            summary=f"Record product case {self.key.case_id}"
                    + (f": merged case {merged.workflow_id}" if merged else "")
                    + (": closed" if closed_at else ""),
        )

    def _versions(self) -> None:
        """Which version this run is, asked once before anything else (see DecisionProcess._versions): a lean
        run has every earlier behaviour and asks no other patch."""
        if self._lean is None:
            self._monitored = workflow.patched(MONITORING)  # the newest first: it implies LEAN
            self._lean = True if self._monitored else workflow.patched(LEAN)
            self._hardened = True if self._lean else workflow.patched(HARDENED)

    async def _publish(self) -> None:
        publish(self.stage, self._details(), extra=[sa.PRODUCT_CODE.value_set(self.key.product_code),
                                                    sa.ENTERPRISE_CODE.value_set(self.key.credit_code)],
                identity=sa.identity_attributes(sa.PRODUCT_CASE), only_changed=bool(self._lean),
                monitored=bool(self._monitored))

    def _details(self) -> str:
        regions = sorted({f.region for f in self.s.fails})
        lines = [f"**{self.key.case_id}** · {self.key.product_name} {self.key.brand} {self.key.model} · "
                 f"stage **{self.stage}**",
                 f"- {len(self.s.fails)} fail(s) from {len(regions)} region(s): {', '.join(regions) or '—'}"]
        for m in self.s.merged:
            lines.append(f"- merged case {link(m.workflow_id)} ({m.stage}): {len(m.members)} samples from "
                         f"{'/'.join(m.regions)}; joins until **{m.window_ends}**")
        lines += [f"- fail of sample {f.sample_no} ({f.region}, failed on {f.failed_on}): "
                  f"{link(f.sample_workflow_id)}" for f in self.s.fails]
        dups = [f"{f.sample_no} = {f.duplicate_of}" for f in self.s.fails if f.duplicate_of]
        if dups:
            lines.append(f"- same batch sampled again (counted once): {', '.join(dups)}")
        if self.s.closes_at and not self.closed:
            lines.append(f"- waiting for fails of this product from other regions (Spotcheck's samples, no "
                         f"person) until {shanghai(self.s.closes_at)}; closes if none arrives")
        scales = {r.time_scale for r in self.s.reports.values()}
        return "\n".join([*lines, *clock_line(max(scales, default=1))])
