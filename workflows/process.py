"""The machinery every durable decision process shares (the sample and each post-handling branch):
signal-or-timer waits with the rule pack's deadline, reminder and expiry action; one validation for
decisions by signal or update; the audit trail, notices and outbox through activities; a timeline.

A process subclasses DecisionProcess for the `decide` signal and `submit_decision` update (Temporal
handlers live on the workflow class), passes its own decision rules to `_setup` (`extra_check`) and
implements `_publish` (what monitors see). A wait can be cut short explicitly with `interrupt=`: it then
raises WaitInterrupted for the caller to handle. Decisions and deadlines: docs/design.md §4-5."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.adapters import OutboundActivities
    from activities.calendar import compute_deadline
    from activities.notices import NoticeActivities
    from activities.records import RecordActivities
    from activities.result_handling_records import ResultHandlingRecords
    from domain import intake, signing
    from domain.decisions import (
        AWAITED_TEXT,
        Actor,
        Decision,
        DecisionKind,
        EvidenceRef,
        Receipt,
        Role,
        organisation_problem,
    )
    from domain.intake import Throttle, clean_text, single_input
    from domain.models import SampleOrder
    from domain.policy import DeploymentPolicy
    from domain.records import (
        DecisionRecord,
        Handover,
        HandoverReceipt,
        NoticeRequest,
        OutboxMessage,
        ResultHandoverRecord,
    )
    from domain.regions import authority_label
    from domain.rules import Deadline, DeadlineRequest
    from domain.status import Awaiting, ProcessCarry, TimelineEvent
    from workflows.calls import call
    from workflows.clock import SampleClock
    from workflows.compact import compact
    from workflows.desk import DecisionDesk, Intake, Wait

SYSTEM = Actor(id="spotcheck", role=Role.CASE_OFFICER, name="Spotcheck (rule pack default)")
# Runs recorded before the hardened intake (one input of any shape, answer before the audit row, sealed
# internal signals, the deployment policy, operator hand-off) replay as they ran (docs/design.md §8).
HARDENED = "hardened-intake"
# Runs recorded before it ran every bookkeeping step as a full activity and upserted every search attribute
# at every publish; newer runs compute deadlines and write projections as local activities and upsert only
# the attributes whose value changes (docs/design.md §8).
LEAN = "lean-bookkeeping"
# Runs from before the holiday schedule became data neither publish EstimatedDeadline nor take
# `calendar_updated` (docs/design.md §5, §8).
CALENDAR = "calendar-data"
# Runs from before the monitors' attributes (ProcessKind, RegionName, OverdueRole) write them only beside an
# upsert they make anyway; newer runs write them like every other attribute (docs/design.md §6, §8). A run
# that has it has every behaviour above.
MONITORING = "monitoring-attributes"
# Runs from before it rendered notices as full activities (three events and a workflow task more each) and
# opened a sample's wait with two local activities (its deadline, then the sample's record) after reading the
# deployment policy in one of its own; newer runs render and store notices as local activities and open a
# wait with one, the first reading the policy too (docs/design.md §8).
LEAN_STEPS = "lean-steps"
# Runs from before it wrote a decision's audit row as an activity of its own (three events and a second
# workflow task per decision); newer runs write it as a local activity in the workflow task that answers the
# caller, and take the activity only when that write is slow (AUDIT_FUSE) (docs/design.md §4, §8).
LOCAL_AUDIT = "local-audit"
# Runs from before it wrote a decision's audit row in a local activity of its own before acting on it; newer
# runs act on it at once and write the row with the sample's next wait, in the one local activity that opens
# it (`open_wait`), or on its own when no wait opens in that task (docs/design.md §4, §8). The newest patch: a
# run that has it has every behaviour above and asks no other.
AUDIT_WITH_WAIT = "audit-with-wait"
# How long the caller's answer may wait for the audit row written beside it: a database slower than this (or
# down) gets the row as an activity instead, with the shared retries, and the answer leaves at once. Local
# policy (a latency bound, not a legal period).
AUDIT_FUSE = timedelta(seconds=1)
AUDIT_ONCE = RetryPolicy(maximum_attempts=1)
# Histories recorded before the policy existed: no signatures, and the order's time_scale as given.
LEGACY_POLICY = DeploymentPolicy(require_signatures=False, max_time_scale=864000.0, signing_key_ids=[])

Interrupt = Callable[[], bool]
T = TypeVar("T")


class AuditRow(NamedTuple):
    """One audit row to write, and what the history says of it."""

    record: DecisionRecord
    summary: str


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
        self.order = compact(order)
        self.desk = DecisionDesk(purchased=order.purchased, extra_check=extra_check, sender_check=self._sender_problem)
        self._notice_context = notice_context or dict
        self.policy = LEGACY_POLICY
        self.throttle = Throttle()
        self.needs_operator: str | None = None  # the step an operator must look at (a write that failed)
        self._needed_operator = False  # once set, the NeedsOperator search attribute is kept up to date
        self._retries = 0
        self._audits: list[asyncio.Task[None]] = []
        self._audit_of: dict[str, asyncio.Task[None]] = {}  # an accepted decision's audit row, by request id
        self._unpublished = False  # a stage change not yet published (lean runs publish once per step)
        self._hardened_run: bool | None = None
        self._lean_run: bool | None = None
        self._monitored_run: bool | None = None
        self._lean_steps_run: bool | None = None
        self._local_audit_run: bool | None = None
        self._audit_with_wait_run: bool | None = None
        self._unaudited: list[AuditRow] = []  # rows of this workflow task not yet under way (`_audit_later`)
        self._audit_flusher: asyncio.Task[None] | None = None
        self._recounts_asked = self._recounts_done = 0  # `calendar_updated` signals asked / acted on
        self._resumed_waits: dict[DecisionKind, Deadline] = {}  # a continued run's open waits, as they were
        self._resume_at: str | None = None  # in a continued run: the stage it resumes at
        self.runs = 1
        self.timeline: list[TimelineEvent] = []
        self.deadlines: list[Deadline] = []
        self.notices: list[dict[str, Any]] = []
        self.evidence: list[EvidenceRef] = []  # every accepted decision's evidence, for case files
        # Branches share the sample's clock origin so that compressed dates agree across workflows.
        self.clock = SampleClock(clock_origin or workflow.now(), order.time_scale)
        self._seq = 0
        self._versions()

    def _show(self) -> None:
        """What monitors see: search attributes and the current details (no activity: it cannot fail)."""
        raise NotImplementedError

    async def _publish(self) -> None:
        """`_show`, and whatever else follows every change (the sample's record, a branch's report)."""
        raise NotImplementedError

    async def _changed(self) -> None:
        """The stage (or the sample's verdict) changed. Lean runs publish it once per step, with the wait the
        step ends in (`_flush`: `_until` and every other wait or end flush first); older runs publish every
        change."""
        if self._lean():
            self._unpublished = True
        else:
            await self._publish()

    async def _flush(self) -> None:
        """Publish a stage change not yet published (lean runs), before the process waits or ends."""
        if self._unpublished:
            self._unpublished = False
            await self._publish()

    def _operator_attribute(self) -> bool | None:
        """NeedsOperator for `publish`: None (left alone) in runs that never needed an operator."""
        return self.needs_operator is not None if self._needed_operator else None

    # --- waiting for a decision: signal or timer -----------------------------------------------

    def _open(self, kind: DecisionKind, deadline: Deadline) -> Wait:
        return self.desk.open(kind, compact(deadline), self.clock.to_real(deadline.due))

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
        deadline = deadline or self._resumed_waits.pop(kind, None) or await self._wait_deadline(
            kind, rule_id, start=start, length=length
        )
        wait = self._open(kind, deadline)
        wait.movable = True  # its timers follow a recomputed deadline (`calendar_updated`)
        self._event("awaiting", f"awaiting {AWAITED_TEXT[kind]} from {'/'.join(wait.roles)} by {deadline.due_date}"
                    + (" (estimated)" if deadline.estimated else ""))
        await self._publish()

        def arrived() -> bool:
            return self._arrived(kind)

        if deadline.remind_at is not None and not await self._until_deadline(wait, arrived, interrupt, remind=True):
            deadline = wait.deadline
            await self._outbox("reminder", f"reminder-{kind.value}-{len(self.deadlines)}", wait,
                               f"提醒: {deadline.title} 将于 {deadline.due_date} 到期")
        if await self._until_deadline(wait, arrived, interrupt):
            return self._take(kind)
        deadline = wait.deadline
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

    async def _wait_deadline(
        self, kind: DecisionKind, rule_id: str, *, start: datetime | None, length: int | None
    ) -> Deadline:
        """The deadline of the wait for `kind`, about to open (a sample also writes its record in the same
        local activity: SampleWorkflow)."""
        return await self._deadline(rule_id, start=start, length=length)

    async def _until(
        self, done: Callable[[], bool], sample_time: datetime, summary: str, interrupt: Interrupt = _never
    ) -> bool:
        """Wait for `done()` until `sample_time` on the sample's clock; False when the time came first.
        Raises WaitInterrupted when `interrupt()` comes true first."""
        await self._flush()
        if self._audit_with_wait() and (done() or interrupt()):
            # Already there (a decision that came while the reminder was awaited): no wait, so that the step
            # goes on in this pass of the event loop and its wait opens with the decision's audit row.
            arrived = True
        else:
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

    async def _until_deadline(self, wait: Wait, done: Callable[[], bool], interrupt: Interrupt, *,
                              remind: bool = False) -> bool:
        """`_until` the wait's reminder or due time; when `calendar_updated` moves the deadline meanwhile,
        the timer moves with it (a new timer until the new time)."""
        while True:
            deadline = wait.deadline
            at = deadline.remind_at if remind else deadline.due
            if at is None:  # the recomputed deadline has no reminder: none is sent
                return True
            what = f"Reminder: {deadline.title} due" if remind else f"{deadline.title} ends"
            arrived = await self._until(lambda d=deadline: done() or wait.deadline is not d, at,  # type: ignore[misc]
                                        f"{what} {deadline.due_date}", interrupt)
            if wait.deadline is deadline or done():
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
        await self._audit(Intake(decision, receipt), "default")
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

    def _arrived(self, *kinds: DecisionKind) -> bool:
        """A decision of one of `kinds` was taken and (lean runs) its audit row is written: the process acts on
        a decision once it is on the audit trail. Its row written beside the answer (`_audit`), that is in the
        same workflow task; a row that took the long way holds the work, never the answer. AUDIT_WITH_WAIT
        runs act at once: the row goes with the next wait (`_audit_later`), which waits for it if it is slow."""
        for kind in kinds:
            decision = self.desk.inbox.get(kind)
            if decision is None:
                continue
            audit = self._audit_of.get(decision.request_id)
            if audit is None or audit.done() or not self._lean():
                return True
        return False

    def _take(self, kind: DecisionKind) -> Decision:
        decision = self.desk.pop(kind)
        self._audit_of.pop(decision.request_id, None)
        self.evidence.extend(decision.evidence)
        self._event("decision", f"{kind.value} = {decision.outcome} by {decision.actor.role.value} "
                    f"{decision.actor.id}" + (f": {decision.reason}" if decision.reason else ""))
        return decision

    # --- a holiday schedule loaded: estimated deadlines computed again ------------------------------

    def _calendar_data(self) -> bool:
        """Whether this run has the calendar as data (EstimatedDeadline, `calendar_updated`)."""
        return self._patched(CALENDAR)

    def _estimated_attribute(self, awaiting: Sequence[Awaiting]) -> bool | None:
        """EstimatedDeadline for `publish`: None (left alone) in runs from before the calendar data."""
        return any(a.estimated for a in awaiting) if self._calendar_data() else None

    @workflow.signal(name="calendar_updated")
    async def calendar_updated(self, *args: Any) -> None:
        """A year of the holiday schedule was loaded (`spotcheck calendar load`): every open wait whose
        deadline was estimated is computed again, and its timers move. Any payload is taken and none is
        trusted: the deadline activity reads the calendar itself, so a stray signal changes nothing. Signals
        arriving during a recount are served by one more pass, not one each."""
        if not self._calendar_data():
            return
        self._recounts_asked += 1
        if self._recounts_asked - self._recounts_done > 1:
            return  # a recount is under way and will pass once more
        while self._recounts_done < self._recounts_asked:
            self._recounts_done = self._recounts_asked
            for wait in [w for w in self.desk.waits.values() if w.deadline.estimated and not w.overdue]:
                await self._recount(wait)

    async def _recount(self, wait: Wait) -> None:
        old = wait.deadline
        if not wait.movable:  # a branch's own timer on this date (e.g. an extension window): left as it is
            self._event("deadline_kept", f"{old.title}: {old.due_date} stays an estimate (this wait's own "
                        "timers are not moved)")
            return
        new = await self._do(
            compute_deadline,
            DeadlineRequest(rule_id=old.rule_id, start=old.start, length=old.length),  # length: as applied
            summary=f"Recompute the estimated deadline of rule {old.rule_id} ({old.due_date}) for sample "
                    f"{self.order.sample_no}",
        )
        if self.desk.waits.get(wait.kind) is not wait or wait.overdue or (new.due, new.estimated) == (old.due, old.estimated):
            return  # decided or overdue meanwhile, or nothing known yet about the year
        if old in self.deadlines:
            self.deadlines[self.deadlines.index(old)] = new
        wait.deadline, wait.due_at = new, self.clock.to_real(new.due)
        self._event("deadline_moved", f"{new.title}: {old.due_date} (estimated) → {new.due_date}"
                    + (" (still estimated)" if new.estimated else " (holiday schedule loaded)"))
        await self._publish()

    # --- the run's version and the deployment policy ---------------------------------------------

    def _hardened(self) -> bool:
        """Whether this run has the hardened intake (asked once, at the first place it matters)."""
        if self._hardened_run is None:
            self._hardened_run = self._patched(HARDENED)
        return self._hardened_run

    def _patched(self, patch: str) -> bool:
        """Whether this run has the behaviour `patch` gates. A lean run has every one of them (LEAN came
        after all of them), so it asks none: each patch asked costs a marker and a TemporalChangeVersion
        upsert in every history. Older runs ask the patch where they always did (an old run reaching it
        live takes the new behaviour)."""
        return self._lean() or workflow.patched(patch)

    def _versions(self) -> None:
        """Ask, at the very start of the run (in `__init__`) and before any local activity, which version it
        is: the newest patch first (AUDIT_WITH_WAIT, LOCAL_AUDIT, LEAN_STEPS, MONITORING, then LEAN) — a local activity's result can
        reach a replay a workflow task earlier than it reached the live run, so a patch first asked after one
        would be asked too early on replay. Runs from before LEAN ask the calendar patch next, as they did."""
        if not self._lean():
            self._calendar_data()

    def _audit_with_wait(self) -> bool:
        """Whether this run acts on a decision at once and writes its audit row with the next wait
        (AUDIT_WITH_WAIT; implies LOCAL_AUDIT)."""
        if self._audit_with_wait_run is None:
            self._audit_with_wait_run = workflow.patched(AUDIT_WITH_WAIT)
        return self._audit_with_wait_run

    def _local_audit(self) -> bool:
        """Whether this run writes a decision's audit row as a local activity beside the answer (LOCAL_AUDIT;
        implies LEAN_STEPS)."""
        if self._local_audit_run is None:
            self._local_audit_run = self._audit_with_wait() or workflow.patched(LOCAL_AUDIT)
        return self._local_audit_run

    def _lean_steps(self) -> bool:
        """Whether this run renders notices as local activities and opens a wait in one (LEAN_STEPS; implies
        MONITORING)."""
        if self._lean_steps_run is None:
            self._lean_steps_run = self._local_audit() or workflow.patched(LEAN_STEPS)
        return self._lean_steps_run

    def _monitored(self) -> bool:
        """Whether this run writes the monitors' attributes like the others (MONITORING; implies LEAN)."""
        if self._monitored_run is None:
            self._monitored_run = self._lean_steps() or workflow.patched(MONITORING)
        return self._monitored_run

    def _lean(self) -> bool:
        """Whether this run keeps its bookkeeping lean (local activities, changed attributes only)."""
        if self._lean_run is None:
            self._lean_run = self._monitored() or workflow.patched(LEAN)
        return self._lean_run

    def _adopt_policy(self, policy: DeploymentPolicy) -> None:
        """The deployment's policy, as recorded for this run: signatures, and how far the clock may be
        compressed (only a demo or test deployment compresses it)."""
        self.policy = compact(policy)
        scale = policy.time_scale_for(self.order.time_scale)
        if scale != self.order.time_scale:
            self._event("time_scale", f"time_scale {self.order.time_scale:g} not allowed by this deployment: "
                        f"the legal clock runs at ×{scale:g}")
            self.clock = SampleClock(self.clock.origin, scale)

    def _sender_problem(self, decision: Decision) -> str | None:
        """Proven senders: a valid signature where the deployment requires one, and an enterprise acting
        only for itself."""
        if self.policy.require_signatures:
            # The age allowed is the recorded policy's (every policy recorded so far says 24 h, as
            # signing.DEFAULT_MAX_AGE did: old histories replay the same).
            problem = signing.signature_problem(
                decision, workflow.info().workflow_id, signing.keyring(), workflow.now(),
                self.policy.signature_max_age,
            )
            if problem:
                return problem
        # A claimed organisation is always checked; a signed enterprise decision must claim one (unsigned,
        # a claim proves nothing, so none is asked for where the deployment takes unsigned decisions).
        if not self._hardened() or not (decision.actor.organisation or self.policy.require_signatures):
            return None
        parties = [self.order.sampled_party.credit_code]
        if self.order.labelled_producer is not None:
            parties.append(self.order.labelled_producer.credit_code)
        return organisation_problem(decision, parties)

    # --- decisions in: signal and update share one validation -----------------------------------

    @workflow.signal(name="decide")
    async def decide(self, *args: Any) -> None:
        """Fire-and-forget decision: a bad one is recorded as rejected and never fails the workflow.
        Any arguments at all are accepted, so that even no input or a non-object reaches the audit trail."""
        await self._accept(args, "signal")

    @workflow.update(name="submit_decision")
    async def submit_decision(self, *args: Any) -> dict[str, Any]:
        """The caller's answer is the receipt: accepted, or rejected with the reason. Every attempt is
        admitted into history (durable at that moment) and audited by the workflow, so a refused update needs
        no second send to be on record; the audit row is written beside the answer, or follows it when the
        database is slow (`_audit`)."""
        return (await self._accept(args, "update")).model_dump(mode="json")

    async def _accept(self, args: tuple[Any, ...], via: str) -> Receipt:
        now = workflow.now()
        if not self._hardened():
            intake = self.desk.take(args[0] if args else None, stage=str(self.stage), now=now)
        else:
            raw, refused = single_input(args)
            if not self.throttle.admit(now):
                refused = (f"input: more than the allowed decisions ({self.throttle.taken} this run); "
                           "dropped unrecorded but counted")
                intake = self.desk.refuse(args, refused, stage=str(self.stage), now=now)
                if self.throttle.dropped == 1 or self.throttle.dropped % 100 == 0:
                    self._event("dropped", f"{self.throttle.dropped} decisions dropped over the limit")
                return intake.receipt
            if refused:
                intake = self.desk.refuse(args, refused, stage=str(self.stage), now=now)
            else:
                intake = self.desk.take(raw, stage=str(self.stage), now=now)
        if intake.duplicate:
            return intake.receipt
        receipt = intake.receipt
        if not receipt.accepted:
            self._event("rejected", f"rejected {receipt.kind}={receipt.outcome} via {via}: {receipt.reason}")
        if self._hardened() and self._audit_with_wait():
            self._audit_later(self._audit_row(intake, via))
        elif self._hardened():
            # Durable in history already; the audit row follows exactly once (an idempotent write).
            audit = asyncio.create_task(self._audit(intake, via))
            self._audits.append(audit)
            if receipt.accepted:
                self._audit_of[receipt.request_id] = audit
        else:
            await self._audit(intake, via)
        return receipt

    # --- internal signals: only from Spotcheck's own workflows ----------------------------------------

    def _seal(self, payload: Any, target_workflow_id: str) -> Any:
        """An internal signal's argument: sealed by the worker-held key in hardened runs."""
        return signing.seal(payload, target_workflow_id) if self._hardened() else payload

    def _internal(self, name: str, args: tuple[Any, ...]) -> Any | None:
        """The payload of an internal signal, or None: junk and forgeries are refused, timelined and audited
        (as `name`, with a summary of what came), and change nothing."""
        payload, problem = signing.open_internal(args, workflow.info().workflow_id, sealed=self._hardened())
        if problem is None:
            return payload
        intake = self.desk.refuse(args, f"{name}: {problem}", stage=str(self.stage), now=workflow.now(), kind=name)
        self._event("forged", f"internal signal {name} refused: {intake.receipt.reason}")
        self._audits.append(asyncio.create_task(self._audit(intake, "internal")))
        return None

    # --- continuing as new: what every process carries ------------------------------------------

    def _history_long(self) -> bool:
        """Temporal suggests continuing as new (a long history, e.g. a flood of signals), or the run is past
        the local limit. Only hardened runs continue as new."""
        info = workflow.info()
        long = info.is_continue_as_new_suggested() or info.get_current_history_length() > intake.MAX_EVENTS_PER_RUN
        return bool(self._hardened_run) and long

    def _carried(self) -> dict[str, Any]:
        """The process's part of a carry (ProcessCarry fields)."""
        return dict(
            clock_origin=self.clock.origin, time_scale=self.clock.scale, policy=self.policy.model_dump(mode="json"),
            stage=str(self.stage), timeline=self.timeline, deadlines=self.deadlines, notices=self.notices,
            evidence=[e.model_dump(mode="json") for e in self.evidence],
            receipts={k: r.model_dump(mode="json") for k, r in self.desk.receipts.items()},
            closed_waits={k.value: why for k, why in self.desk.closed.items()},
            waits={k.value: {"deadline": w.deadline.model_dump(mode="json"), "overdue": w.overdue}
                   for k, w in self.desk.waits.items()},
            inbox={k.value: d.model_dump(mode="json") for k, d in self.desk.inbox.items()},
            runs=self.runs + 1, decisions_dropped=self.throttle.dropped,
        )

    def _restore_process(self, c: ProcessCarry) -> None:
        """A continued run: everything as it was; the resumed steps wait again on the deadlines they had
        (reminders and escalations already sent are not sent twice: outbox rows and notices are keyed by
        step)."""
        self._hardened_run = True  # only hardened runs continue as new
        self.policy = DeploymentPolicy.model_validate(c.policy)
        self.clock = SampleClock(c.clock_origin, c.time_scale)
        self.timeline, self.deadlines, self.notices = list(c.timeline), list(c.deadlines), list(c.notices)
        self.evidence = [EvidenceRef.model_validate(e) for e in c.evidence]
        self.desk.receipts = {k: Receipt.model_validate(r) for k, r in c.receipts.items()}
        self.desk.closed = {DecisionKind(k): why for k, why in c.closed_waits.items()}
        self._resumed_waits = {DecisionKind(k): Deadline.model_validate(w["deadline"]) for k, w in c.waits.items()}
        for kind, deadline in self._resumed_waits.items():  # open at once: a decision may arrive before the
            self._open(kind, deadline).overdue = bool(c.waits[kind.value].get("overdue"))  # step resumes
        self.desk.inbox = {DecisionKind(k): Decision.model_validate(d) for k, d in c.inbox.items()}
        self.runs, self.throttle.dropped = c.runs, c.decisions_dropped
        self._resume_at = c.stage

    def _resuming_after(self, stage: str, order: Sequence[str]) -> bool:
        """In a continued run: whether it resumes at a stage after `stage` (whose step is then skipped)."""
        return self._resume_at is not None and order.index(stage) < order.index(self._resume_at)

    def _runs(self, stage: str, order: Sequence[str]) -> bool:
        """Whether the step that waits in `stage` runs: always, but in a continued run not the steps before
        the stage it resumes at (`order`: the process's stages along any path)."""
        if self._resuming_after(stage, order):
            return False
        self._resume_at = None
        return True

    async def _settle(self) -> None:
        """Every audit row under way is written before the run ends or continues as new. AUDIT_WITH_WAIT
        runs also write the rows of decisions that came while it waited for the handlers to finish (older
        runs ended with those still under way, and replay as they ran)."""
        while True:
            while self._audits:
                await self._audits.pop(0)
            await workflow.wait_condition(workflow.all_handlers_finished)
            if not (self._audits and self._audit_with_wait()):
                return

    def _event(self, event: str, text: str) -> None:
        self.timeline.append(compact(TimelineEvent(at=self.clock.now(), stage=str(self.stage), event=event, text=text)))

    # --- activities ----------------------------------------------------------------------------

    async def _deadline(
        self, rule_id: str, *, start: datetime | None = None, length: int | None = None, keep: bool = True,
        extended: bool = False,
    ) -> Deadline:
        deadline = await self._do(
            compute_deadline,
            self._deadline_request(rule_id, start=start, length=length, extended=extended),
            summary=f"Compute the {'extended ' if extended else ''}deadline of rule {rule_id} for sample "
                    f"{self.order.sample_no}",
            local=self._lean(),  # pure: a rule and the calendar
        )
        if keep:
            self.deadlines.append(deadline)
        return deadline

    def _deadline_request(
        self, rule_id: str, *, start: datetime | None, length: int | None, extended: bool = False
    ) -> DeadlineRequest:
        """What a deadline is computed from: the rule, from `start` (default: now on the sample's clock)."""
        return DeadlineRequest(rule_id=rule_id, start=start or self.clock.now(), length=length, extended=extended)

    def _audit_row(self, intake: Intake, via: str) -> AuditRow:
        """The audit row of one attempt, from what the desk made of it (the decision is not parsed again):
        the decision as validated, or for an input that is no decision only its summary."""
        receipt, decision = intake.receipt, intake.decision
        if decision is not None:
            actor, content = decision.actor.model_dump(mode="json"), decision.model_dump(mode="json")
        else:
            actor, content = {}, {"not_a_decision": intake.summary.model_dump() if intake.summary else None}
        record = DecisionRecord(
            workflow_id=workflow.info().workflow_id,
            request_id=receipt.request_id,
            kind=receipt.kind,
            outcome=receipt.outcome,
            accepted=receipt.accepted,
            reason=receipt.reason,
            actor=actor,
            decision=content,
            stage=str(self.stage),
            received_at=receipt.recorded_at,
            via=via,
        )
        # Which decision, in the event history (a client's update or signal carries no summary in this SDK).
        summary = (f"Audit trail: {receipt.kind}={receipt.outcome} by {decision.actor.role.value} "
                   f"{decision.actor.id} ({'accepted' if receipt.accepted else 'rejected'}, {via})"
                   if decision else f"Audit trail: an input that is no decision ({receipt.reason})")
        return AuditRow(record, summary)

    async def _audit(self, intake: Intake, via: str) -> None:
        await self._write_audit(self._audit_row(intake, via))

    async def _write_audit(self, row: AuditRow) -> None:
        """Write one audit row. Newer runs write it as a local activity in the workflow task that answers the
        caller, so that the answer is sent with the row written; a write slower than AUDIT_FUSE goes the long
        way, as an activity, and the answer leaves without it (the write is idempotent: a local write that
        did land is found, not doubled)."""
        if not self._local_audit():
            await self._do(RecordActivities.record_decision, row.record, summary=row.summary)
            return
        try:
            await call(RecordActivities.audit_decision, row.record, summary=row.summary, local=True,
                       start_to_close=AUDIT_FUSE, retry_policy=AUDIT_ONCE)
        except (ActivityError, FailureError):
            await self._long_way(row)

    async def _long_way(self, row: AuditRow) -> None:
        await self._do(RecordActivities.audit_decision, row.record, summary=f"{row.summary}; again, the local "
                       f"write having failed or taken over {AUDIT_FUSE.total_seconds():g} s")

    def _audit_later(self, row: AuditRow) -> None:
        """AUDIT_WITH_WAIT: the row goes with the next wait the process opens in this workflow task
        (`_take_unaudited`), else on its own in the same task. The process acts on the decision meanwhile: the
        answer still leaves with the row written, in one local activity where it took two."""
        self._unaudited.append(row)
        if self._audit_flusher is None:
            self._audit_flusher = asyncio.create_task(self._audit_the_rest())
            self._audits.append(self._audit_flusher)

    async def _audit_the_rest(self) -> None:
        """The rows no wait took: once everything else this task can run has run. The first condition pass
        is the one that wakes the process's own wait (checked in the order they were made); the second comes
        after the process has gone as far as it can (to its next local activity, timer or wait)."""
        await workflow.wait_condition(lambda: True)
        await workflow.wait_condition(lambda: True)
        self._audit_flusher = None
        await asyncio.gather(*(self._write_audit(row) for row in self._take_unaudited()))

    def _take_unaudited(self) -> list[AuditRow]:
        """The queued audit rows, taken by whichever writes them: the wait about to open, or
        `_audit_the_rest` (AUDIT_WITH_WAIT: none in older runs)."""
        rows, self._unaudited = self._unaudited, []
        return rows

    async def _audited_with_wait(self, rows: list[AuditRow], activity: Callable[..., Awaitable[T]],
                                 arg_with: Callable[[list[DecisionRecord]], Any], summary: str) -> T:
        """Run the local activity that opens a wait, `arg_with(records)` writing `rows` in it too. With rows
        it has the audit row's fuse: past it, the rows go the long way and the wait opens once they are
        written (the caller's answer never waits longer than the fuse for them, and the process goes no
        further on a decision before its row is on the trail)."""
        if rows:
            try:
                return await call(activity, arg_with([r.record for r in rows]), local=True, start_to_close=AUDIT_FUSE,
                                  retry_policy=AUDIT_ONCE, summary=f"{summary}, with the audit rows of "
                                  + "; ".join(r.summary.removeprefix("Audit trail: ") for r in rows))
            except (ActivityError, FailureError):
                await asyncio.gather(*(self._long_way(row) for row in rows))
        return await self._do(activity, arg_with([]), summary=summary, local=True)

    async def _do(
        self, activity: Callable[..., Awaitable[T]] | str, arg: Any, *, summary: str, local: bool = False
    ) -> T:
        """Run a step's activity (`local`: as a local activity, for bookkeeping). One that fails for good
        (its retries spent, or data that can never be written) puts the process in `needs_operator`, visible
        to monitors and alerted, until an operator signals `operator_retry`: it never retries forever on its
        own, and the process never fails."""
        helped = False
        while True:
            try:
                result = await call(activity, arg, summary=summary, local=local)
                if helped and self._lean():
                    self._show()  # the operator's fix worked: NeedsOperator and the details say so at once
                return result
            except (ActivityError, FailureError) as err:
                # A local activity's failure arrives as its own error, not wrapped in an ActivityError.
                if not self._hardened() or not (local or isinstance(err, ActivityError)):
                    raise
                await self._wait_for_operator(summary, err)
                helped = True

    async def _wait_for_operator(self, step: str, err: FailureError) -> None:
        """Every step that failed waits for the same `operator_retry`; monitors see the first one."""
        generation = self._retries
        if self.needs_operator is None:
            cause = str(err.cause or err)
            self.needs_operator = clean_text(f"{step}: {cause}")
            self._needed_operator = True
            self._event("needs_operator", f"a step failed for good and waits for an operator: {self.needs_operator}")
            self._show()  # search attributes and details only: the write that failed may fail again
            # An alert for the operators, beside the wait (the outbox may be what fails: then only the
            # search attribute and details tell).
            self._audits.append(asyncio.create_task(self._alert_operator(step)))
        await workflow.wait_condition(lambda: self._retries > generation)

    async def _alert_operator(self, step: str) -> None:
        try:
            await call(
                RecordActivities.queue_outbox,
                OutboxMessage(
                    workflow_id=workflow.info().workflow_id, step_id=f"needs-operator-{self._retries}",
                    channel="operator", recipient="operator", subject=f"需人工处理: {self.order.sample_no} {step}",
                    payload={"step": step, "stage": str(self.stage), "retry_signal": "operator_retry"},
                    created_at=workflow.now(),
                ),
                summary=f"Alert the operators: {step} needs them",
            )
        except ActivityError:
            workflow.logger.warning("operator alert for %s not queued", step)

    @workflow.signal(name="operator_retry")
    def operator_retry(self, *args: Any) -> None:
        """An operator has mended what made a write fail (see `needs_operator`): try the steps again."""
        if self.needs_operator is not None:
            self._event("operator_retry", f"an operator asked to try again: {self.needs_operator}")
            self.needs_operator = None
            self._retries += 1

    async def _notice(self, template: str, step_id: str, extra: dict[str, Any]) -> None:
        if any(n.get("step_id") == step_id for n in self.notices):
            return  # issued already (a continued run resuming a wait that escalated)
        issued = self.clock.now()
        context = {
            **self._notice_context(),
            "order": self.order.model_dump(mode="json"),
            "issued_on": str(issued.date()),
            "authority": authority_label(self.order.region),
            "notice_no": f"{self.order.sample_no}-{len(self.notices) + 1:02d}",
            **extra,
        }
        estimated = sorted({str(d.due_date) for d in [*self.deadlines, *(w.deadline for w in self.desk.waits.values())]
                            if d.estimated})
        if estimated:  # templates mark these dates (`cn_due`)
            context["estimated_dates"] = estimated
        record = await self._do(
            NoticeActivities.render_notice,
            NoticeRequest(workflow_id=workflow.info().workflow_id, step_id=step_id, template=template,
                          context=context, issued_at=issued),
            summary=f"Render and store the {template} notice for sample {self.order.sample_no}",
            local=self._lean_steps(),
        )
        self.notices.append(record.model_dump(mode="json"))
        self._event("notice", f"notice issued: {record.title} (sha256 {record.sha256[:12]}…)")

    async def _outbox(self, channel: str, step_id: str, wait: Wait, subject: str) -> None:
        await self._do(
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
        receipt = await self._do(
            OutboundActivities.hand_over,
            Handover(workflow_id=workflow.info().workflow_id, step_id=step_id, system=system, action=action,
                     recipient=recipient, subject=subject, payload=payload, created_at=workflow.now()),
            summary=f"Hand over to {system}: {subject}",
        )
        self._event("handover", f"{system}: {subject} ({receipt.reference})")
        return receipt

    async def _recorded_hand_over(
        self, system: str, action: str, step_id: str, recipient: str, subject: str, basis: str,
        payload: dict[str, Any],
    ) -> None:
        """A hand-over of result handling (Order 18 ch. 6) through the outbox, with its own record in
        `result_handovers`; each once, keyed by workflow id and step."""
        receipt = await self._hand_over(system, action, step_id, recipient, subject,
                                        {"sample_no": self.order.sample_no, "basis": basis, **payload})
        await self._do(ResultHandlingRecords.record_result_handover, ResultHandoverRecord(
            workflow_id=workflow.info().workflow_id, step_id=step_id, sample_no=self.order.sample_no,
            action=action, recipient=recipient, reference=receipt.reference, basis=basis, data=payload,
            at=self.clock.now(),
        ), summary=f"Record the hand-over {action} of sample {self.order.sample_no}")
