"""The decision desk: what a process waits for, and the one validation every decision goes through,
whether it arrives as a signal or an update. Pure state, no I/O: the workflow records the outcome.

A decision is parsed once, here (`take`); the workflow audits what `take` answered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.decisions import (
        Decision,
        DecisionKind,
        Receipt,
        decision_problem,
        parse_decision,
        role_names,
    )
    from domain.intake import InputSummary, clean_text, summarise, token
    from domain.rules import Deadline
    from domain.status import Awaiting


@dataclass
class Wait:
    kind: DecisionKind
    deadline: Deadline
    due_at: datetime  # real time the timer fires
    overdue: bool = False
    movable: bool = False  # its timers follow a recomputed deadline (DecisionProcess._until_deadline)

    @property
    def roles(self) -> list[str]:
        return role_names(self.kind)

    def to_awaiting(self) -> Awaiting:
        return Awaiting.of(self.kind.value, self.roles, self.deadline, self.due_at, self.overdue)


@dataclass
class Intake:
    """The desk's answer to one arriving decision: the parsed decision (None when malformed), the receipt
    the sender gets, whether it repeats a request id already accepted, and for an input that is not a
    decision the summary kept of it instead of its content."""

    decision: Decision | None
    receipt: Receipt
    duplicate: bool = False
    summary: InputSummary | None = None


def _workflow_uuid() -> str:
    return str(workflow.uuid4())


@dataclass
class DecisionDesk:
    purchased: bool
    waits: dict[DecisionKind, Wait] = field(default_factory=dict)
    inbox: dict[DecisionKind, Decision] = field(default_factory=dict)
    receipts: dict[str, Receipt] = field(default_factory=dict)
    # Why a kind is no longer taken, e.g. an objection after its window: a clearer answer than "not awaited".
    closed: dict[DecisionKind, str] = field(default_factory=dict)
    # A process's own rules on top of the common ones (e.g. an extension asked too late); None when fine.
    extra_check: Callable[[Decision], str | None] | None = None
    # Proof of the sender (signature, organisation): checked first, before anything about the sample is said.
    sender_check: Callable[[Decision], str | None] | None = None
    # Request id for a decision too malformed to carry one (deterministic inside a workflow).
    new_id: Callable[[], str] = _workflow_uuid

    # --- waits ---------------------------------------------------------------------------------

    def open(self, kind: DecisionKind, deadline: Deadline, due_at: datetime) -> Wait:
        """Start (or restart with a new deadline) waiting for `kind`."""
        wait = Wait(kind=kind, deadline=deadline, due_at=due_at)
        self.waits[kind] = wait
        self.closed.pop(kind, None)
        return wait

    def shut(self, kind: DecisionKind, why: str | None = None) -> None:
        """Stop waiting for `kind`; with `why`, a late decision of that kind is refused with it."""
        self.waits.pop(kind, None)
        if why is not None:
            self.closed[kind] = why

    def arrived(self, *kinds: DecisionKind) -> bool:
        return any(k in self.inbox for k in kinds)

    def open_kinds(self) -> list[DecisionKind]:
        # A kind already answered but not yet consumed by the workflow is no longer open.
        return [k for k in self.waits if k not in self.inbox]

    def awaiting(self) -> list[Awaiting]:
        return [w.to_awaiting() for w in self.waits.values()]

    # --- decisions in --------------------------------------------------------------------------

    def problem(self, raw: Any) -> tuple[Decision | None, Receipt | None, str | None]:
        """(decision, first receipt when a repeat, reason when it must be rejected)."""
        decision, malformed = parse_decision(raw)
        if decision is None:
            return None, None, malformed
        sender = self.sender_check(decision) if self.sender_check is not None else None
        if sender:
            return decision, None, sender
        first = self.receipts.get(decision.request_id)
        if first is not None:
            return decision, first, None
        problem = decision_problem(decision, self.open_kinds(), purchased=self.purchased, closed_reason=self.closed)
        if problem is None and self.extra_check is not None:
            problem = self.extra_check(decision)
        return decision, None, problem

    def take(self, raw: Any, *, stage: str, now: datetime) -> Intake:
        """Validate once; an accepted decision goes to the inbox for the waiting process to take."""
        decision, first, reason = self.problem(raw)
        if first is not None:
            return Intake(decision, first, duplicate=True)
        if decision is None:
            return self.refuse((raw,), reason or "malformed decision", stage=stage, now=now)
        receipt = Receipt(request_id=decision.request_id, kind=decision.kind.value, outcome=decision.outcome,
                          accepted=reason is None, reason=clean_text(reason) if reason else None, stage=stage,
                          recorded_at=now)
        if reason is None:
            self.inbox[decision.kind] = decision
            self.receipts[decision.request_id] = receipt
        return Intake(decision, receipt)

    def refuse(
        self, args: tuple[Any, ...], reason: str, *, stage: str, now: datetime, kind: str | None = None
    ) -> Intake:
        """An input that is not a decision at all: a receipt naming why, and a summary instead of it."""
        raw = args[0] if len(args) == 1 else None
        receipt = Receipt(
            request_id=_raw_request_id(raw) or self.new_id(), kind=kind or token(_raw_get(raw, "kind")),
            outcome=token(_raw_get(raw, "outcome")), accepted=False, reason=clean_text(reason), stage=stage,
            recorded_at=now,
        )
        return Intake(None, receipt, summary=summarise(args))

    def pop(self, kind: DecisionKind) -> Decision:
        """The decision the process waited for; its wait ends."""
        self.waits.pop(kind, None)
        return self.inbox.pop(kind)


def _raw_get(raw: Any, key: str) -> Any:
    return raw.get(key) if isinstance(raw, dict) else None


def _raw_request_id(raw: Any) -> str | None:
    """A malformed decision's request id, when it is a clean one (it keys the audit row)."""
    value = _raw_get(raw, "request_id")
    return value if isinstance(value, str) and 0 < len(value) <= 128 and clean_text(value) == value else None
