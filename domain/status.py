"""What a sample's `status` query answers: stage, verdict, awaited decisions with deadlines, timeline."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, Field

from domain.rules import Deadline


class Awaiting(BaseModel):
    kind: str
    roles: list[str]
    rule_id: str
    title: str
    due: datetime = Field(description="the legal deadline on the sample's clock")
    due_at: datetime = Field(description="when the timer fires in real time (differs only with time_scale)")
    basis: str
    overdue: bool = False
    # The deadline is an estimate (its year's holiday schedule is not known); `beyond_schedule` in old payloads.
    estimated: bool = Field(default=False, validation_alias=AliasChoices("estimated", "beyond_schedule"))

    @classmethod
    def of(cls, kind: str, roles: list[str], deadline: Deadline, due_at: datetime, overdue: bool = False) -> Awaiting:
        """A wait for `kind` from `roles` until `deadline`, its timer firing at `due_at` (real time)."""
        return cls(kind=kind, roles=roles, rule_id=deadline.rule_id, title=deadline.title, due=deadline.due,
                   due_at=due_at, basis=deadline.basis, overdue=overdue, estimated=deadline.estimated)


class TimelineEvent(BaseModel):
    at: datetime = Field(description="on the sample's clock (compressed by time_scale in demos)")
    stage: str
    event: str = Field(description="machine-readable event name, e.g. stage, decision, rejected, escalated")
    text: str


class BranchReport(BaseModel):
    """A branch's state as its sample sees it; also the branch workflow's result."""

    branch: str
    workflow_id: str
    stage: str
    closed: bool = False
    outcome: str | None = None
    awaiting: list[Awaiting] = Field(default_factory=list)
    # Set when the branch's end calls for an enforcement lead (missed rectification, refused delisting, …)
    enforcement_lead: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    # The order the branch told its sample in (run × 10⁹ + count): signals sent in one workflow task can
    # arrive in another order, and a later report must not be overwritten by an older one. None: a branch's
    # result, or a report from a run before the field existed.
    seq: int | None = None



TIMELINE_PAGE = 200  # timeline events a status query returns at most (the newest unless a page is asked for)


class TimelinePage(BaseModel):
    """Which part of the timeline a `status` query asks for: `{"timeline_from": n, "timeline_limit": m}`."""

    timeline_from: int | None = Field(default=None, ge=0, description="index of the first event; default: newest")
    timeline_limit: int = Field(default=TIMELINE_PAGE, ge=0, le=TIMELINE_PAGE)

    @classmethod
    def of(cls, args: tuple[Any, ...]) -> TimelinePage:
        """The page a query's arguments name; anything else gets the newest page (a query never fails)."""
        try:
            return cls.model_validate(args[0]) if len(args) == 1 and isinstance(args[0], dict) else cls()
        except ValueError:
            return cls()

    def cut(self, timeline: list[TimelineEvent]) -> tuple[int, list[TimelineEvent]]:
        start = max(0, len(timeline) - self.timeline_limit) if self.timeline_from is None else self.timeline_from
        return start, timeline[start:start + self.timeline_limit]


class SampleStatus(BaseModel):
    sample_no: str
    workflow_id: str
    summary: str
    stage: str
    verdict: str
    time_scale: float
    awaiting: list[Awaiting] = Field(default_factory=list)
    deadlines: list[Deadline] = Field(default_factory=list)
    timeline: list[TimelineEvent] = Field(default_factory=list)
    timeline_from: int = Field(default=0, description="index of the first timeline event shown")
    timeline_total: int = Field(default=0, description="events in the whole timeline (ask for a page to see more)")
    failed_items: list[dict] = Field(default_factory=list)
    notices: list[dict] = Field(default_factory=list)
    branches: list[BranchReport] = Field(default_factory=list, description="post-handling branches")
    producer_answer: str | None = Field(default=None, description="labelled producer: confirmed or denied")
    needs_operator: str | None = Field(default=None, description="a step that failed for good, awaiting an operator")
    decisions_dropped: int = Field(default=0, description="decisions over the run's limits, dropped unrecorded")
    closed_waits: dict[str, str] = Field(
        default_factory=dict, description="decision kinds no longer taken, with why (e.g. window ended)"
    )


class ProcessCarry(BaseModel):
    """What a decision process carries into its next run when it continues as new (same workflow id):
    everything it knows, so the new run goes on where the old one stopped (docs/design.md §8). Taken only
    at a wait, when nothing else is under way."""

    clock_origin: datetime
    time_scale: float
    policy: dict[str, Any]
    stage: str
    timeline: list[TimelineEvent] = Field(default_factory=list)
    deadlines: list[Deadline] = Field(default_factory=list)
    notices: list[dict[str, Any]] = Field(default_factory=list)
    evidence: list[dict[str, Any]] = Field(default_factory=list)
    receipts: dict[str, dict[str, Any]] = Field(default_factory=dict, description="accepted request ids")
    closed_waits: dict[str, str] = Field(default_factory=dict)
    waits: dict[str, dict[str, Any]] = Field(default_factory=dict, description="open waits: deadline, overdue")
    inbox: dict[str, dict[str, Any]] = Field(default_factory=dict, description="decisions taken, not yet acted on")
    runs: int = Field(default=1, description="runs so far")
    decisions_dropped: int = 0


class SampleCarry(ProcessCarry):
    """A sample's: also its branches as last reported, its verdict and result. Not while an awaited branch
    runs (its parent-close policy binds it to the run)."""

    branches: list[BranchReport] = Field(default_factory=list)
    seq: int = 0
    verdict: str = "pending"
    report_no: str | None = None
    failed_items: list[dict[str, Any]] = Field(default_factory=list)
    producer_answer: str | None = None
    sampled_on: date | None = None
    window_start: datetime | None = None
