"""The decision desk: what a sample waits for, and the one validation every decision goes through,
whether it arrives as a signal or an update. Pure state, no I/O: the workflow records the outcome."""

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
        roles_for,
    )
    from domain.rules import Deadline


@dataclass
class Wait:
    kind: DecisionKind
    deadline: Deadline
    due_at: datetime  # real time the timer fires
    overdue: bool = False

    @property
    def roles(self) -> list[str]:
        return sorted(r.value for r in roles_for(self.kind))


@dataclass
class Verdict:
    """The desk's answer to one arriving decision."""

    decision: Decision | None
    receipt: Receipt
    duplicate: bool = False


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

    def open_kinds(self) -> list[DecisionKind]:
        # A kind already answered but not yet consumed by the workflow is no longer open.
        return [k for k in self.waits if k not in self.inbox]

    def problem(self, raw: Any) -> tuple[Decision | None, Receipt | None, str | None]:
        """(decision, first receipt when a repeat, reason when it must be rejected)."""
        decision, malformed = parse_decision(raw)
        if decision is None:
            return None, None, malformed
        first = self.receipts.get(decision.request_id)
        if first is not None:
            return decision, first, None
        problem = decision_problem(decision, self.open_kinds(), purchased=self.purchased, closed_reason=self.closed)
        if problem is None and self.extra_check is not None:
            problem = self.extra_check(decision)
        return decision, None, problem

    def take(self, raw: Any, *, stage: str, now: datetime) -> Verdict:
        decision, first, reason = self.problem(raw)
        if first is not None:
            return Verdict(decision, first, duplicate=True)
        request_id = decision.request_id if decision else _raw_request_id(raw) or str(workflow.uuid4())
        receipt = Receipt(
            request_id=request_id,
            kind=decision.kind.value if decision else str(_raw_get(raw, "kind") or "?"),
            outcome=decision.outcome if decision else str(_raw_get(raw, "outcome") or "?"),
            accepted=reason is None,
            reason=reason,
            stage=stage,
            recorded_at=now,
        )
        if decision is not None and reason is None:
            self.inbox[decision.kind] = decision
            self.receipts[request_id] = receipt
        return Verdict(decision, receipt)


def _raw_get(raw: Any, key: str) -> Any:
    return raw.get(key) if isinstance(raw, dict) else None


def _raw_request_id(raw: Any) -> str | None:
    value = _raw_get(raw, "request_id")
    return str(value) if value else None
