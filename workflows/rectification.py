"""RectificationWorkflow (`sample-<no>-rectification`): result handling of a final fail per Order 18 chapter 6
(《产品质量监督抽查管理暂行办法》, 市场监管总局令第18号, Art. 45-49), and 跟踪抽查 after it.

Runs with the patch ORDER18 (`_result_handling`, the whole flow in one place):
ordered (责令改正 within 60 days, Art. 46; the firm's report, optional) → re_inspection (复查 due 75 days from
the order, Art. 47; the sample provided free, Art. 49)
- pass: `follow_up_scheduled`, closed `accepted` after the follow-up sample is started (as before);
- fail: reported level by level to the provincial bureau → announcement (its 公告, with its date) →
  second_window (a timer: the second 复查 is refused until 60 days after the 公告) → second_re_inspection (by
  90 days after the 公告, Art. 48) → pass: closed `corrected_after_announcement`; fail: 责令停业，限期整顿 handed
  to enforcement → suspension (the order, with its 整顿 period) → suspended (a timer to the period's end) →
  final_re_inspection → pass: closed `corrected_after_suspension`; fail: a licence-revocation proposal
  (吊销营业执照) handed to the registration authority, closed `revocation_proposed`.

Runs before the patch (`_steps`, kept so their histories replay): ordered → (the firm's report, or one
extension decision, until the deadline) → review → closed `accepted`, `rejected` or `missed`.

The follow-up sample: after the rule pack's interval a new SampleWorkflow `sample-<no>-FU1` (task type
follow_up) is started as a child that is abandoned: a real sample of its own, which must outlive this branch.

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
    from activities.result_handling_records import ResultHandlingRecords
    from domain.branches import BRANCHES, Branch, BranchInput, BranchReport
    from domain.decisions import (
        Decision,
        DecisionKind,
        ProvincialAnnouncementData,
        RectificationExtensionData,
        ReInspectionData,
        SuspensionOrderData,
    )
    from domain.models import SampleOrder, TaskType
    from domain.records import (
        RectificationRow,
        RectificationTerms,
        ReInspectionRow,
        TermsRequest,
    )
    from domain.regions import authority_label
    from domain.rules import Deadline
    from domain.status import SampleStatus
    from domain.visibility import sample_attributes
    from domain.windows import CHINA, END_OF_DAY, extension_refusal, extension_window, too_late
    from workflows.branch import BranchProcess
    from workflows.desk import Wait
    from workflows.process import WaitInterrupted
    from workflows.sample import ORDER18, SampleWorkflow

RULE = "rectification"
REPORT = DecisionKind.RECTIFICATION_REPORT
EXTENSION = DecisionKind.RECTIFICATION_EXTENSION  # runs before ORDER18 only
REVIEW = DecisionKind.RECTIFICATION_REVIEW  # runs before ORDER18 only
RE_INSPECTION = DecisionKind.RE_INSPECTION
ANNOUNCEMENT = DecisionKind.PROVINCIAL_ANNOUNCEMENT
SUSPENSION = DecisionKind.SUSPENSION_ORDER
# The stages along any path (a continued run skips the steps before the one it resumes at).
ORDER = ["opened", "ordered", "review", "follow_up_scheduled", "closed"]
# ORDER18 (workflows/sample.py): runs from here on follow Order 18 chapter 6; older histories replay `_steps`.
STAGES = ["opened", "ordered", "re_inspection", "follow_up_scheduled", "announcement", "second_window",
          "second_re_inspection", "suspension", "suspended", "final_re_inspection", "closed"]
ORDER18_BASIS = "《产品质量监督抽查管理暂行办法》(市场监管总局令第18号)"
# Each 复查: its round (the record's key), its stage, its rule, and the article it rests on.
ROUNDS = {
    "first": ("re_inspection", "re_inspection", "第四十七条"),
    "second": ("second_re_inspection", "second_re_inspection", "第四十八条"),
    "after_suspension": ("final_re_inspection", "post_suspension_re_inspection", "第四十八条"),
}


@workflow.defn
class RectificationWorkflow(BranchProcess):
    SPEC = BRANCHES[Branch.RECTIFICATION]

    @workflow.init
    def __init__(self, inp: BranchInput) -> None:
        self._setup_branch(inp, extra_check=self._decision_rule_problem)
        self.terms: RectificationTerms | None = None
        self.row: RectificationRow | None = None
        self._ordered: Deadline | None = None  # the deadline first ordered: an extension counts from its start
        self._reminded: set[date] = set()  # due dates already reminded of (a new due date gets its own)
        self._order_notice = self._order_issued_on = ""
        self._follow_up: Deadline | None = None  # when the follow-up sample is started
        # Order 18 (ORDER18): which rules this run follows, and the periods it counts on.
        self._order18: bool | None = None  # decided in `run` (a continued run: as its first run decided)
        self._failed_on: date | None = None  # the first failed 复查, the earliest date of its 公告
        self._window: tuple[Deadline, Deadline] | None = None  # the second 复查: opens, closes
        self._suspension: Deadline | None = None  # the 整顿 period ordered
        if self._resume_state:  # a continued run
            self._restore(self._resume_state)

    @workflow.run
    async def run(self, inp: BranchInput) -> BranchReport:
        if self._order18 is None:  # a first run: this one's code, unless it replays a history from before
            self._order18 = self._patched(ORDER18)
        try:
            return await (self._result_handling() if self._order18 else self._steps())
        except WaitInterrupted:  # a wait cut short because the history grew long (`_continue_due`)
            return await self._continue_as_new(self._state())

    # --- Order 18 chapter 6: the whole flow ------------------------------------------------------

    async def _result_handling(self) -> BranchReport:
        """From the order to closed per Order 18 Art. 46-49; a continued run starts at the step it was in."""
        if self._resume_at == "follow_up_scheduled":
            return await self._follow_up_then_close()
        if self._runs("opened", STAGES):
            await self._order_correction()
        if self._runs("ordered", STAGES):
            await self._correction_period()
            await self._enter("re_inspection")
        if self._runs("re_inspection", STAGES):
            if (await self._re_inspect("first")).outcome == "pass":
                return await self._follow_up_then_close()
            await self._report_for_announcement()
        if self._runs("announcement", STAGES):
            await self._await_announcement()
        if self._runs("second_window", STAGES):
            await self._until_window_opens()
        if self._runs("second_re_inspection", STAGES):
            if (await self._re_inspect("second")).outcome == "pass":
                return await self._finish("corrected_after_announcement")
            await self._hand_over_suspension()
        if self._runs("suspension", STAGES):
            await self._await_suspension_order()
        if self._runs("suspended", STAGES):
            await self._until_suspension_ends()
        self._runs("final_re_inspection", STAGES)
        if (await self._re_inspect("after_suspension")).outcome == "pass":
            return await self._finish("corrected_after_suspension")
        await self._propose_licence_revocation()
        return await self._finish("revocation_proposed")

    async def _order_correction(self) -> None:
        """责令改正 (Art. 46: within 60 days of the order); the 复查 due (Art. 47: within 75 days); the order
        notice prints both from the rule pack; the row."""
        deadline = self._ordered = await self._deadline(RULE)
        re_inspection = await self._deadline("re_inspection", start=deadline.start, keep=False)
        self.data.update(due=str(deadline.due_date), re_inspection_due=str(re_inspection.due_date))
        self._order_notice = self._notice_no()
        self._order_issued_on = str(self.clock.now().date())  # as `_notice` dates the order notice
        await self._notice("rectification_order", "rectification-order", {
            "notice_no": self._order_notice, "days": deadline.length, "due_date": str(deadline.due_date),
            "basis": deadline.basis, "re_inspection_days": re_inspection.length,
            "re_inspection_due": str(re_inspection.due_date), "re_inspection_basis": re_inspection.basis,
            "window": await self._window_lengths(),
        })
        await self._enter("ordered")
        self.row = RectificationRow(workflow_id=workflow.info().workflow_id, sample_no=self.order.sample_no,
                                    ordered_at=self.clock.now(), due=deadline.due, updated_at=workflow.now(),
                                    re_inspection_due=re_inspection.due)
        await self._save()

    async def _correction_period(self) -> None:
        """The firm's report until the end of the correction period; none by then does not close the case:
        the 复查 follows all the same (Art. 47)."""
        assert self.row is not None and self._ordered is not None
        report = await self._await_or_expire(REPORT, RULE, deadline=self._ordered, interrupt=self._continue_due)
        if report is None:
            self._event("no_report", f"no rectification report by {self._ordered.due_date}: the 复查 follows "
                                     "(Order 18 Art. 47)")
            return
        self.row.report_at = self.clock.now()
        await self._save()

    async def _re_inspect(self, round_: str) -> Decision:
        """One 复查 (its wait, its notice, its row): `first` within 75 days of the order, `second` in the
        window after the 公告, `after_suspension` after the 整顿 period."""
        assert self.row is not None and self._ordered is not None
        stage, rule, article = ROUNDS[round_]
        if round_ == "first":
            decision = await self._await(RE_INSPECTION, rule, start=self._ordered.start, interrupt=self._continue_due)
        elif round_ == "second":
            assert self._window is not None
            decision = await self._await(RE_INSPECTION, rule, deadline=self._window[1], interrupt=self._continue_due)
        else:
            assert self._suspension is not None
            decision = await self._await(RE_INSPECTION, rule, start=self._suspension.due,
                                         interrupt=self._continue_due)
        due = next(d for d in reversed(self.deadlines) if d.rule_id == rule)
        data = ReInspectionData.model_validate(decision.data)
        await self._do(ResultHandlingRecords.record_re_inspection, ReInspectionRow(
            workflow_id=workflow.info().workflow_id, sample_no=self.order.sample_no, round=round_, due=due.due,
            decided_at=self.clock.now(), outcome=decision.outcome, reason=decision.reason,
            report_no=data.report_no, sample_provided_free=data.sample_provided_free,
            request_id=decision.request_id,
        ), summary=f"Record the {round_} 复查 of sample {self.order.sample_no}: {decision.outcome}")
        self.row.re_inspection_outcome = decision.outcome
        if decision.outcome == "fail" and round_ == "first":
            self._failed_on = self._today()
        follow_up = None
        if decision.outcome == "pass" and round_ == "first":
            follow_up = self._follow_up = await self._deadline("follow_up_sampling")
            self.data["follow_up_due"] = str(follow_up.due_date)
        await self._re_inspection_notice(round_, decision, article, follow_up)
        self._event("re_inspection", f"{round_} 复查: {decision.outcome}" + (
            f" ({decision.reason})" if decision.reason else ""))
        await self._save()
        return decision

    async def _re_inspection_notice(
        self, round_: str, decision: Decision, article: str, follow_up: Deadline | None
    ) -> None:
        """复查结论通知书: the outcome, and what follows, with the periods from the rule pack."""
        window = await self._window_lengths() if decision.outcome == "fail" and round_ == "first" else None
        await self._notice("re_inspection_result", f"re-inspection-{round_}", {
            "notice_no": self._notice_no(), "round": round_, "decision": decision.outcome,
            "reason": decision.reason or "", "basis": f"{ORDER18_BASIS}{article}",
            "order_notice_no": self._order_notice, "order_issued_on": self._order_issued_on,
            "follow_up_due": str(follow_up.due_date) if follow_up else None, "window": window,
        })

    async def _window_lengths(self) -> dict[str, Any]:
        """The second 复查 window's lengths from the rule pack, for a notice before its dates are known."""
        opens = await self._deadline("second_re_inspection_opens", keep=False)
        closes = await self._deadline("second_re_inspection", keep=False)
        return {"opens_days": opens.length, "closes_days": closes.length, "basis": closes.basis}

    async def _report_for_announcement(self) -> None:
        """A failed first 复查 is reported level by level to the provincial bureau (Art. 47 ¶2)."""
        province = authority_label(f"{self.order.region[:2]}0000")
        await self._recorded_hand_over(
            "provincial_bureau", "report_for_announcement", "report-for-announcement", province,
            f"逐级上报公告: {self._subject()} 经复查不合格", f"{ORDER18_BASIS}第四十七条",
            {"failed_on": str(self._failed_on)},
        )
        await self._enter("announcement")

    async def _await_announcement(self) -> None:
        """The provincial 公告 with its date; the second 复查 window runs from it (Art. 48)."""
        assert self.row is not None
        decision = await self._await(ANNOUNCEMENT, "provincial_announcement", interrupt=self._continue_due)
        data = ProvincialAnnouncementData.model_validate(decision.data)
        announced_on = data.announced_on or self._today()
        start = datetime.combine(announced_on, END_OF_DAY, tzinfo=CHINA)
        opens = await self._deadline("second_re_inspection_opens", start=start)
        closes = await self._deadline("second_re_inspection", start=start)
        self._window = (opens, closes)
        self.row.announced_on, self.row.announcement_no = announced_on, data.announcement_no
        self.row.second_window_opens, self.row.second_window_closes = opens.due, closes.due
        self.data.update(announced_on=str(announced_on), second_window=f"{opens.due_date}/{closes.due_date}")
        self._event("announcement", f"公告 of {announced_on}: the second 复查 is due after {opens.due_date} "
                                    f"and by {closes.due_date}")
        await self._save()
        await self._enter("second_window")

    async def _until_window_opens(self) -> None:
        """The window's opening is a timer; a 复查 decided before it is refused with the reason (Art. 48)."""
        assert self._window is not None
        opens, closes = self._window
        self.desk.closed[RE_INSPECTION] = (
            f"too early: the second 复查 is made no earlier than {opens.length} days after the 公告 "
            f"({ORDER18_BASIS}第四十八条); the window opens after {opens.due_date} and closes {closes.due_date}")
        self._show()
        await self._until(lambda: False, opens.due, f"The second 复查 window opens after {opens.due_date}",
                          interrupt=self._continue_due)
        await self._enter("second_re_inspection")

    async def _hand_over_suspension(self) -> None:
        """A failed second 复查: 责令停业，限期整顿 (Art. 48; 产品质量法 Art. 17), handed to enforcement."""
        await self._recorded_hand_over(
            "enforcement", "order_suspension", "suspension-order",
            authority_label(self.order.sampled_party.region) + "执法稽查部门",
            f"责令停业，限期整顿: {self._subject()} 公告后经复查仍不合格",
            f"{ORDER18_BASIS}第四十八条; 《中华人民共和国产品质量法》第十七条",
            {"announced_on": self.data.get("announced_on")},
        )
        await self._enter("suspension")

    async def _await_suspension_order(self) -> None:
        """The order made by enforcement, with its 整顿 period; the period's end (a deadline in history)."""
        assert self.row is not None
        decision = await self._await(SUSPENSION, "suspension_order", interrupt=self._continue_due)
        days = SuspensionOrderData.model_validate(decision.data).days
        self._suspension = await self._deadline("suspension_period", length=days)
        self.row.suspension_days, self.row.suspension_ends = days, self._suspension.due
        self.data.update(suspension_days=days, suspension_ends=str(self._suspension.due_date))
        self._event("suspension", f"责令停业，限期整顿 for {days} days, until {self._suspension.due_date}")
        await self._save()
        await self._enter("suspended")

    async def _until_suspension_ends(self) -> None:
        assert self._suspension is not None
        end = self._suspension
        self.desk.closed[RE_INSPECTION] = (f"too early: the 复查 after the 整顿 period is made once the period ends "
                                           f"on {end.due_date}")
        self._show()
        await self._until(lambda: False, end.due, f"The 整顿 period ends {end.due_date}", interrupt=self._continue_due)
        await self._enter("final_re_inspection")

    async def _propose_licence_revocation(self) -> None:
        """整顿期满后经复查仍不合格的，吊销营业执照 (Art. 48): a proposal to the registration authority."""
        party = self.order.sampled_party
        await self._recorded_hand_over(
            "registration", "propose_licence_revocation", "licence-revocation-proposal",
            authority_label(party.region) + "登记注册部门",
            f"吊销营业执照建议: {party.name} ({party.credit_code}) 整顿期满后经复查仍不合格",
            f"{ORDER18_BASIS}第四十八条; 《中华人民共和国产品质量法》第十七条",
            {"credit_code": party.credit_code, "suspension_days": self.data.get("suspension_days")},
        )

    async def _follow_up_then_close(self) -> BranchReport:
        if self._resume_at == "follow_up_scheduled":
            self._resume_at = None
            self._show()  # the Web UI's details are a run's own (the other steps publish at their waits)
        else:
            await self._enter("follow_up_scheduled")
            await self._save()
        await self._until_follow_up()
        await self._start_follow_up()
        return await self._finish("accepted")

    def _decision_rule_problem(self, decision: Decision) -> str | None:
        """The branch's own rules (pure: they run in the validator): a 公告 dated between the failed 复查 and
        today; before ORDER18, an extension decided in time and not too long."""
        if decision.kind is ANNOUNCEMENT and self._failed_on is not None:
            on = ProvincialAnnouncementData.model_validate(decision.data).announced_on
            if on is not None and not self._failed_on <= on <= self._today():
                return (f"data.announced_on: must lie between the failed 复查 on {self._failed_on} and today "
                        f"{self._today()}")
        return self._extension_problem(decision)

    def _subject(self) -> str:
        p = self.order.product
        return f"{self.order.sample_no} {p.name} {p.brand} {p.model} ({self.order.sampled_party.name})"

    # --- runs before ORDER18 --------------------------------------------------------------------

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
        assert self.row is not None and self._ordered is not None

        def dumped(d: Deadline | None) -> dict[str, Any] | None:
            return d.model_dump(mode="json") if d is not None else None

        return {
            "order18": self._order18, "failed_on": str(self._failed_on) if self._failed_on else None,
            "window": [dumped(d) for d in self._window] if self._window else None,
            "suspension": dumped(self._suspension),
            "terms": self.terms.model_dump(mode="json") if self.terms else None,
            "row": self.row.model_dump(mode="json"),
            "ordered": self._ordered.model_dump(mode="json"), "reminded": sorted(map(str, self._reminded)),
            "order_notice": self._order_notice, "order_issued_on": self._order_issued_on,
            "follow_up": self._follow_up.model_dump(mode="json") if self._follow_up else None,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self._order18 = bool(state.get("order18"))  # carries from before ORDER18 have no key: legacy
        self._failed_on = date.fromisoformat(state["failed_on"]) if state.get("failed_on") else None
        if state.get("window"):
            opens, closes = (Deadline.model_validate(d) for d in state["window"])
            self._window = (opens, closes)
        self._suspension = Deadline.model_validate(state["suspension"]) if state.get("suspension") else None
        self.terms = RectificationTerms.model_validate(state["terms"]) if state.get("terms") else None
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
            return self._arrived(REPORT, EXTENSION)

        while True:
            if self._arrived(EXTENSION):
                await self._decide_extension(self._take(EXTENSION))
                continue
            if self._arrived(REPORT):
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
                await self._flush()
                await workflow.wait_condition(lambda: self._arrived(REPORT) or self._continue_due())
                if not self._arrived(REPORT):
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
                SampleWorkflow.NAME,  # by name: its order arrives raw (validated by the workflow itself)
                order,
                result_type=SampleStatus,
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
