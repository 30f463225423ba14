"""The machinery every durable decision process shares (the sample and each post-handling branch):
signal-or-timer waits with the rule pack's deadline, reminder and expiry action; one validation for
decisions by signal or update; the audit trail, notices and outbox through activities; a timeline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.adapters import Handover, HandoverReceipt, OutboundActivities
    from activities.calendar import compute_deadline
    from activities.notices import NoticeActivities
    from activities.records import RecordActivities
    from domain.decisions import AWAITED_TEXT, Actor, Decision, DecisionKind, EvidenceRef, Role
    from domain.models import SampleOrder
    from domain.records import DecisionRecord, NoticeRequest, OutboxMessage
    from domain.rules import Deadline, DeadlineRequest
    from domain.status import TimelineEvent
    from workflows.clock import SampleClock
    from workflows.desk import DecisionDesk, Wait

ACTIVITY_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
SYSTEM = Actor(id="spotcheck", role=Role.CASE_OFFICER, name="Spotcheck (rule pack default)")


class DecisionProcess:
    """Base of every workflow that waits for human decisions. Subclasses set `stage` and implement
    `_publish()` (what monitors see) and call `_setup()` from their `@workflow.init`."""

    order: SampleOrder
    stage: Any

    def _setup(self, order: SampleOrder, clock_origin: datetime | None = None) -> None:
        self.order = order
        self.desk = DecisionDesk(purchased=order.purchased, extra_check=self._extra_problem)
        self.timeline: list[TimelineEvent] = []
        self.deadlines: list[Deadline] = []
        self.notices: list[dict[str, Any]] = []
        self.evidence: list[EvidenceRef] = []  # every accepted decision's evidence, for case files
        # Branches share the sample's clock origin so that compressed dates agree across workflows.
        self.clock = SampleClock(clock_origin or workflow.now(), order.time_scale)
        self._seq = 0

    async def _publish(self) -> None:
        raise NotImplementedError

    def _extra_problem(self, decision: Decision) -> str | None:
        """A process's own validation beyond the role matrix (runs for signals and updates alike);
        must be pure: it runs in the update validator too."""
        return None

    def _notice_context(self) -> dict[str, Any]:
        """What every notice of this process can use besides its own fields."""
        return {}

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
        self.evidence.extend(decision.evidence)
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
        verdict = self.desk.take(raw, stage=str(self.stage), now=workflow.now())
        if verdict.duplicate:
            return verdict.receipt
        receipt = verdict.receipt
        if not receipt.accepted:
            self._event("rejected", f"rejected {receipt.kind}={receipt.outcome} via {via}: {receipt.reason}")
        await self._record(raw, verdict.decision, receipt.accepted, receipt.reason, via, receipt.request_id)
        return receipt

    def _event(self, event: str, text: str) -> None:
        self.timeline.append(TimelineEvent(at=self.clock.now(), stage=str(self.stage), event=event, text=text))


    async def _deadline(
        self, rule_id: str, *, start: datetime | None = None, length: int | None = None, keep: bool = True
    ) -> Deadline:
        deadline = await workflow.execute_activity(
            compute_deadline,
            DeadlineRequest(rule_id=rule_id, start=start or self.clock.now(), length=length),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            # A branch closing mid-call (a merge took over, the year ended) stops waiting without a
            # cancel request racing the activity's completion; the write is idempotent anyway.
            cancellation_type=ActivityCancellationType.ABANDON,
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
                stage=str(self.stage),
                received_at=workflow.now(),
                via=via,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            cancellation_type=ActivityCancellationType.ABANDON,
            summary=f"Record the {'accepted' if accepted else 'rejected'} decision in the audit trail",
        )

    async def _notice(self, template: str, step_id: str, extra: dict[str, Any]) -> None:
        issued = self.clock.now()
        context = {
            **self._notice_context(),
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
            cancellation_type=ActivityCancellationType.ABANDON,
            summary=f"Render and store the {template} notice for sample {self.order.sample_no}",
        )
        self.notices.append(record.model_dump(mode="json"))
        self._event("notice", f"notice issued: {record.title} (sha256 {record.sha256[:12]}…)")

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
            cancellation_type=ActivityCancellationType.ABANDON,
            summary=f"Queue a {channel} for {'/'.join(wait.roles)}: {wait.kind.value} due {wait.deadline.due_date}",
        )

    # --- outside systems -----------------------------------------------------------------------

    async def _hand_over(
        self, system: str, action: str, step_id: str, recipient: str, subject: str, payload: dict[str, Any]
    ) -> HandoverReceipt:
        receipt = await workflow.execute_activity_method(
            OutboundActivities.hand_over,
            Handover(workflow_id=workflow.info().workflow_id, step_id=step_id, system=system, action=action,
                     recipient=recipient, subject=subject, payload=payload, created_at=workflow.now()),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            cancellation_type=ActivityCancellationType.ABANDON,
            summary=f"Hand over to {system}: {subject}",
        )
        self._event("handover", f"{system}: {subject} ({receipt.reference})")
        return receipt
