"""RectificationWorkflow (`sample-<no>-rectification`): 责令整改 and 跟踪抽查 after a final fail.

ordered → (the firm's report, or one extension decision, until the deadline) → review → closed.
- no report by the final due date: closed `missed`, an enforcement lead;
- rectification rejected on review: closed `rejected`, an enforcement lead;
- accepted: `follow_up_scheduled`, and after the rule pack's interval a new SampleWorkflow
  `sample-<no>-FU1` (task type follow_up) is started as a child that is abandoned: it is a real sample
  of its own, with its own lifetime, and must outlive this branch.

A long history continues as new at any wait (and, in hardened runs, during the follow-up interval): the new
run resumes at its stage (ORDER) on the deadlines it had, with the terms, the row, the reminders already sent
and the order notice carried (`_state`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.rectification_records import RectificationRecords, rectification_terms
    from domain.branches import BRANCHES, Branch, BranchInput, BranchReport
    from domain.decisions import Decision, DecisionKind, RectificationExtensionData
    from domain.models import SampleOrder, TaskType
    from domain.records import RectificationRow, RectificationTerms, TermsRequest
    from domain.rules import Deadline
    from domain.visibility import sample_attributes
    from domain.windows import CHINA, extension_refusal, extension_window, too_late
    from workflows.branch import BranchProcess
    from workflows.desk import Wait
    from workflows.process import WaitInterrupted
    from workflows.sample import SampleWorkflow

RULE = "rectification"
REPORT = DecisionKind.RECTIFICATION_REPORT
EXTENSION = DecisionKind.RECTIFICATION_EXTENSION
REVIEW = DecisionKind.RECTIFICATION_REVIEW
# The stages along any path (a continued run skips the steps before the one it resumes at).
ORDER = ["opened", "ordered", "review", "follow_up_scheduled", "closed"]


@workflow.defn
class RectificationWorkflow(BranchProcess):
    SPEC = BRANCHES[Branch.RECTIFICATION]

    @workflow.init
    def __init__(self, inp: BranchInput) -> None:
        self._setup_branch(inp, extra_check=self._extension_problem)
        self.terms: RectificationTerms | None = None
        self.row: RectificationRow | None = None
        self._ordered: Deadline | None = None  # the deadline first ordered: an extension counts from its start
        self._reminded: set[date] = set()  # due dates already reminded of (a new due date gets its own)
        self._order_notice = self._order_issued_on = ""
        self._follow_up: Deadline | None = None  # when the follow-up sample is started
        if self._resume_state:  # a continued run
            self._restore(self._resume_state)

    @workflow.run
    async def run(self, inp: BranchInput) -> BranchReport:
        try:
            return await self._steps()
        except WaitInterrupted:  # a wait cut short because the history grew long (`_continue_due`)
            return await self._continue_as_new(self._state())

    async def _steps(self) -> BranchReport:
        """From the order to closed; a continued run starts at the step it was in (`_runs`)."""
        if self._runs("opened", ORDER):
            await self._order()
        if self._runs("ordered", ORDER):
            report = await self._await_report()
            if report is None:
                return await self._finish("missed", f"rectification not reported by {self.data['due']}")
            assert self.row is not None
            self.row.report_at = self.clock.now()
            await self._enter("review")
            await self._save()
        if self._runs("review", ORDER):
            assert self.row is not None
            review = await self._await(REVIEW, "rectification_review", interrupt=self._continue_due)
            self.row.review_outcome, self.row.review_reason = review.outcome, review.reason
            if review.outcome == "rejected":
                await self._review_notice(review, follow_up_due=None)
                return await self._finish("rejected", f"rectification rejected on review: {review.reason}")
            follow_up = self._follow_up = await self._deadline("follow_up_sampling")
            await self._review_notice(review, follow_up_due=follow_up.due_date)
            self.data["follow_up_due"] = str(follow_up.due_date)
            await self._enter("follow_up_scheduled")
            await self._save()
        if self._resume_at == "follow_up_scheduled":
            self._show()  # the Web UI's details are a run's own (the other steps publish at their waits)
        self._runs("follow_up_scheduled", ORDER)
        await self._until_follow_up()
        await self._start_follow_up()
        return await self._finish("accepted")

    async def _order(self) -> None:
        """责令整改: the terms, the deadline, the order notice and the row."""
        self.terms = await self._do(rectification_terms, TermsRequest(start=self.clock.now()),
                                summary="Read the extension terms of the rectification rule")
        deadline = self._ordered = await self._deadline(RULE)
        self.data["due"] = str(deadline.due_date)
        self._order_notice = self._notice_no()
        self._order_issued_on = str(self.clock.now().date())  # as `_notice` dates the order notice
        await self._notice("rectification_order", "rectification-order", {
            "notice_no": self._order_notice, "days": deadline.length, "due_date": str(deadline.due_date),
            "extension_length": self.terms.extension_length,
            "extension_request_before": self.terms.extension_request_before,
        })
        await self._enter("ordered")
        self.row = RectificationRow(workflow_id=workflow.info().workflow_id, sample_no=self.order.sample_no,
                                    ordered_at=self.clock.now(), due=deadline.due, updated_at=workflow.now())
        await self._save()

    async def _until_follow_up(self) -> None:
        """The follow-up interval: in hardened runs a wait that a long history cuts short (older runs sleep,
        as their histories recorded)."""
        follow_up = self._follow_up
        assert follow_up is not None
        summary = (f"Follow-up sampling of {self.order.product.name} at {self.order.sampled_party.name} "
                   f"on {follow_up.due_date}")
        if self._hardened():
            await self._until(lambda: False, follow_up.due, summary, interrupt=self._continue_due)
        else:
            await workflow.sleep(self.clock.real_delay_until(follow_up.due), summary=summary)

    # --- continuing as new ----------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        """What the later steps need in the next run (JSON); the open waits travel in the process's carry."""
        assert self.terms is not None and self.row is not None and self._ordered is not None
        return {
            "terms": self.terms.model_dump(mode="json"), "row": self.row.model_dump(mode="json"),
            "ordered": self._ordered.model_dump(mode="json"), "reminded": sorted(map(str, self._reminded)),
            "order_notice": self._order_notice, "order_issued_on": self._order_issued_on,
            "follow_up": self._follow_up.model_dump(mode="json") if self._follow_up else None,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.terms = RectificationTerms.model_validate(state["terms"])
        self.row = RectificationRow.model_validate(state["row"])
        self._ordered = Deadline.model_validate(state["ordered"])
        self._reminded = {date.fromisoformat(d) for d in state["reminded"]}
        self._order_notice, self._order_issued_on = state["order_notice"], state["order_issued_on"]
        self._follow_up = Deadline.model_validate(state["follow_up"]) if state["follow_up"] else None

    # --- the report, or one extension, until the deadline --------------------------------------

    async def _await_report(self) -> Decision | None:
        """Both kinds stay open together: the report until the (possibly extended) due date, the extension
        until its last allowed day. Reminder before the due date; None when the due date passes. A continued
        run reopens the waits it had, on their deadlines (the extension's only if it was still open)."""
        assert self.terms is not None and self._ordered is not None
        if REPORT in self._resumed_waits:  # the waits it had, as the continued run opened them (or opens here)
            resumed = {k: self._resumed_waits.pop(k) for k in (REPORT, EXTENSION) if k in self._resumed_waits}
            for kind, carried in resumed.items():
                if kind not in self.desk.waits:
                    self._open(kind, carried)
            deadline, window = resumed[REPORT], resumed.get(EXTENSION)
        else:
            deadline = self._open(REPORT, self._ordered).deadline
            window = self._open(EXTENSION, self._extension_window(deadline)).deadline
        self._event("awaiting", f"awaiting the rectification report by {deadline.due_date}" + (
            f"; an extension may be decided until {window.due_date}" if window is not None else ""))
        await self._publish()

        def arrived() -> bool:
            return self.desk.arrived(REPORT, EXTENSION)

        while True:
            if self.desk.arrived(EXTENSION):
                await self._decide_extension(self._take(EXTENSION))
                continue
            if self.desk.arrived(REPORT):
                self.desk.shut(EXTENSION, "rectification_extension no longer decided: the rectification report "
                                      "has been received")
                return self._take(REPORT)
            wait = self.desk.waits[REPORT]
            at, moment, summary = self._next_moment(wait)
            # A decision accepted while its wait was open is taken even when the timer fired with it.
            if await self._until(arrived, at, summary, interrupt=self._continue_due) or arrived():
                continue
            if moment == "reminder":
                self._reminded.add(wait.deadline.due_date)
                await self._outbox("reminder", f"reminder-{REPORT.value}-{wait.deadline.due_date}", wait,
                                   f"提醒: 整改期限将于 {wait.deadline.due_date} 届满，请按期提交整改报告")
            elif moment == "extension_window":
                last = self.desk.waits[EXTENSION].deadline.due_date
                self.desk.shut(EXTENSION, self._too_late(wait.deadline))
                self._event("expired", f"the last day to decide an extension ({last}) passed")
                await self._publish()
            elif wait.deadline.on_expiry == "escalate":  # a rule pack may choose to chase instead of hand over
                if not wait.overdue:  # escalated once: a continued run resumes the overdue wait
                    await self._escalate(wait)
                await workflow.wait_condition(lambda: self.desk.arrived(REPORT) or self._continue_due())
                if not self.desk.arrived(REPORT):
                    raise WaitInterrupted(REPORT.value)
                return self._take(REPORT)
            else:
                self.desk.shut(REPORT, f"rectification_report no longer accepted: the rectification period ended "
                                   f"on {wait.deadline.due_date}")
                self._event("expired", f"no rectification report by {wait.deadline.due_date}")
                return None

    def _next_moment(self, wait: Wait) -> tuple[datetime, str, str]:
        d = wait.deadline
        moments = []
        if d.remind_at is not None and d.due_date not in self._reminded:
            moments.append((d.remind_at, "reminder", f"Reminder: rectification due {d.due_date}"))
        window = self.desk.waits.get(EXTENSION)
        if window is not None:
            moments.append((window.deadline.due, "extension_window",
                            f"Last day to decide a rectification extension: {window.deadline.due_date}"))
        moments.append((d.due, "due", f"{d.title} ends {d.due_date}"))
        return min(moments, key=lambda m: m[0])  # on a tie the due date comes last: it ends the wait

    async def _decide_extension(self, decision: Decision) -> None:
        assert self.row is not None and self._ordered is not None
        wait = self.desk.waits[REPORT]
        old = wait.deadline
        self.desk.shut(EXTENSION, f"one extension only: an extension was already {decision.outcome} on "
                              f"{self._today()}")
        self.row.extension_outcome, self.row.extension_decided_at = decision.outcome, self.clock.now()
        if decision.outcome == "granted":
            days = RectificationExtensionData.model_validate(decision.data).days or 0
            # Counted from the order's start, as one longer period: the roll-over to a working day applies once.
            new = await self._deadline(RULE, start=self._ordered.start, length=self._ordered.length + days)
            wait = self._open(REPORT, new)
            self.row.extended_days, self.row.due = days, new.due
            self.data.update(due=str(new.due_date), extended_days=days)
            self._event("extension", f"extension of {days} days granted: rectification now due {new.due_date} "
                        f"(was {old.due_date})")
            await self._outbox("extension", f"extension-{decision.request_id}", wait,
                               f"延期整改: 整改期限延长{days}日，至 {new.due_date} 届满")
        else:
            self._event("extension", f"extension refused ({decision.reason}): rectification still due "
                        f"{old.due_date}")
        await self._save()
        await self._publish()

    def _extension_window(self, deadline: Deadline) -> Deadline:
        """The extension's own wait: open until `extension_request_before` days before the due date."""
        assert self.terms is not None
        return extension_window(deadline, self.terms.extension_request_before)

    def _extension_problem(self, decision: Decision) -> str | None:
        """An extension decided too late, or longer than the rule allows (pure: runs in the validator)."""
        window = self.desk.waits.get(EXTENSION)
        if decision.kind is not EXTENSION or window is None or self.terms is None:
            return None
        # The window was cut from the report's deadline, which changes only when the window shuts.
        return extension_refusal(
            self.desk.waits[REPORT].deadline, today=self._today(), outcome=decision.outcome,
            days=RectificationExtensionData.model_validate(decision.data).days or 0,
            before_days=self.terms.extension_request_before, max_days=self.terms.extension_length,
            note=self.terms.extension_note,
        )

    def _too_late(self, due: Deadline) -> str:
        assert self.terms is not None
        return too_late(due, self.terms.extension_request_before)

    # --- after the review ----------------------------------------------------------------------

    async def _review_notice(self, review: Decision, follow_up_due: date | None) -> None:
        assert self.row is not None and self.row.report_at is not None
        await self._notice("rectification_review", "rectification-review", {
            "notice_no": self._notice_no(), "decision": review.outcome, "reason": review.reason or "",
            "report_on": str(self.row.report_at.astimezone(CHINA).date()),
            "order_notice_no": self._order_notice, "order_issued_on": self._order_issued_on,
            "follow_up_due": str(follow_up_due) if follow_up_due else None,
        })

    async def _start_follow_up(self) -> None:
        """跟踪抽查: the same product at the same party, as a new sample linked to this one."""
        assert self.row is not None
        original = self.order
        try:
            order = SampleOrder.model_validate({
                **original.model_dump(mode="json"),
                "sample_no": f"{original.sample_no}-FU1",
                "task_type": TaskType.FOLLOW_UP.value,
                "follows_sample_no": original.sample_no,
                "ordered_on": str(self._today()),
                # Whatever batch is made or sold now is sampled, not the failed one: the product-case merge
                # must not take the follow-up for the same batch sampled twice.
                "product": {**original.product.model_dump(mode="json"), "batch": None},
            })
        except ValidationError as err:  # e.g. a sample number already at the maximum length
            self._event("follow_up", f"the follow-up sample could not be ordered: {err.errors()[0]['msg']}")
            self.data["follow_up_error"] = str(err.errors()[0]["msg"])
            return
        try:
            await workflow.start_child_workflow(
                SampleWorkflow.run,
                order,
                id=order.workflow_id,
                task_queue=workflow.info().task_queue,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=sample_attributes(order),
                static_summary=order.summary,
            )
            self._event("follow_up", f"follow-up sample {order.sample_no} started ({order.workflow_id})")
        except WorkflowAlreadyStartedError:
            self._event("follow_up", f"follow-up sample {order.sample_no} was already started; linked")
        self.row.follow_up_sample_no = order.sample_no
        self.data["follow_up_sample_no"] = order.sample_no
        await self._save()

    async def _finish(self, outcome: str, enforcement_lead: str | None = None) -> BranchReport:
        assert self.row is not None
        self.row.closed_outcome = outcome
        await self._save()
        return await self._close(outcome, enforcement_lead=enforcement_lead)

    # --- small helpers -------------------------------------------------------------------------

    def _today(self) -> date:
        return self.clock.now().astimezone(CHINA).date()

    def _notice_no(self) -> str:
        # 整改 notices are numbered apart from the sample's own (…-01 is its inspection result notice).
        return f"{self.order.sample_no}-ZG{len(self.notices) + 1:02d}"

    async def _save(self) -> None:
        assert self.row is not None
        self.row.updated_at = workflow.now()
        await self._do(RectificationRecords.save, self.row,
                   summary=f"Record the rectification of sample {self.order.sample_no} at stage {self.stage}")
