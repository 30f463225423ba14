"""SampleWorkflow: one sample from purchase or on-site sampling to its final verdict.

Stages: sampling → in_transit → received → testing → pass: retention → closed;
fail: result_notified → objection_window → (final) or objection_review → retest → final verdict.
Every wait is a signal-or-timer with the rule pack's deadline, a reminder before it and its expiry rule.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.calendar import compute_deadline
    from activities.notices import NoticeActivities
    from activities.records import RecordActivities
    from domain import visibility as sa
    from domain.decisions import (
        AWAITED_TEXT,
        Actor,
        Decision,
        DecisionKind,
        LabReportData,
        ResultDeliveryData,
        Role,
    )
    from domain.models import SampleOrder, TaskType
    from domain.records import DecisionRecord, NoticeRequest, OutboxMessage, SampleProjection
    from domain.rules import Deadline, DeadlineRequest
    from domain.stages import STAGE_TITLES, Stage, Verdict
    from domain.status import Awaiting, SampleStatus, TimelineEvent
    from workflows.clock import SampleClock
    from workflows.desk import DecisionDesk, Wait
    from workflows.visibility import details_markdown

CHINA_NOON = time(12, 0)
ACTIVITY_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
SYSTEM = Actor(id="spotcheck", role=Role.CASE_OFFICER, name="Spotcheck (rule pack default)")



@workflow.defn
class SampleWorkflow:
    @workflow.init
    def __init__(self, order: SampleOrder) -> None:
        self.order = order
        self.stage = Stage.SAMPLING
        self.verdict = Verdict.PENDING
        self.desk = DecisionDesk(purchased=order.purchased)
        self.timeline: list[TimelineEvent] = []
        self.deadlines: list[Deadline] = []
        self.failed_items: list[dict[str, Any]] = []
        self.notices: list[dict[str, Any]] = []
        self.clock = SampleClock(workflow.now(), order.time_scale)
        self.producer_answer: str | None = None
        self._producer_answer: asyncio.Task[None] | None = None
        self._seq = 0

    # --- the lifecycle -------------------------------------------------------------------------

    @workflow.run
    async def run(self, order: SampleOrder) -> SampleStatus:
        self._event("started", f"sample {order.sample_no} started: {order.summary}")
        await self._enter(Stage.SAMPLING)
        if not await self._sample_until_received():
            return await self._finish()
        report = await self._await(DecisionKind.LAB_REPORT, "lab_testing", length=order.testing_working_days)
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
            await self._enter(Stage.POST_HANDLING)
            return await self._finish()
        await self._set_verdict(Verdict.FAIL_PROVISIONAL, "the lab reports a fail; open to objection")
        producer_deadline = await self._deadline("producer_confirmation") if self._producer_may_deny() else None
        await self._notify_result(report, "fail", producer_days=producer_deadline.length if producer_deadline else None)
        if producer_deadline:
            # The labelled producer answers in parallel with the seller's objection window.
            self._producer_answer = asyncio.create_task(self._producer_confirmation(producer_deadline))
        final = await self._objection_path()
        if final == "pass":
            await self._retain_and_dispose()
        else:
            await self._enter(Stage.POST_HANDLING)
        return await self._finish()

    async def _sample_until_received(self) -> bool:
        """Sampling and transport; a sample the lab rejects is sampled again. False when refused."""
        while True:
            record = await self._await(DecisionKind.SAMPLING_RECORD, "sampling_record")
            if record.outcome == "refused":
                await self._set_verdict(Verdict.REFUSED, f"the party refused to be sampled: {record.reason}")
                await self._enter(Stage.POST_HANDLING)
                return False
            await self._enter(Stage.IN_TRANSIT)
            receipt = await self._await(DecisionKind.SAMPLE_RECEIPT, "sample_transit")
            if receipt.outcome == "accepted":
                await self._enter(Stage.RECEIVED)
                await self._enter(Stage.TESTING)
                return True
            self._event("resample", f"the lab rejected the sample ({receipt.reason}); it is sampled again")
            await self._enter(Stage.SAMPLING)

    async def _objection_path(self) -> str:
        """result_notified → objection_window → objection_review → retest. Returns the final verdict."""
        await self._enter(Stage.RESULT_NOTIFIED)
        delivery = await self._await(DecisionKind.RESULT_DELIVERY, "result_notice")
        delivered = ResultDeliveryData.model_validate(delivery.data).delivered_on
        window_start = (
            datetime.combine(delivered, CHINA_NOON, tzinfo=self.clock.now().tzinfo) if delivered else None
        )
        await self._enter(Stage.OBJECTION_WINDOW)
        objection = await self._await_or_expire(DecisionKind.OBJECTION, "objection_window", start=window_start)
        if objection is None or objection.outcome == "waived":
            why = "no objection within the window" if objection is None else "the party waived its objection"
            await self._set_verdict(Verdict.FAIL, f"{why}: the fail is final")
            return "fail"
        await self._enter(Stage.OBJECTION_REVIEW)
        review = await self._await(DecisionKind.OBJECTION_REVIEW, "objection_acceptance")
        await self._notice(
            "objection_decision",
            f"objection-decision-{review.request_id}",
            {"decision": review.outcome, "reason": review.reason or "", "retest_agency": None},
        )
        if review.outcome == "rejected":
            await self._set_verdict(Verdict.FAIL, f"objection rejected ({review.reason}): the fail is final")
            return "fail"
        await self._enter(Stage.RETEST)
        retest = await self._await(
            DecisionKind.RETEST_REPORT, "retest", length=self.order.testing_working_days
        )
        if retest.outcome == "pass":
            self.failed_items = []
            await self._set_verdict(Verdict.PASS, "the re-test passes: the first result is overturned")
            return "pass"
        await self._record_failed_items(retest)
        await self._set_verdict(Verdict.FAIL, "the re-test confirms the fail: final")
        return "fail"

    async def _retain_and_dispose(self) -> None:
        """Keep the passed sample for the retention period, then return or dispose of it by decision.
        Evaluative samples keep no backup, so they go straight to the disposal decision."""
        await self._enter(Stage.RETENTION)
        if self.order.task_type is not TaskType.EVALUATIVE:
            retention = await self._deadline("sample_retention")
            self._event("retention", f"the sample is kept until {retention.due_date} ({retention.basis})")
            await workflow.sleep(
                self.clock.real_delay_until(retention.due),
                summary=f"Retention period of sample {self.order.sample_no} ends {retention.due_date}",
            )
        disposal = await self._await(DecisionKind.DISPOSAL, "disposal_decision")
        self._event("disposal", f"sample {disposal.outcome}")
        await self._enter(Stage.CLOSED)

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
        # Signal and update handlers may still be recording: let them finish before completing.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._status()

    # --- waiting for a decision: signal or timer -----------------------------------------------

    async def _await(
        self, kind: DecisionKind, rule_id: str, *, start: datetime | None = None, length: int | None = None,
        deadline: Deadline | None = None,
    ) -> Decision:
        """Wait for a decision the sample cannot do without: an expired wait escalates instead."""
        decision = await self._await_or_expire(
            kind, rule_id, start=start, length=length, may_expire=False, deadline=deadline
        )
        assert decision is not None
        return decision

    async def _await_or_expire(
        self,
        kind: DecisionKind,
        rule_id: str,
        *,
        start: datetime | None = None,
        length: int | None = None,
        may_expire: bool = True,
        deadline: Deadline | None = None,
    ) -> Decision | None:
        """Signal-or-timer: the decision, a reminder before the deadline, then the rule's expiry action.
        None when the rule lets the wait expire (a window that closed without the decision)."""
        deadline = deadline or await self._deadline(rule_id, start=start, length=length)
        wait = Wait(kind=kind, deadline=deadline, due_at=self.clock.to_real(deadline.due))
        self.desk.waits[kind] = wait
        self.desk.closed.pop(kind, None)
        self._event("awaiting", f"awaiting {AWAITED_TEXT[kind]} from {'/'.join(wait.roles)} by {deadline.due_date}")
        await self._publish()

        def arrived() -> bool:
            return kind in self.desk.inbox

        if deadline.remind_at is not None and not await self._until(
            arrived, deadline.remind_at, f"Reminder: {deadline.title} due {deadline.due_date}"
        ):
            await self._outbox("reminder", f"reminder-{kind.value}-{len(self.deadlines)}", wait,
                               f"提醒: {deadline.title} 将于 {deadline.due_date} 到期")
        if await self._until(arrived, deadline.due, f"{deadline.title} ends {deadline.due_date}"):
            return await self._take(kind)
        if deadline.on_expiry == "expire" and may_expire:
            await self._close_window(wait)
            return None
        if deadline.on_expiry == "default" and deadline.default_outcome:
            return await self._take_default(wait)
        # escalate (and enforcement leads, until their branch exists): mark overdue and keep waiting
        await self._escalate(wait)
        await workflow.wait_condition(arrived)
        return await self._take(kind)

    async def _close_window(self, wait: Wait) -> None:
        deadline = wait.deadline
        self.desk.waits.pop(wait.kind, None)
        self.desk.closed[wait.kind] = (
            f"{wait.kind.value} no longer accepted: the {deadline.title} ended on {deadline.due_date}"
        )
        self._event("expired", f"{deadline.title} ended on {deadline.due_date} without {wait.kind.value}")
        await self._publish()

    async def _take_default(self, wait: Wait) -> Decision:
        deadline = wait.deadline
        assert deadline.default_outcome
        decision = Decision(
            kind=wait.kind,
            outcome=deadline.default_outcome,
            actor=SYSTEM,
            request_id=f"default-{wait.kind.value}-{len(self.deadlines)}",
            reason=f"deadline {deadline.due_date} passed: rule {deadline.rule_id} takes the default",
        )
        self.desk.waits.pop(wait.kind, None)
        self._event("default", f"{deadline.title} passed: default outcome {deadline.default_outcome}")
        await self._record(decision.model_dump(mode="json"), decision, True, None, "default")
        return decision

    async def _escalate(self, wait: Wait) -> None:
        deadline = wait.deadline
        wait.overdue = True
        step = f"escalation-{wait.kind.value}-{len(self.deadlines)}"
        self._event("escalated", f"overdue since {deadline.due_date}: {AWAITED_TEXT[wait.kind]} ({deadline.basis})")
        await self._notice(
            "deadline_escalation",
            step,
            {"awaiting": AWAITED_TEXT[wait.kind], "role": "/".join(wait.roles), "due": str(deadline.due_date),
             "rule_title": deadline.title, "basis": deadline.basis},
        )
        await self._outbox("escalation", step, wait, f"超期督办: {deadline.title} 已于 {deadline.due_date} 到期")
        await self._publish()

    async def _take(self, kind: DecisionKind) -> Decision:
        decision = self.desk.inbox.pop(kind)
        self.desk.waits.pop(kind, None)
        self._event("decision", f"{kind.value} = {decision.outcome} by {decision.actor.role.value} "
                    f"{decision.actor.id}" + (f": {decision.reason}" if decision.reason else ""))
        return decision

    async def _until(self, done: Any, sample_time: datetime, summary: str) -> bool:
        """Wait for `done()` until `sample_time` on the sample's clock; False when the time came first."""
        try:
            await workflow.wait_condition(
                done, timeout=self.clock.real_delay_until(sample_time), timeout_summary=summary
            )
            return True
        except TimeoutError:
            return False

    # --- decisions in: signal and update share one validation -----------------------------------

    @workflow.signal(name="decide")
    async def decide(self, raw: Any) -> None:
        """Fire-and-forget decision: a bad one is recorded as rejected and never fails the workflow.
        Typed `Any` so that even a payload that is not an object reaches the audit trail."""
        await self._accept(raw, "signal")

    @workflow.update(name="submit_decision")
    async def submit_decision(self, raw: Any) -> dict[str, Any]:
        return (await self._accept(raw, "update")).model_dump(mode="json")

    @submit_decision.validator
    def _validate_decision(self, raw: Any) -> None:
        # Rejected here, the update never touches history.
        _, _, reason = self.desk.problem(raw)
        if reason:
            raise ValueError(reason)

    async def _accept(self, raw: Any, via: str) -> Any:
        verdict = self.desk.take(raw, stage=self.stage.value, now=workflow.now())
        if verdict.duplicate:
            return verdict.receipt
        receipt = verdict.receipt
        if not receipt.accepted:
            self._event("rejected", f"rejected {receipt.kind}={receipt.outcome} via {via}: {receipt.reason}")
        await self._record(raw, verdict.decision, receipt.accepted, receipt.reason, via, receipt.request_id)
        return receipt

    # --- queries -------------------------------------------------------------------------------

    @workflow.query(name="status")
    def status(self) -> SampleStatus:
        return self._status()

    def _status(self) -> SampleStatus:
        return SampleStatus(
            sample_no=self.order.sample_no,
            workflow_id=workflow.info().workflow_id,
            summary=self.order.summary,
            stage=self.stage.value,
            verdict=self.verdict.value,
            time_scale=self.order.time_scale,
            awaiting=[
                Awaiting(kind=w.kind.value, roles=w.roles, rule_id=w.deadline.rule_id, title=w.deadline.title,
                         due=w.deadline.due, due_at=w.due_at, basis=w.deadline.basis, overdue=w.overdue,
                         beyond_schedule=w.deadline.beyond_schedule)
                for w in self.desk.waits.values()
            ],
            deadlines=list(self.deadlines),
            timeline=list(self.timeline),
            failed_items=list(self.failed_items),
            notices=list(self.notices),
            closed_waits={k.value: why for k, why in self.desk.closed.items()},
            producer_answer=self.producer_answer,
        )

    # --- state changes and what people see -----------------------------------------------------

    async def _enter(self, stage: Stage) -> None:
        self.stage = stage
        self._event("stage", f"stage {stage.value}: {STAGE_TITLES[stage]}")
        await self._publish()

    async def _set_verdict(self, verdict: Verdict, why: str) -> None:
        self.verdict = verdict
        self._event("verdict", f"verdict {verdict.value}: {why}")
        await self._publish()

    def _event(self, event: str, text: str) -> None:
        self.timeline.append(TimelineEvent(at=self.clock.now(), stage=self.stage.value, event=event, text=text))

    async def _publish(self) -> None:
        """Search attributes, current details and the `samples` record follow every change."""
        waits = list(self.desk.waits.values())
        roles = sorted({r for w in waits for r in w.roles})
        next_due = min((w.due_at for w in waits), default=None)
        overdue = any(w.overdue for w in waits)
        workflow.upsert_search_attributes([
            sa.STAGE.value_set(self.stage.value),
            sa.VERDICT.value_set(self.verdict.value),
            sa.AWAITING_ROLE.value_set(roles) if roles else sa.AWAITING_ROLE.value_unset(),
            sa.NEXT_DEADLINE.value_set(next_due) if next_due else sa.NEXT_DEADLINE.value_unset(),
            sa.OVERDUE.value_set(overdue),
        ])
        workflow.set_current_details(details_markdown(self.order, self.stage, self.verdict, waits))
        self._seq += 1
        first = waits[0] if waits else None
        await workflow.execute_activity_method(
            RecordActivities.project_sample,
            SampleProjection(
                sample_no=self.order.sample_no,
                workflow_id=workflow.info().workflow_id,
                seq=self._seq,
                stage=self.stage.value,
                verdict=self.verdict.value,
                order=self.order.model_dump(mode="json"),
                awaiting_kind=first.kind.value if first else None,
                awaiting_role=",".join(first.roles) if first else None,
                next_deadline=next_due,
                overdue=overdue,
                updated_at=workflow.now(),
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            summary=f"Record sample {self.order.sample_no} at stage {self.stage.value}",
        )

    # --- activities ----------------------------------------------------------------------------

    async def _deadline(
        self, rule_id: str, *, start: datetime | None = None, length: int | None = None, keep: bool = True
    ) -> Deadline:
        deadline = await workflow.execute_activity(
            compute_deadline,
            DeadlineRequest(rule_id=rule_id, start=start or self.clock.now(), length=length),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            summary=f"Compute the deadline of rule {rule_id} for sample {self.order.sample_no}",
        )
        if keep:
            self.deadlines.append(deadline)
        return deadline

    async def _record(
        self, raw: Any, decision: Decision | None, accepted: bool, reason: str | None, via: str,
        request_id: str | None = None,
    ) -> None:
        actor = decision.actor.model_dump(mode="json") if decision else (
            raw.get("actor") if isinstance(raw, dict) and isinstance(raw.get("actor"), dict) else {}
        )
        await workflow.execute_activity_method(
            RecordActivities.record_decision,
            DecisionRecord(
                workflow_id=workflow.info().workflow_id,
                request_id=request_id or (decision.request_id if decision else str(workflow.uuid4())),
                kind=decision.kind.value if decision else str(raw.get("kind") if isinstance(raw, dict) else "?"),
                outcome=decision.outcome if decision else str(raw.get("outcome") if isinstance(raw, dict) else "?"),
                accepted=accepted,
                reason=reason,
                actor=actor or {},
                decision=raw if isinstance(raw, dict) else {"raw": repr(raw)},
                stage=self.stage.value,
                received_at=workflow.now(),
                via=via,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            summary=f"Record the {'accepted' if accepted else 'rejected'} decision in the audit trail",
        )

    async def _notice(self, template: str, step_id: str, extra: dict[str, Any]) -> None:
        issued = self.clock.now()
        context = {
            "order": self.order.model_dump(mode="json"),
            "issued_on": str(issued.date()),
            "authority": f"{self.order.region} 市场监督管理局",
            "notice_no": f"{self.order.sample_no}-{len(self.notices) + 1:02d}",
            **extra,
        }
        record = await workflow.execute_activity_method(
            NoticeActivities.render_notice,
            NoticeRequest(workflow_id=workflow.info().workflow_id, step_id=step_id, template=template,
                          context=context, issued_at=issued),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            summary=f"Render and store the {template} notice for sample {self.order.sample_no}",
        )
        self.notices.append(record.model_dump(mode="json"))
        self._event("notice", f"notice issued: {record.title} (sha256 {record.sha256[:12]}…)")

    async def _notify_result(self, report: Decision, verdict: str, producer_days: int | None = None) -> None:
        data = LabReportData.model_validate(report.data)
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
        self.failed_items = [i.model_dump(mode="json") for i in LabReportData.model_validate(report.data).failed_items]

    async def _outbox(self, channel: str, step_id: str, wait: Wait, subject: str) -> None:
        await workflow.execute_activity_method(
            RecordActivities.queue_outbox,
            OutboxMessage(
                workflow_id=workflow.info().workflow_id, step_id=step_id, channel=channel,
                recipient=",".join(wait.roles), subject=subject,
                payload={"kind": wait.kind.value, "due": str(wait.deadline.due_date), "rule": wait.deadline.rule_id},
                created_at=workflow.now(),
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            summary=f"Queue a {channel} for {'/'.join(wait.roles)}: {wait.kind.value} due {wait.deadline.due_date}",
        )

