"""SampleWorkflow: one sample from purchase or on-site sampling to its final verdict.

Stages: sampling → in_transit → received → testing → pass: retention → closed;
fail: result_notified → objection_window → (final) or objection_review → retest → final verdict.
Every wait is a signal-or-timer with the rule pack's deadline, a reminder before it and its expiry rule.
The lifecycle as a diagram, refusal, re-sampling, the evaluative path and post-handling: docs/design.md §2-3.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.policy import deployment_policy
    from activities.records import RecordActivities
    from domain.bounds import error_lines, within
    from domain.branches import Branch, BranchInput, SampleResult
    from domain.decisions import (
        Decision,
        DecisionKind,
        LabReportData,
        ResultDeliveryData,
        SamplingRecordData,
        delivery_date_problem,
        role_names,
    )
    from domain.jurisdiction import outside_area, same_level_bureau
    from domain.models import Channel, Party, SampleOrder, TaskType
    from domain.records import ProjectedState, SampleProjection, WaitOpening
    from domain.regions import authority_label
    from domain.rules import Deadline
    from domain.stages import STAGE_TITLES, Stage, Verdict
    from domain.status import Awaiting, BranchReport, SampleCarry, SampleStatus, TimelinePage
    from domain.visibility import SAMPLE, identity_attributes, order_attributes
    from domain.windows import CHINA
    from workflows.compact import compact
    from workflows.post_handling import Branches
    from workflows.process import DecisionProcess, WaitInterrupted
    from workflows.registers import register, report_to_product_case
    from workflows.visibility import publish, sample_details

CHINA_NOON = time(12, 0)
POLICY_TIMEOUT = timedelta(seconds=10)
RESAMPLE_ROUNDS_PER_RUN = 3
# The order of the stages along any path (a continued run skips the steps before the one it resumes at).
LIFECYCLE = [Stage.SAMPLING, Stage.IN_TRANSIT, Stage.RECEIVED, Stage.TESTING, Stage.RESULT_NOTIFIED,
             Stage.OBJECTION_WINDOW, Stage.OBJECTION_REVIEW, Stage.RETEST, Stage.RETENTION, Stage.POST_HANDLING,
             Stage.DISPOSAL, Stage.CLOSED]
PRODUCER = DecisionKind.PRODUCER_CONFIRMATION  # local policy: a lab rejecting a sample again and again (≈60 events a round)



# Released histories end a final fail in `post_handling`; newer runs go on into the branches.
POST_HANDLING_PATCH = "post-handling-branches"
# Released histories keep a passed sample for the whole period and only then await the return decision;
# newer runs await the return from the verdict, due when the period ends (the basis says "within").
RETURN_WITHIN_RETENTION = "return-within-retention"
# Runs from here on tell the producer's bureau of a fail outside the organising bureau's area (Order 18
# Art. 44 ¶2); the same patch id marks the rectification branch's Order 18 result handling.
ORDER18 = "order18-result-handling"


@workflow.defn(name="SampleWorkflow")
class SampleWorkflow(DecisionProcess):
    NAME = "SampleWorkflow"  # the workflow type integrators start (docs/contract.md)

    @workflow.init
    def __init__(self, order: RawValue, carried: Any = None) -> None:
        # The order arrives raw and is decoded and validated here: an order that does not decode or
        # validate fails the start at once (see `_inputs`) instead of failing its first task forever.
        valid, carried_state = _inputs(order, carried)
        # The SDK and the run coroutine keep the start's decoded arguments for the whole run; the sample keeps
        # them once, as models: the raw copies are emptied (an order is ~70 objects per cached sample).
        for raw in (order, carried):
            if isinstance(raw, dict):
                raw.clear()
        carried = carried_state
        self._setup(valid, carried.clock_origin if carried else None, extra_check=self._delivery_problem)
        self.sampled_on: date | None = None  # the China date the sampling record was taken
        self.branches = Branches(self, self._branch_input, self._seal)
        self.report_no: str | None = None
        self.stage = Stage.SAMPLING
        self.verdict = Verdict.PENDING
        self.failed_items: list[dict[str, Any]] = []
        self.producer_answer: str | None = None
        self._producer_answer: asyncio.Task[None] | None = None
        self._window_start: datetime | None = None  # the objection window runs from the delivery
        self._projected: ProjectedState | None = None  # what the `samples` record last got (lean runs)
        self._publishing = 0  # publishes under way (their local activity in flight)
        self._policy_unread = False  # a new run whose first wait reads the deployment policy
        if carried is not None:
            self._restore(carried)

    # --- the lifecycle -------------------------------------------------------------------------

    @workflow.run
    async def run(self, order: RawValue, carried: Any = None) -> SampleStatus:
        """`order`: a SampleOrder; `carried`: the state a previous run of this sample continued with."""
        if carried is None:
            # Recorded in this run's history: replay never depends on the settings of today's workers. Lean
            # steps read it with the first wait's deadline (`_wait_deadline`), in the same local activity.
            self._policy_unread = self._lean_steps()  # lean steps imply the hardened intake
            if self._hardened() and not self._policy_unread:
                self._adopt_policy(await workflow.execute_local_activity(
                    deployment_policy, start_to_close_timeout=POLICY_TIMEOUT,
                    summary="Read the deployment's policy (signatures, clock compression)",
                ))
            self._event("started", f"sample {self.order.sample_no} started: {self.order.summary}")
            await self._enter(Stage.SAMPLING)
        try:
            return await self._lifecycle()
        except WaitInterrupted:
            # A wait was cut short because the history grew long (`_continue_due`): go on in a new run.
            return await self._continue_as_new("the history grew long")

    async def _lifecycle(self) -> SampleStatus:
        """The sample from sampling to closed. A continued run starts where the previous one stopped: each
        step runs unless the run resumes at a later stage (`_runs`)."""
        order = self.order
        if self._resume_at in (Stage.RETENTION, Stage.DISPOSAL):  # continued while retained, or at disposal
            return await self._resume_at_disposal()
        if not self._resuming_after(Stage.IN_TRANSIT, LIFECYCLE) and not await self._sample_until_received():
            return await self._finish()
        if self._runs(Stage.TESTING, LIFECYCLE):
            report = await self._await(DecisionKind.LAB_REPORT, "lab_testing", length=order.testing_working_days,
                                       interrupt=self._continue_due)
            if report.outcome == "pass":
                await self._set_verdict(Verdict.PASS, "the lab reports a pass")
                await self._notify_result(report, "pass")
                await self._retain_and_dispose()
                return await self._finish()
            await self._record_failed_items(report)
            if order.task_type is TaskType.EVALUATIVE:
                # 风险速筛 keeps no backup sample: no objection or re-test; a risk notice instead.
                await self._set_verdict(Verdict.FAIL, "evaluative sampling: risk verdict is final (no re-test path)")
                await self._notify_result(report, "fail")
                await self._post_handling("evaluative_risk")
                return await self._finish()
            await self._set_verdict(Verdict.FAIL_PROVISIONAL, "the lab reports a fail; open to objection")
            producer_deadline = await self._deadline("producer_confirmation") if self._producer_may_deny() else None
            await self._notify_result(report, "fail",
                                      producer_days=producer_deadline.length if producer_deadline else None)
            if producer_deadline:
                # The labelled producer answers in parallel with the seller's objection window.
                self._producer_answer = asyncio.create_task(self._producer_confirmation(producer_deadline))
        elif PRODUCER in self._resumed_waits:  # continued while the labelled producer had not answered
            deadline = self._resumed_waits.pop(PRODUCER)
            self._producer_answer = asyncio.create_task(self._producer_confirmation(deadline))
        final = await self._objection_path()
        if final == "pass":
            await self._retain_and_dispose()
        else:
            await self._post_handling("final_fail")
        return await self._finish()

    async def _sample_until_received(self) -> bool:
        """Sampling and transport; a sample the lab rejects is sampled again. False when refused."""
        while True:
            if self._runs(Stage.SAMPLING, LIFECYCLE):
                record = await self._await(DecisionKind.SAMPLING_RECORD, "sampling_record", interrupt=self._continue_due)
                if record.outcome == "refused":
                    await self._set_verdict(Verdict.REFUSED, f"the party refused to be sampled: {record.reason}")
                    await self._post_handling("refusal", refusal_reason=record.reason)
                    return False
                self.sampled_on = self.clock.now().astimezone(CHINA).date()
                leads = SamplingRecordData.model_validate(record.data).leads
                if leads and self._patched(POST_HANDLING_PATCH):
                    await self.branches.start_leads(leads)
                await self._enter(Stage.IN_TRANSIT)
            self._runs(Stage.IN_TRANSIT, LIFECYCLE)
            receipt = await self._await(DecisionKind.SAMPLE_RECEIPT, "sample_transit", interrupt=self._continue_due)
            if receipt.outcome == "accepted":
                await self._enter(Stage.RECEIVED)
                await self._enter(Stage.TESTING)
                return True
            self._event("resample", f"the lab rejected the sample ({receipt.reason}); it is sampled again")
            await self._enter(Stage.SAMPLING)
            rounds = sum(1 for e in self.timeline if e.event == "resample")
            if self._hardened() and not self.branches.running() and rounds >= RESAMPLE_ROUNDS_PER_RUN * self.runs:
                await self._continue_as_new(f"{rounds} rounds of sampling")

    async def _objection_path(self) -> str:
        """result_notified → objection_window → objection_review → retest. Returns the final verdict."""
        if self._runs(Stage.RESULT_NOTIFIED, LIFECYCLE):
            await self._enter(Stage.RESULT_NOTIFIED)
            delivery = await self._await(DecisionKind.RESULT_DELIVERY, "result_notice", interrupt=self._continue_due)
            delivered = ResultDeliveryData.model_validate(delivery.data).delivered_on
            self._window_start = (
                datetime.combine(delivered, CHINA_NOON, tzinfo=self.clock.now().tzinfo) if delivered else None
            )
            await self._enter(Stage.OBJECTION_WINDOW)
        if self._runs(Stage.OBJECTION_WINDOW, LIFECYCLE):
            objection = await self._await_or_expire(DecisionKind.OBJECTION, "objection_window",
                                                    start=self._window_start, interrupt=self._continue_due)
            if objection is None or objection.outcome == "waived":
                why = "no objection within the window" if objection is None else "the party waived its objection"
                await self._set_verdict(Verdict.FAIL, f"{why}: the fail is final")
                return "fail"
            await self._enter(Stage.OBJECTION_REVIEW)
        if self._runs(Stage.OBJECTION_REVIEW, LIFECYCLE):
            review = await self._await(DecisionKind.OBJECTION_REVIEW, "objection_acceptance",
                                       interrupt=self._continue_due)
            await self._notice(
                "objection_decision",
                f"objection-decision-{review.request_id}",
                {"decision": review.outcome, "reason": review.reason or "", "retest_agency": None},
            )
            if review.outcome == "rejected":
                await self._set_verdict(Verdict.FAIL, f"objection rejected ({review.reason}): the fail is final")
                return "fail"
            await self._enter(Stage.RETEST)
        self._runs(Stage.RETEST, LIFECYCLE)
        retest = await self._await(
            DecisionKind.RETEST_REPORT, "retest", length=self.order.testing_working_days, interrupt=self._continue_due
        )
        if retest.outcome == "pass":
            self.failed_items = []
            await self._set_verdict(Verdict.PASS, "the re-test passes: the first result is overturned")
            return "pass"
        await self._record_failed_items(retest)
        await self._set_verdict(Verdict.FAIL, "the re-test confirms the fail: final")
        return "fail"

    async def _post_handling(self, reason: str, refusal_reason: str | None = None) -> None:
        """Every consequence that applies, each a child workflow; the sample closes when the awaited
        branches have closed and the failed sample is disposed of (see workflows/post_handling.py)."""
        await self._enter(Stage.POST_HANDLING)
        if not self._patched(POST_HANDLING_PATCH):
            return  # histories recorded before the branches existed ended here
        order, branches = self.order, self.branches
        if reason == "refusal":
            # 拒检: an enforcement lead with the sampling record's evidence; there is no sample to dispose of.
            await branches.start(Branch.ENFORCEMENT, {"reason": "refusal", "detail": refusal_reason})
        else:
            await register("bulletin", self._result_facts(), self._do)
        if reason == "evaluative_risk":
            await register("linked_sampling", self._result_facts(), self._do)
            await self._hand_over(
                "notification", "risk_notice", "risk-notice-regulator", authority_label(order.sampled_party.region),
                f"风险提示: {order.product.name} {order.product.brand} {order.product.model}",
                {"sample_no": order.sample_no, "failed_items": self.failed_items},
            )
        if reason == "final_fail":
            await register("enterprise_fail", self._result_facts(), self._do)
            if self._patched(ORDER18):
                await self._notify_producer_bureau()
            await branches.start(Branch.RECTIFICATION)
            await branches.start(Branch.CREDIT)
            await branches.start(Branch.ENFORCEMENT, {"reason": "final_fail"})
            # After the enforcement branch exists: a merge tells it to follow the merged case.
            await report_to_product_case(self._result_facts(), self._do)
            await branches.start(Branch.RECALL)
            if order.product.ccc_certificate:
                await branches.start(Branch.CERTIFICATION)
            if order.product.production_licence:
                await register("post_licence", self._result_facts(), self._do)
            if order.purchased:
                await branches.start(Branch.PLATFORM)
        await self._flush()
        await branches.follow()
        if reason != "refusal":
            await self._enter(Stage.DISPOSAL)
            await self._dispose_of_failed_sample()
        await self._enter(Stage.CLOSED)

    def _producer(self) -> Party | None:
        """Who made the failed product: the labelled producer unless it denied the product, else the sampled
        party when sampled where it produces; None when not known."""
        if self.order.labelled_producer is not None and self.producer_answer != "denied":
            return self.order.labelled_producer
        return self.order.sampled_party if self.order.channel is Channel.OFFLINE_PRODUCTION else None

    async def _notify_producer_bureau(self) -> None:
        """通报 (Order 18 Art. 44 ¶2): a failed product made outside the organising bureau's area is told to
        the producer's local bureau at the same level, as a hand-over with its own record, once."""
        producer = self._producer()
        if producer is None or not outside_area(self.order.region, producer.region):
            return
        bureau = same_level_bureau(self.order.region, producer.region)
        p = self.order.product
        await self._recorded_hand_over(
            "notification", "notify_producer_bureau", "producer-bureau-notification", authority_label(bureau),
            f"不合格产品通报: {p.name} {p.brand} {p.model}，生产者 {producer.name}",
            "《产品质量监督抽查管理暂行办法》(市场监管总局令第18号) 第四十四条第二款",
            {"producer": producer.model_dump(mode="json"), "organising_region": self.order.region,
             "producer_bureau_region": bureau, "report_no": self.report_no, "failed_items": self.failed_items},
        )

    async def _dispose_of_failed_sample(self) -> None:
        disposal = await self._await(DecisionKind.DISPOSAL, "failed_sample_disposal", interrupt=self._continue_due)
        self._event("disposal", f"failed sample {disposal.outcome}")

    async def _retain_and_dispose(self) -> None:
        """A passed sample is returned (or, when bought, disposed of) within the retention period: one
        decision awaited from the final verdict, due when the period ends. Evaluative samples keep no backup,
        so they go straight to the disposal decision."""
        retained = next((d for d in self.deadlines if d.rule_id == "sample_retention"), None)  # when continued
        if retained is None:
            await self._enter(Stage.RETENTION)
        evaluative = self.order.task_type is TaskType.EVALUATIVE
        if not evaluative and self._patched(RETURN_WITHIN_RETENTION):
            # A run continued at this wait carries the deadline it waited on (`_resumed_waits`).
            carried = self._resumed_waits.pop(DecisionKind.DISPOSAL, None) or retained
            disposal = await self._await(DecisionKind.DISPOSAL, "sample_retention", deadline=carried,
                                         interrupt=self._continue_due)
        else:
            if not evaluative and DecisionKind.DISPOSAL not in self._resumed_waits:
                await self._sit_out_retention(retained)  # released histories: keep first, then decide
            disposal = await self._await(DecisionKind.DISPOSAL, "disposal_decision", interrupt=self._continue_due)
        self._event("disposal", f"sample {disposal.outcome}")
        await self._flush()
        await self.branches.follow()  # leads found while buying close before the sample does
        await self._enter(Stage.CLOSED)

    async def _sit_out_retention(self, retained: Deadline | None) -> None:
        """How runs before RETURN_WITHIN_RETENTION read the period: a wait until it ended."""
        retention = retained or await self._deadline("sample_retention")
        if retained is None:
            self._event("retention", f"the sample is kept until {retention.due_date} ({retention.basis})")
        summary = f"Retention period of sample {self.order.sample_no} ends {retention.due_date}"
        if self._hardened():
            await self._until(lambda: False, retention.due, summary, interrupt=self._continue_due)
        else:
            await workflow.sleep(self.clock.real_delay_until(retention.due), summary=summary)

    # --- continuing as new: a bounded history however long the sample runs or however much is sent ---

    def _continue_due(self) -> bool:
        """A wait's interrupt: the history is long and nothing binds the sample to this run (no awaited
        branch running: their parent-close policy is tied to the run)."""
        return self._history_long() and not self.branches.running()

    async def _resume_at_disposal(self) -> SampleStatus:
        """A run continued while the passed sample was retained, or at the failed sample's disposal."""
        stage, self._resume_at = self._resume_at, None
        if stage is Stage.RETENTION:
            await self._retain_and_dispose()
        else:
            await self._dispose_of_failed_sample()
            await self._enter(Stage.CLOSED)
        return await self._finish()

    async def _continue_as_new(self, why: str) -> SampleStatus:
        """Go on in a new run of the same workflow id with everything the sample knows (SampleCarry)."""
        if self._producer_answer is not None and not self._producer_answer.done() and PRODUCER not in self.desk.waits:
            await self._producer_answer  # past its wait, recording the answer: let it finish and carry it
        self._event("continued", f"continued as new (run {self.runs + 1}): {why}")
        await self._flush()
        await self._settle()
        if self._lean():
            # The producer's parallel wait may be publishing (a local activity): let it reach its timer, so
            # continue-as-new is the run's last command.
            await workflow.wait_condition(lambda: self._publishing == 0)
            if self._audit_with_wait():
                await self._settle()  # the rows of decisions that came meanwhile
        workflow.continue_as_new(args=[self.order, self._carry()])

    def _carry(self) -> SampleCarry:
        return SampleCarry(
            **self._carried(), branches=list(self.branches.reports.values()), seq=self._seq,
            verdict=self.verdict.value, report_no=self.report_no, failed_items=self.failed_items,
            producer_answer=self.producer_answer, sampled_on=self.sampled_on, window_start=self._window_start,
        )

    def _restore(self, c: SampleCarry) -> None:
        self._restore_process(c)
        self.stage, self._resume_at, self.verdict = Stage(c.stage), Stage(c.stage), Verdict(c.verdict)
        self.branches.reports = {b.workflow_id: b for b in c.branches}
        self._seq = c.seq
        self.report_no, self.failed_items, self.producer_answer = c.report_no, c.failed_items, c.producer_answer
        self.sampled_on, self._window_start = c.sampled_on, c.window_start

    def _delivery_problem(self, decision: Decision) -> str | None:
        """The result notice cannot have reached the party before the sample was taken, nor after today."""
        if decision.kind is not DecisionKind.RESULT_DELIVERY or self.sampled_on is None or not self._hardened():
            return None
        delivered = ResultDeliveryData.model_validate(decision.data).delivered_on
        today = self.clock.now().astimezone(CHINA).date()
        return delivery_date_problem(delivered, self.sampled_on, today) if delivered else None

    def _producer_may_deny(self) -> bool:
        producer = self.order.labelled_producer
        return producer is not None and producer.credit_code != self.order.sampled_party.credit_code

    async def _producer_confirmation(self, deadline: Deadline) -> None:
        """标称生产者确认: silence within the rule's period counts as confirmation."""
        answer = await self._await(DecisionKind.PRODUCER_CONFIRMATION, deadline.rule_id, deadline=deadline)
        self.producer_answer = answer.outcome
        if answer.outcome == "denied":
            self._event("producer_denied", f"the labelled producer denies making the product: {answer.reason}; "
                        "the product's origin is to be verified with the seller")
        await self._publish()

    async def _finish(self) -> SampleStatus:
        if self._producer_answer is not None:
            await self._producer_answer
        await self._flush()
        # Handlers and audit rows may still be under way: let them finish before completing.
        await self._settle()
        return self._status()

    # --- signals and queries ------------------------------------------------------------------

    @workflow.signal(name="branch_update")
    def branch_update(self, *args: Any) -> None:
        """A branch's stage, awaited decisions and deadlines changed (see workflows/post_handling.py).
        Internal: sealed by the branch; anything else is refused and audited."""
        payload = self._internal("branch_update", args)
        try:
            report = BranchReport.model_validate(payload) if payload is not None else None
        except ValueError:
            report = None
        if report is not None:
            self.branches.update(report)

    @workflow.query(name="status")
    def status(self, *args: Any) -> SampleStatus:
        """Stage, verdict, waits, branches, deadlines, notices and a page of the timeline (the newest by
        default; `{"timeline_from": n, "timeline_limit": m}` for another)."""
        return self._status(TimelinePage.of(args))

    def _status(self, page: TimelinePage | None = None) -> SampleStatus:
        start, events = (page or TimelinePage()).cut(self.timeline)
        return SampleStatus(
            sample_no=self.order.sample_no,
            workflow_id=workflow.info().workflow_id,
            summary=self.order.summary,
            stage=self.stage.value,
            verdict=self.verdict.value,
            time_scale=self.order.time_scale,
            awaiting=self.desk.awaiting(),
            branches=list(self.branches.reports.values()),
            deadlines=list(self.deadlines),
            timeline=events,
            timeline_from=start,
            timeline_total=len(self.timeline),
            failed_items=list(self.failed_items),
            notices=list(self.notices),
            closed_waits={k.value: why for k, why in self.desk.closed.items()},
            producer_answer=self.producer_answer,
            needs_operator=self.needs_operator,
            decisions_dropped=self.throttle.dropped,
        )

    # --- what branches and registers are told --------------------------------------------------

    def _result_facts(self) -> SampleResult:
        return SampleResult(
            policy=self.policy if self._hardened() else None,
            order=self.order, sample_workflow_id=workflow.info().workflow_id, clock_origin=self.clock.origin,
            verdict=self.verdict.value, failed_items=self.failed_items, report_no=self.report_no,
            evidence=self.evidence,
            notices=[{k: n.get(k) for k in ("template", "title", "sha256")} for n in self.notices],
        )

    def _branch_input(self, branch: Branch, context: dict[str, Any]) -> BranchInput:
        return BranchInput(**dict(self._result_facts()), branch=branch, context=context)

    # --- state changes and what people see -----------------------------------------------------

    async def _enter(self, stage: Stage) -> None:
        self.stage = stage
        self._event("stage", f"stage {stage.value}: {STAGE_TITLES[stage]}")
        await self._changed()

    async def _set_verdict(self, verdict: Verdict, why: str) -> None:
        self.verdict = verdict
        self._event("verdict", f"verdict {verdict.value}: {why}")
        await self._changed()

    def _awaiting(self) -> list[Awaiting]:
        # The sample shows what its open branches wait for too: one filter finds every overdue step.
        # …except once closed: the credit listing outlives the sample and answers for itself.
        own = self.desk.awaiting()
        return own + (self.branches.open_waits() if self.stage is not Stage.CLOSED else [])

    def _show(self) -> None:
        branches = list(self.branches.reports.values())
        details = sample_details(self.order, self.stage, self.verdict, self.desk.awaiting(), branches,
                                 self.needs_operator)
        awaiting = self._awaiting()
        lean = self._lean()
        # Lean runs also set the order's attributes a starter left out (changed ones only: a sample started
        # by SpotcheckClient has them all, and its upserts stay as they were).
        own = [p.key.value_set(p.value) for p in order_attributes(self.order)] if lean else []
        publish(self.stage.value, details, awaiting=awaiting, verdict=self.verdict.value,
                needs_operator=self._operator_attribute(), estimated=self._estimated_attribute(awaiting),
                extra=own, identity=identity_attributes(SAMPLE, self.order.region), only_changed=lean,
                monitored=self._monitored())

    async def _publish(self) -> None:
        """Search attributes, current details and the `samples` record follow every change (in lean runs:
        the record only when what it holds changed)."""
        self._unpublished = False
        self._publishing += 1
        try:
            await self._show_and_project()
        finally:
            self._publishing -= 1

    async def _show_and_project(self) -> None:
        self._show()
        projected = ProjectedState.of(self.stage.value, self.verdict.value, self._awaiting())
        lean = self._lean()
        if lean and projected == self._projected:
            return
        self._projected = compact(projected)
        await self._do(
            RecordActivities.project_sample,
            self._next_projection().showing(projected),
            summary=f"Bookkeeping: the samples record of {self.order.sample_no} at stage {self.stage.value}",
            local=lean,
        )

    def _next_projection(self) -> SampleProjection:
        """The next `samples` record, showing no wait yet."""
        self._seq += 1
        return SampleProjection(
            sample_no=self.order.sample_no,
            workflow_id=workflow.info().workflow_id,
            seq=self._seq,
            stage=self.stage.value,
            verdict=self.verdict.value,
            # Personal data travels once: later projections name what changed, not the whole order.
            order=self.order.model_dump(mode="json") if self._seq == 1 or not self._hardened() else None,
            updated_at=workflow.now(),
        )

    async def _wait_deadline(
        self, kind: DecisionKind, rule_id: str, *, start: datetime | None, length: int | None
    ) -> Deadline:
        """Newer runs compute the wait's deadline and write the record showing the wait in one local activity
        (the publish that follows the wait's opening then finds the record up to date)."""
        if not self._lean_steps():
            return await super()._wait_deadline(kind, rule_id, start=start, length=length)
        opening = WaitOpening(
            deadline=self._deadline_request(rule_id, start=start, length=length),
            kind=kind.value, roles=role_names(kind),
            others=[a for a in self._awaiting() if a.kind != kind.value],
            clock_origin=self.clock.origin, time_scale=self.clock.scale,
            projection=self._next_projection(), read_policy=self._policy_unread,
        )
        # The decisions this task took (the one that set off this step among them) have their audit rows
        # written in the same local activity (AUDIT_WITH_WAIT).
        opened = await self._audited_with_wait(
            self._take_unaudited(), RecordActivities.open_wait,
            lambda audits: opening.model_copy(update={"audits": audits}) if audits else opening,
            summary=f"Compute the deadline of rule {rule_id} and write the samples record of "
                    f"{self.order.sample_no} awaiting {kind.value}",
        )
        if opened.policy is not None:
            self._policy_unread = False
            self._adopt_policy(opened.policy)  # the clock it sets is the one the record's due time used
        self.deadlines.append(opened.deadline)
        self._projected = compact(opened.projected)
        return opened.deadline

    # --- activities ----------------------------------------------------------------------------

    async def _notify_result(self, report: Decision, verdict: str, producer_days: int | None = None) -> None:
        data = LabReportData.model_validate(report.data)
        self.report_no = data.report_no
        # The notice states the objection period in force (the rule pack's, not a constant).
        window = None
        if verdict == "fail" and self.order.task_type is not TaskType.EVALUATIVE:
            window = await self._deadline("objection_window", keep=False)
        await self._notice(
            "inspection_result",
            f"inspection-result-{report.request_id}",
            {"report": data.model_dump(mode="json"), "verdict": verdict, "producer_days": producer_days,
             "objection_days": window.length if window else None, "evaluative": self.order.task_type is TaskType.EVALUATIVE},
        )

    async def _record_failed_items(self, report: Decision) -> None:
        data = LabReportData.model_validate(report.data)
        self.report_no = data.report_no
        self.failed_items = [i.model_dump(mode="json") for i in data.failed_items]


def _inputs(order: Any, carried: Any) -> tuple[SampleOrder, SampleCarry | None]:
    """The start's arguments, validated. Anyone may start a sample (the client, another SDK, the `temporal`
    CLI: docs/contract.md), so an order that does not decode or validate fails the workflow at once with a
    non-retryable `InvalidOrder` naming each bad field (never the input): raised from `__init__`, a failure
    error fails the run rather than its workflow task, which would otherwise be retried for ever."""
    try:
        if isinstance(order, RawValue):  # as the SDK hands it when the arguments match the signature
            order = workflow.payload_converter().from_payload(order.payload)
        if isinstance(order, RawValue):  # what the data converter hands over when it cannot read a payload
            raise ApplicationError("order: the payload does not decode (an encoding Spotcheck does not read, "
                                   "or not JSON)", type="InvalidOrder", non_retryable=True)
        if not isinstance(order, SampleOrder | dict):
            raise ApplicationError(f"order: must be a JSON object, not {type(order).__name__}",
                                   type="InvalidOrder", non_retryable=True)
        order = order if isinstance(order, SampleOrder) else SampleOrder.model_validate(order)
        if workflow.info().workflow_id != order.workflow_id:  # one workflow per real sample, found by its number
            raise ApplicationError(f"workflow id: a sample's workflow id must be sample-<sample_no> "
                                   f"({order.workflow_id})", type="InvalidOrder", non_retryable=True)
        return order, None if carried is None else SampleCarry.model_validate(carried)
    except ValidationError as err:
        what = "carried state" if isinstance(order, SampleOrder) else "order"
        raise ApplicationError(f"{what} refused: " + "; ".join(within(error_lines(err))),
                               type="InvalidOrder", non_retryable=True) from None
    except ApplicationError:
        raise
    except Exception as err:  # a payload no converter can read (an unknown encoding, not JSON)
        raise ApplicationError(f"order: the payload does not decode ({type(err).__name__})",
                               type="InvalidOrder", non_retryable=True) from None
