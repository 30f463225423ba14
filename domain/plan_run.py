"""Running a sampling plan (workflows/plan.py): what the plan workflow is started with, how it is amended,
what its progress query answers, and how a schedule's firing becomes a plan of its period.

The plan as its organiser writes it and its draw are `domain/plans.py`; this module is the workflow's side."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.bounds import Choice, Code, Text
from domain.decisions import Actor, Id, Signature
from domain.plans import DrawnSample, PlanSpec
from domain.policy import DeploymentPolicy
from domain.signing import Signed
from domain.windows import CHINA

PLAN_PREFIX = "plan-"
SCHEDULE_PREFIX = "plan-schedule-"
FOLLOW_UP_SUFFIX = "-FU"
# Orders added by one amendment: an update's payload is taken up to 64 KiB (domain/intake.py), a few dozen
# orders; a larger addition is a new draw (`draw` in the amendment).
MAX_ADDED_ORDERS = 40
MAX_CANCELLED = 1000
MAX_DRAW_ADDITION = 10_000
KEEP_RECEIPTS = 200  # amendment receipts a plan remembers across continue-as-new (repeats answer the first)


def plan_workflow_id(plan_id: str) -> str:
    return f"{PLAN_PREFIX}{plan_id}"


def schedule_id(name: str) -> str:
    return f"{SCHEDULE_PREFIX}{name}"


class PlanStage(StrEnum):
    """The plan's `Stage` search attribute (with `ProcessKind = 'plan'`) and its progress query's stage."""

    DRAWING = "drawing"
    STARTING = "starting"  # samples are being started at the plan's rate
    RUNNING = "running"  # every sample started; waiting for their verdicts
    CLOSED = "closed"  # summary stored; a special campaign may still wait to start its follow-up
    FOLLOW_UP_STARTED = "follow_up_started"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanOptions(_Strict):
    """How the workflow runs a plan, beside what the plan is (PlanSpec)."""

    progress_every_seconds: float = Field(default=60.0, ge=0.1, le=86_400,
                                          description="real seconds between two reads of the samples' records")
    follow_up_after_days: int | None = Field(
        default=None, ge=0, le=3650,
        description="special campaigns: start the follow-up plan of failed enterprises this many days (on the "
                    "plan's clock) after the plan closes; none: 90 for a special campaign, never otherwise")
    continue_after_events: int = Field(default=5000, ge=200, le=40_000,
                                       description="continue as new past this many history events")

    def follow_up_delay(self, spec: PlanSpec) -> timedelta | None:
        if spec.follow_up_of is not None:  # a follow-up plan has no follow-up of its own
            return None
        days = self.follow_up_after_days
        if days is None and spec.task_type.value == "special":
            days = 90
        return None if days is None else timedelta(days=days) / spec.time_scale


class PlanInput(_Strict):
    spec: PlanSpec
    options: PlanOptions = PlanOptions()


# --- a schedule's firing -------------------------------------------------------------------------------


class Every(StrEnum):
    YEAR = "year"
    HALF = "half"
    QUARTER = "quarter"
    MONTH = "month"


def period_of(at: datetime, every: Every) -> str:
    """The period a moment falls in, China time: 2027, 2027H1, 2027Q1, 2027M01."""
    day = at.astimezone(CHINA).date()
    return {
        Every.YEAR: f"{day.year}",
        Every.HALF: f"{day.year}H{1 if day.month <= 6 else 2}",
        Every.QUARTER: f"{day.year}Q{(day.month - 1) // 3 + 1}",
        Every.MONTH: f"{day.year}M{day.month:02d}",
    }[every]


def period_end(period: str) -> datetime:
    """The moment a period ends (the next period's first midnight, China time)."""
    year = int(period[:4])
    months = {"": 12, "H": 6, "Q": 3, "M": 1}[period[4:5]]
    first = 1 if len(period) == 4 else {"H": lambda n: 6 * (n - 1) + 1, "Q": lambda n: 3 * (n - 1) + 1,
                                        "M": lambda n: n}[period[4]](int(period[5:]))
    month = first + months
    end = date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
    return datetime.combine(end, datetime.min.time(), tzinfo=CHINA)


class ScheduledPlan(_Strict):
    """What a plan schedule (`spotcheck plan schedule`) starts at each firing: the plan's template with
    `plan_id` a prefix and `period` left out; the firing fills in the period it falls in, and the plan id
    `<prefix>-<period>`, so each quarter is a new plan and a second firing in one quarter starts nothing."""

    template: dict[str, Any] = Field(description="a PlanSpec without its period; plan_id is the prefix")
    every: Annotated[Every, Choice] = Every.QUARTER
    options: PlanOptions = PlanOptions()

    def fill(self, at: datetime) -> PlanInput:
        """The plan of the period `at` falls in; a ValidationError naming the field when the template is bad."""
        period = period_of(at, self.every)
        spec = {**self.template, "plan_id": f"{self.template.get('plan_id')}-{period}", "period": period}
        return PlanInput(spec=PlanSpec.model_validate(spec), options=self.options)


# --- amendments ----------------------------------------------------------------------------------------


class DrawMore(_Strict):
    """Add samples from a new draw of the plan (another seed, the given number of batches)."""

    budget_batches: int = Field(ge=1, le=MAX_DRAW_ADDITION, strict=True)
    seed: int = Field(ge=0, le=2**63 - 1, strict=True)


class Amendment(_Strict):
    """An organiser's change to a running plan (update `amend`): add samples (explicit drawn samples or a new
    draw) or cancel samples. A sample not started yet is never started; a started one that is still running
    is terminated (its history keeps the reason and the sender); a closed one is left as it is."""

    request_id: Id = Field(description="a repeat of the same request id answers the first receipt")
    action: Annotated[Literal["add", "cancel"], Choice]
    reason: Text = Field(min_length=1)
    sender: Actor
    samples: list[DrawnSample] | None = Field(default=None, max_length=MAX_ADDED_ORDERS)
    draw: DrawMore | None = None
    sample_nos: list[Code] | None = Field(default=None, max_length=MAX_CANCELLED)
    signature: Signature | None = Field(
        default=None, description="proof of the sender, for the plan's workflow id (AMENDMENT_SIGNING, domain/signing.py); "
        "required where the deployment requires signatures")

    @model_validator(mode="after")
    def _what(self) -> Amendment:
        if self.action == "add" and (self.samples is None) == (self.draw is None):
            raise ValueError("samples: an addition gives either samples or draw")
        if self.action == "cancel" and not self.sample_nos:
            raise ValueError("sample_nos: a cancellation names the samples")
        return self


# What an amendment's signature covers: its own tag, so a decision's signature never passes as an amendment's.
AMENDMENT_SIGNING = Signed("spotcheck-amendment/1", "amendment", Amendment, "plan")


class AmendmentOutcome(BaseModel):
    added: int = 0
    skipped: list[str] = Field(default_factory=list, description="sample numbers already in a plan")
    cancelled: list[str] = Field(default_factory=list, description="not started: will never start")
    terminated: list[str] = Field(default_factory=list, description="started and running: terminated")
    left: list[str] = Field(default_factory=list, description="already closed, already cancelled or not of the plan")
    next_seq: int | None = Field(default=None, description="an addition: one past the plan's largest seq now")


class AmendmentRecord(BaseModel):
    """One amendment as `plan_amend` applies and records it (refused ones: `problem` and a summary only)."""

    plan_id: str
    request_id: str
    action: str
    accepted: bool
    amendment: Amendment | None = None
    problem: str | None = None
    sender: dict[str, Any] | None = None
    key_id: str | None = Field(default=None, description="the key whose signature proved the sender, if one did")
    payload: dict[str, Any] = Field(default_factory=dict)
    received_at: datetime


class AmendmentReceipt(BaseModel):
    request_id: str
    accepted: bool
    problem: str | None = None
    outcome: AmendmentOutcome | None = None
    recorded_at: datetime


# --- drawing, starting, progress -----------------------------------------------------------------------


class DrawCounts(BaseModel):
    """What the draw activity gives back (the draw itself stays in PostgreSQL)."""

    drawn: int
    next_seq: int = Field(description="one past the largest seq of the plan's samples")
    excluded: int = 0
    skipped: list[str] = Field(default_factory=list, description="sample numbers already in another plan")
    by_stratum: dict[str, dict[str, int]] = Field(default_factory=dict)


class StartBatch(BaseModel):
    plan_id: str
    from_seq: int
    to_seq: int  # exclusive
    concurrency: int = 64


class BatchResult(BaseModel):
    started: int = 0
    already: int = 0  # found started (a retried batch, or started by hand): counted as started


class Counts(BaseModel):
    """A plan's samples by where they are. `started` includes samples cancelled after their start;
    the rest count samples that were not cancelled."""

    drawn: int = 0
    not_started: int = 0
    started: int = 0
    cancelled: int = 0
    sampling: int = 0  # started; sampling or in transit (or its first record not written yet)
    in_testing: int = 0  # received, testing or re-testing
    passed: int = 0
    failed: int = 0  # final fails
    provisional_fail: int = 0  # fails open to objection
    refused: int = 0
    overdue: int = 0  # not final, a wait past its deadline

    @property
    def final(self) -> int:
        return self.passed + self.failed + self.refused + self.cancelled

    def plus(self, other: Counts) -> Counts:
        return Counts(**{k: getattr(self, k) + getattr(other, k) for k in Counts.model_fields})


class PlanProgress(BaseModel):
    """The progress query's answer: counts read from the samples' records (`samples`, kept by each sample's
    projections) `as_of` the time they were read, in total and by each stratum dimension's values."""

    plan_id: str
    stage: str = PlanStage.DRAWING.value
    as_of: datetime | None = None
    totals: Counts = Counts()
    by_stratum: dict[str, dict[str, Counts]] = Field(default_factory=dict)
    start_requested: int = 0  # samples the workflow has had started so far (live, not as of)
    end_at: datetime | None = Field(default=None, description="the plan's end: it closes then at the latest")

    @property
    def done(self) -> bool:
        t = self.totals
        return t.drawn > 0 and t.not_started == 0 and t.final >= t.drawn


def fold_strata(rows: Iterable[tuple[Mapping[str, str], Counts]]) -> tuple[Counts, dict[str, dict[str, Counts]]]:
    """Totals and counts by each dimension's value from counts per whole stratum (one row per stratum)."""
    totals = Counts()
    by: dict[str, dict[str, Counts]] = {}
    for stratum, counts in rows:
        totals = totals.plus(counts)
        for dimension, value in stratum.items():
            values = by.setdefault(str(dimension), {})
            values[str(value)] = values.get(str(value), Counts()).plus(counts)
    return totals, {d: dict(sorted(v.items())) for d, v in sorted(by.items())}


class PlanClosing(BaseModel):
    plan_id: str
    summary: PlanProgress
    closed_at: datetime


class PlanState(BaseModel):
    """What a plan carries into its next run (continue-as-new): small, whatever the plan's size."""

    input: PlanInput
    drawn: DrawCounts | None = None
    next_seq: int = 0  # samples below this seq have been through a start batch
    start_requested: int = 0
    end_at: datetime | None = None
    receipts: dict[str, AmendmentReceipt] = Field(default_factory=dict)
    progress: PlanProgress | None = None
    closed_at: datetime | None = None
    follow_up_at: datetime | None = None
    follow_up_started: bool = False
    runs: int = 1
    # The deployment's policy as read at the plan's start (signatures required?), kept across runs so that a
    # continued run and a replay never depend on today's worker settings. None only before it is read.
    policy: DeploymentPolicy | None = None


def follow_up_spec(spec: PlanSpec) -> PlanSpec:
    """The follow-up plan of a special campaign: the failed enterprises of `spec`'s plan sampled again."""
    return spec.model_copy(update={"plan_id": f"{spec.plan_id}{FOLLOW_UP_SUFFIX}"[:64],
                                   "follow_up_of": spec.plan_id})

