"""What workflows hand to the activities and get back from them: the rows and requests of the record,
notice, register and branch-record activities, and the hand-over to outside systems. Every write carries its
idempotency key: the workflow id plus a step id (or the branch's workflow id) stable across retries and
replays. A "current state" row also carries its time (`updated_at`, `at`): a write older than the stored
row changes nothing (activities/db.py `upsert`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, Field

from domain.clock import to_real
from domain.decisions import EvidenceRef
from domain.models import SampleOrder
from domain.policy import DeploymentPolicy
from domain.product_case import CaseFail, ProductKey
from domain.rules import Deadline, DeadlineRequest
from domain.status import Awaiting

# The time of a write, for the rows whose model has no time of its own: the workflow's clock
# (`workflow.now()`, never the sample clock, which runs faster under a time scale); left None, the activity
# uses the time it was first scheduled, the same for every retry.
WrittenAt = Annotated[
    datetime | None,
    Field(description="when this write was made (workflow.now()); None: when the activity was first scheduled"),
]


class SampleProjection(BaseModel):
    """The queryable current state of one sample (the `samples` table)."""

    sample_no: str
    workflow_id: str
    seq: int = Field(description="monotonic per workflow: an older projection never overwrites a newer one")
    stage: str
    verdict: str
    order: dict[str, Any] | None = Field(
        default=None, description="the order, with the first projection only: it does not change after"
    )
    awaiting_kind: str | None = None
    awaiting_role: str | None = None
    next_deadline: datetime | None = None
    overdue: bool = False
    updated_at: datetime

    def showing(self, state: ProjectedState) -> SampleProjection:
        """This projection with the stage, verdict and first wait of `state`."""
        return self.model_copy(update=state.model_dump())


class ProjectedState(BaseModel):
    """What the `samples` record shows of a sample's state: a process writes the record again only when this
    changes."""

    stage: str
    verdict: str
    awaiting_kind: str | None = None
    awaiting_role: str | None = Field(default=None, description="the first wait's roles, comma-separated")
    next_deadline: datetime | None = Field(default=None, description="the earliest wait's real due time")
    overdue: bool = False

    @classmethod
    def of(cls, stage: str, verdict: str, awaiting: Sequence[Awaiting]) -> ProjectedState:
        first = min(awaiting, key=lambda a: a.due_at) if awaiting else None
        return cls(stage=stage, verdict=verdict, awaiting_kind=first.kind if first else None,
                   awaiting_role=",".join(first.roles) if first else None,
                   next_deadline=min((a.due_at for a in awaiting), default=None),
                   overdue=any(a.overdue for a in awaiting))


class DecisionRecord(BaseModel):
    """One line of the audit trail: a decision accepted or rejected, with actor and time."""

    workflow_id: str
    request_id: str
    kind: str
    outcome: str
    accepted: bool
    reason: str | None = None
    actor: dict[str, Any]
    decision: dict[str, Any] = Field(description="the decision as received (raw when malformed)")
    stage: str
    received_at: datetime
    via: str = Field(description="signal or update")


class AuditedDecision(BaseModel):
    """Which audit row a write stands for, in the history (a local activity's input is not recorded, its
    result is), and whether this write made it or found it made."""

    request_id: str
    accepted: bool
    written: bool


class WaitOpening(BaseModel):
    """A sample opening a wait, as one local activity (`RecordActivities.open_wait`): the wait's deadline,
    and the `samples` record as it is once the wait is open (its due time known only from the deadline)."""

    deadline: DeadlineRequest
    kind: str
    roles: list[str]
    others: list[Awaiting] = Field(description="the waits open beside it (its own and its branches')")
    clock_origin: datetime
    time_scale: float = Field(description="as the sample asked it, when `read_policy`")
    projection: SampleProjection = Field(description="stage, verdict, seq and time; the waits are filled in")
    read_policy: bool = Field(default=False, description="the sample's first wait: the deployment policy is "
                              "read here too (one local activity less at the start)")
    audits: list[DecisionRecord] = Field(default_factory=list, description="audit rows written first, in the same "
                                         "local activity: the decisions taken in the task that opens the wait")

    def opened(self, deadline: Deadline, policy: DeploymentPolicy | None = None
               ) -> tuple[SampleProjection, ProjectedState]:
        """The record to write once `deadline` (and the policy read with it, if any) is known, and the state it
        shows."""
        scale = policy.time_scale_for(self.time_scale) if policy is not None else self.time_scale
        wait = Awaiting.of(self.kind, self.roles, deadline, to_real(self.clock_origin, scale, deadline.due))
        state = ProjectedState.of(self.projection.stage, self.projection.verdict, [*self.others, wait])
        return self.projection.showing(state), state


class WaitOpened(BaseModel):
    deadline: Deadline
    projected: ProjectedState = Field(description="what the `samples` record now shows")
    policy: DeploymentPolicy | None = Field(default=None, description="when asked (`read_policy`)")
    audited: list[AuditedDecision] = Field(default_factory=list, description="the `audits` written, in order")


class NoticeRequest(BaseModel):
    """Render one official document from a template and store it with its hash."""

    workflow_id: str
    step_id: str
    template: str = Field(description="template name under templates/, e.g. inspection_result")
    context: dict[str, Any]
    issued_at: datetime


class NoticeRecord(BaseModel):
    workflow_id: str
    step_id: str
    template: str
    title: str
    sha256: str
    notice_id: int


class OutboxMessage(BaseModel):
    """A message for an outside party (reminder, escalation, notice delivery), sent by an adapter later."""

    workflow_id: str
    step_id: str
    channel: str = Field(description="e.g. reminder, escalation, notice")
    recipient: str
    subject: str
    payload: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class Handover(BaseModel):
    """One message to an outside system, keyed by workflow id + step id so a retry never sends twice."""

    workflow_id: str
    step_id: str
    system: str = Field(description="credit_publicity, platform, enforcement, certification, public_security, …")
    action: str = Field(description="what is asked, e.g. publish_listing, delist, transfer_case")
    recipient: str
    subject: str
    payload: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class HandoverReceipt(BaseModel):
    system: str
    reference: str = Field(description="the outside system's reference, or outbox:<id> when queued")
    queued: bool = Field(description="True when left in the outbox for a dispatcher")


# --- the registers (activities/registers.py) ---------------------------------------------------------


class RegisterRequest(BaseModel):
    """What every `register_*` activity takes: the sample's final result on a date."""

    workflow_id: str = Field(description="the sample's workflow id, sample-<no>")
    order: SampleOrder
    verdict: str = Field(description="the final verdict: fail (or pass for the bulletin)")
    failed_items: list[dict[str, Any]] = Field(default_factory=list, description="FailedItem dicts")
    on: date = Field(description="the date of the final verdict: bulletin quarter, shop-fail year")
    report_no: str | None = None
    at: datetime | None = Field(default=None, description="when recorded; default: when first scheduled")


# --- the branches' records (activities/<branch>_records.py) -----------------------------------------


class RectificationRow(BaseModel):
    workflow_id: str
    sample_no: str
    ordered_at: datetime = Field(description="the order notice issued (sample clock)")
    due: datetime = Field(description="the rectification deadline in force, extension included")
    extension_outcome: str | None = Field(default=None, description="granted / refused")
    extended_days: int | None = None
    extension_decided_at: datetime | None = None
    report_at: datetime | None = None
    review_outcome: str | None = Field(default=None, description="accepted / rejected")
    review_reason: str | None = None
    follow_up_sample_no: str | None = None
    closed_outcome: str | None = Field(
        default=None, description="accepted / rejected / missed (before Order 18 handling); accepted / "
        "corrected_after_announcement / corrected_after_suspension / revocation_proposed")
    # Order 18 ch. 6 (runs with patch order18-result-handling)
    re_inspection_due: datetime | None = Field(default=None, description="复查 due: 75 days from the order")
    re_inspection_outcome: str | None = Field(default=None, description="the latest 复查: pass / fail")
    announced_on: date | None = Field(default=None, description="the provincial 公告 of a failed 复查")
    announcement_no: str | None = None
    second_window_opens: datetime | None = Field(default=None, description="60 days after the 公告")
    second_window_closes: datetime | None = Field(default=None, description="90 days after the 公告")
    suspension_days: int | None = Field(default=None, description="整顿 period set in the order")
    suspension_ends: datetime | None = None
    updated_at: datetime


class ReInspectionRow(BaseModel):
    """One 复查 (Order 18 Art. 47-49), append-only, keyed by the branch's workflow id and its round."""

    workflow_id: str
    sample_no: str
    round: str = Field(description="first (Art. 47) / second (Art. 48) / after_suspension (Art. 48)")
    due: datetime
    decided_at: datetime
    outcome: str = Field(description="pass / fail")
    reason: str | None = None
    report_no: str | None = None
    sample_provided_free: bool = Field(description="the 复查 sample was provided free by the party (Art. 49)")
    request_id: str


class ResultHandoverRecord(BaseModel):
    """A hand-over of result handling (Order 18 ch. 6) with its own record beside its outbox message:
    通报 to the producer's bureau (Art. 44 ¶2), report for the provincial 公告 (Art. 47), 停业整顿 to enforcement
    (Art. 48), licence-revocation proposal (Art. 48). Append-only, keyed by workflow id and step."""

    workflow_id: str
    step_id: str
    sample_no: str
    action: str
    recipient: str
    reference: str = Field(description="the outbox reference of the hand-over")
    basis: str
    data: dict[str, Any] = Field(default_factory=dict)
    at: datetime


class TermsRequest(BaseModel):
    start: AwareDatetime = Field(description="when the order was served: picks the rule pack in force")


class RectificationTerms(BaseModel):
    extension_length: int = Field(description="the most days one extension may add")
    extension_request_before: int = Field(description="an extension is decided at least this many days before expiry")
    extension_note: str | None = None


class CreditFailCount(BaseModel):
    credit_code: str
    sample_no: str = Field(description="this sample: its fail counts even before the sample's row is there")
    as_of: AwareDatetime
    months: int = Field(gt=0, description="look-back period")


class CreditListing(BaseModel):
    """The listing as first published."""

    workflow_id: str
    sample_no: str
    credit_code: str
    enterprise_name: str
    published_at: AwareDatetime
    publicity_due: AwareDatetime
    listed_until: AwareDatetime = Field(description="publicity ends by itself: the tier's longest or the opinion's year")
    dishonesty_tier: str | None = Field(default=None, description="minor / general / serious; None before tiers")
    repair_from: AwareDatetime | None = Field(default=None, description="end of the shortest publicity period")
    updated_at: WrittenAt = None


class CreditListingChange(BaseModel):
    """A later change to the listing; a field left None keeps its recorded value (except that a new
    application clears the previous repair reason)."""

    workflow_id: str
    at: AwareDatetime
    repair_applied_at: AwareDatetime | None = None
    repair_outcome: str | None = None
    repair_reason: str | None = None
    removed_at: AwareDatetime | None = None
    removal_reason: str | None = None
    serious_dishonesty: str | None = None
    serious_basis: str | None = None


class EnforcementCaseChange(BaseModel):
    """The case's identity (sent with every write, so the first write to arrive creates the row) and what
    this step changes."""

    workflow_id: str
    sample_no: str | None = Field(description="null for a merged case")
    merged_samples: list[dict[str, Any]] | None = None
    reason: str
    at: AwareDatetime = Field(description="when the step was recorded (workflow time)")
    handed_over_at: AwareDatetime | None = None
    handover_reference: str | None = None
    filing_due: date | None = None
    filing_outcome: str | None = None
    case_no: str | None = None
    outcome_due: date | None = None
    outcome: str | None = None
    fine_amount: Decimal | None = None
    heavy: bool | None = None
    crime_decision: str | None = None
    transferred_at: AwareDatetime | None = None
    transfer_receipt_at: AwareDatetime | None = None
    followed_case: str | None = None
    closed_outcome: str | None = None


class RecallRow(BaseModel):
    workflow_id: str
    sample_no: str
    assessment: str | None = Field(default=None, description="defect / no_defect")
    recall_type: str | None = Field(default=None, description="voluntary / ordered")
    plan_at: datetime | None = None
    progress: list[dict[str, Any]] = Field(default_factory=list, description="progress reports, in order")
    completed_at: datetime | None = None
    summary_at: datetime | None = None
    closed_outcome: str | None = None
    updated_at: datetime


class CertificateActionRow(BaseModel):
    workflow_id: str
    sample_no: str
    certificate_no: str
    body_notified_at: datetime | None = None
    handover_reference: str | None = None
    action: str | None = Field(default=None, description="suspended / revoked / none")
    reason: str | None = None
    decided_at: datetime | None = None
    updated_at: WrittenAt = None


class PlatformRequest(BaseModel):
    workflow_id: str
    sample_no: str
    platform: str
    shop: str
    listing_id: str
    requested_at: datetime
    handover_reference: str
    due: datetime
    key_listed: bool
    updated_at: WrittenAt = None


class PlatformClosing(BaseModel):
    workflow_id: str
    confirmation: str
    reason: str | None = None
    confirmed_at: datetime
    closed_outcome: str
    updated_at: WrittenAt = None


class LeadEntry(BaseModel):
    workflow_id: str
    sample_no: str
    lead_no: int
    type: str
    description: str
    evidence: list[EvidenceRef]
    routed_to: str
    recorded_at: datetime
    updated_at: WrittenAt = None


class LeadReferral(BaseModel):
    workflow_id: str
    handover_reference: str
    updated_at: WrittenAt = None


class LeadClosing(BaseModel):
    workflow_id: str
    outcome: str
    reason: str | None = None
    closed_at: datetime
    updated_at: WrittenAt = None


class CaseRecord(BaseModel):
    """What the product case writes after each change: its key, the fails it assessed, its merged case."""

    key: ProductKey
    fails: list[CaseFail] = Field(default_factory=list)
    merged_case_workflow_id: str | None = None
    merged_at: datetime | None = None
    closed_at: datetime | None = None
