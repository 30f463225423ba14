"""The machinery every durable decision process shares (the sample and each post-handling branch):
signal-or-timer waits with the rule pack's deadline, reminder and expiry action; one validation for
decisions by signal or update; the audit trail, notices and outbox through activities; a timeline.

A process subclasses DecisionProcess for the `decide` signal and `submit_decision` update (Temporal
handlers live on the workflow class), passes its own decision rules to `_setup` (`extra_check`) and
implements `_publish` (what monitors see). A wait can be cut short explicitly with `interrupt=`: it then
raises WaitInterrupted for the caller to handle. Decisions and deadlines: docs/design.md §4-5."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.adapters import OutboundActivities
    from activities.calendar import compute_deadline
    from activities.notices import NoticeActivities
    from activities.records import RecordActivities
    from domain.decisions import AWAITED_TEXT, Actor, Decision, DecisionKind, EvidenceRef, Receipt, Role
    from domain.models import SampleOrder
    from domain.records import DecisionRecord, Handover, HandoverReceipt, NoticeRequest, OutboxMessage
    from domain.rules import Deadline, DeadlineRequest
    from domain.status import TimelineEvent
    from workflows.calls import call
    from workflows.clock import SampleClock
    from workflows.desk import DecisionDesk, Intake, Wait

SYSTEM = Actor(id="spotcheck", role=Role.CASE_OFFICER, name="Spotcheck (rule pack default)")

Interrupt = Callable[[], bool]


class WaitInterrupted(Exception):
    """A wait's `interrupt` condition came true before its decision (e.g. a merged case took over)."""


def _never() -> bool:
    return False


class DecisionProcess:
    """Base of every workflow that waits for human decisions."""

    order: SampleOrder
    stage: Any

    def _setup(
        self,
        order: SampleOrder,
        clock_origin: datetime | None = None,
        *,
        extra_check: Callable[[Decision], str | None] | None = None,
        notice_context: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """`extra_check`: the process's own decision rules beyond the role matrix (pure: it decides what a
        caller is answered); `notice_context`: what every notice of this process can use."""
        self.order = order
        self.desk = DecisionDesk(purchased=order.purchased, extra_check=extra_check)
        self._notice_context = notice_context or dict
        self.timeline: list[TimelineEvent] = []
        self.deadlines: list[Deadline] = []
        self.notices: list[dict[str, Any]] = []
        self.evidence: list[EvidenceRef] = []  # every accepted decision's evidence, for case files
        # Branches share the sample's clock origin so that compressed dates agree across workflows.
        self.clock = SampleClock(clock_origin or workflow.now(), order.time_scale)
        self._seq = 0

    async def _publish(self) -> None:
        raise NotImplementedError

    # --- waiting for a decision: signal or timer -----------------------------------------------

    def _open(self, kind: DecisionKind, deadline: Deadline) -> Wait:
        return self.desk.open(kind, deadline, self.clock.to_real(deadline.due))

    async def _await(
        self, kind: DecisionKind, rule_id: str, *, start: datetime | None = None, length: int | None = None,
        deadline: Deadline | None = None, interrupt: Interrupt = _never,
    ) -> Decision:
        """Wait for a decision the process cannot do without: an expired wait escalates instead."""
        decision = await self._await_or_expire(
            kind, rule_id, start=start, length=length, may_expire=False, deadline=deadline, interrupt=interrupt
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
        interrupt: Interrupt = _never,
    ) -> Decision | None:
        """Signal-or-timer: the decision, a reminder before the deadline, then the rule's expiry action.
        None when the rule lets the wait expire (a window that closed without the decision)."""
        deadline = deadline or await self._deadline(rule_id, start=start, length=length)
        wait = self._open(kind, deadline)
        self._event("awaiting", f"awaiting {AWAITED_TEXT[kind]} from {'/'.join(wait.roles)} by {deadline.due_date}")
        await self._publish()

        def arrived() -> bool:
            return self.desk.arrived(kind)

        if deadline.remind_at is not None and not await self._until(
            arrived, deadline.remind_at, f"Reminder: {deadline.title} due {deadline.due_date}", interrupt
        ):
            await self._outbox("reminder", f"reminder-{kind.value}-{len(self.deadlines)}", wait,
                               f"提醒: {deadline.title} 将于 {deadline.due_date} 到期")
        if await self._until(arrived, deadline.due, f"{deadline.title} ends {deadline.due_date}", interrupt):
            return self._take(kind)
        if deadline.on_expiry == "expire" and may_expire:
            await self._close_window(wait)
            return None
        if deadline.on_expiry == "default" and deadline.default_outcome:
            return await self._take_default(wait)
        # escalate: mark overdue and keep waiting (for the decision, or the interruption)
        await self._escalate(wait)
        await workflow.wait_condition(lambda: arrived() or interrupt())
        if interrupt():
            raise WaitInterrupted(kind.value)
        return self._take(kind)

    async def _until(
        self, done: Callable[[], bool], sample_time: datetime, summary: str, interrupt: Interrupt = _never
    ) -> bool:
        """Wait for `done()` until `sample_time` on the sample's clock; False when the time came first.
        Raises WaitInterrupted when `interrupt()` comes true first."""
        try:
            await workflow.wait_condition(
                lambda: done() or interrupt(), timeout=self.clock.real_delay_until(sample_time),
                timeout_summary=summary,
            )
            arrived = True
        except TimeoutError:
            arrived = False
        if interrupt():
            raise WaitInterrupted(summary)
        return arrived

    async def _close_window(self, wait: Wait) -> None:
        deadline = wait.deadline
        self.desk.shut(wait.kind, f"{wait.kind.value} no longer accepted: the {deadline.title} ended on "
                                  f"{deadline.due_date}")
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
        self.desk.shut(wait.kind)
        self._event("default", f"{deadline.title} passed: default outcome {deadline.default_outcome}")
        receipt = Receipt(request_id=decision.request_id, kind=wait.kind.value, outcome=decision.outcome,
                          accepted=True, stage=str(self.stage), recorded_at=workflow.now())
        await self._audit(Intake(decision, receipt), decision.model_dump(mode="json"), "default")
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

    def _take(self, kind: DecisionKind) -> Decision:
        decision = self.desk.pop(kind)
        self.evidence.extend(decision.evidence)
        self._event("decision", f"{kind.value} = {decision.outcome} by {decision.actor.role.value} "
                    f"{decision.actor.id}" + (f": {decision.reason}" if decision.reason else ""))
        return decision

    # --- decisions in: signal and update share one validation -----------------------------------

    @workflow.signal(name="decide")
    async def decide(self, raw: Any) -> None:
        """Fire-and-forget decision: a bad one is recorded as rejected and never fails the workflow.
        Typed `Any` so that even a payload that is not an object reaches the audit trail."""
        await self._accept(raw, "signal")

    @workflow.update(name="submit_decision")
    async def submit_decision(self, raw: Any) -> dict[str, Any]:
        """The caller's answer is the receipt: accepted, or rejected with the reason. Every attempt is
        admitted into history and audited, so a refused update needs no second send to be on record."""
        return (await self._accept(raw, "update")).model_dump(mode="json")

    async def _accept(self, raw: Any, via: str) -> Receipt:
        intake = self.desk.take(raw, stage=str(self.stage), now=workflow.now())
        if intake.duplicate:
            return intake.receipt
        receipt = intake.receipt
        if not receipt.accepted:
            self._event("rejected", f"rejected {receipt.kind}={receipt.outcome} via {via}: {receipt.reason}")
        await self._audit(intake, raw, via)
        return receipt

    def _event(self, event: str, text: str) -> None:
        self.timeline.append(TimelineEvent(at=self.clock.now(), stage=str(self.stage), event=event, text=text))

    # --- activities ----------------------------------------------------------------------------

    async def _deadline(
        self, rule_id: str, *, start: datetime | None = None, length: int | None = None, keep: bool = True,
        extended: bool = False,
    ) -> Deadline:
        deadline = await call(
            compute_deadline,
            DeadlineRequest(rule_id=rule_id, start=start or self.clock.now(), length=length, extended=extended),
            summary=f"Compute the {'extended ' if extended else ''}deadline of rule {rule_id} for sample "
                    f"{self.order.sample_no}",
        )
        if keep:
            self.deadlines.append(deadline)
        return deadline

    async def _audit(self, intake: Intake, raw: Any, via: str) -> None:
        """The audit row of one attempt, from what the desk made of it (the decision is not parsed again)."""
        receipt, decision = intake.receipt, intake.decision
        actor = decision.actor.model_dump(mode="json") if decision else (
            raw.get("actor") if isinstance(raw, dict) and isinstance(raw.get("actor"), dict) else {}
        )
        await call(
            RecordActivities.record_decision,
            DecisionRecord(
                workflow_id=workflow.info().workflow_id,
                request_id=receipt.request_id,
                kind=receipt.kind,
                outcome=receipt.outcome,
                accepted=receipt.accepted,
                reason=receipt.reason,
                actor=actor,
                decision=raw if isinstance(raw, dict) else {"raw": repr(raw)},
                stage=str(self.stage),
                received_at=workflow.now(),
                via=via,
            ),
            summary=f"Record the {'accepted' if receipt.accepted else 'rejected'} decision in the audit trail",
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
        record = await call(
            NoticeActivities.render_notice,
            NoticeRequest(workflow_id=workflow.info().workflow_id, step_id=step_id, template=template,
                          context=context, issued_at=issued),
            summary=f"Render and store the {template} notice for sample {self.order.sample_no}",
        )
        self.notices.append(record.model_dump(mode="json"))
        self._event("notice", f"notice issued: {record.title} (sha256 {record.sha256[:12]}…)")

    async def _outbox(self, channel: str, step_id: str, wait: Wait, subject: str) -> None:
        await call(
            RecordActivities.queue_outbox,
            OutboxMessage(
                workflow_id=workflow.info().workflow_id, step_id=step_id, channel=channel,
                recipient=",".join(wait.roles), subject=subject,
                payload={"kind": wait.kind.value, "due": str(wait.deadline.due_date), "rule": wait.deadline.rule_id},
                created_at=workflow.now(),
            ),
            summary=f"Queue a {channel} for {'/'.join(wait.roles)}: {wait.kind.value} due {wait.deadline.due_date}",
        )

    # --- outside systems -----------------------------------------------------------------------

    async def _hand_over(
        self, system: str, action: str, step_id: str, recipient: str, subject: str, payload: dict[str, Any]
    ) -> HandoverReceipt:
        receipt = await call(
            OutboundActivities.hand_over,
            Handover(workflow_id=workflow.info().workflow_id, step_id=step_id, system=system, action=action,
                     recipient=recipient, subject=subject, payload=payload, created_at=workflow.now()),
            summary=f"Hand over to {system}: {subject}",
        )
        self._event("handover", f"{system}: {subject} ({receipt.reference})")
        return receipt
