"""What workflows hand to the record and notice activities. Every write carries its idempotency key:
the workflow id plus a step id that is stable across retries and replays."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class SampleProjection(BaseModel):
    """The queryable current state of one sample (the `samples` table)."""

    sample_no: str
    workflow_id: str
    seq: int = Field(description="monotonic per workflow: an older projection never overwrites a newer one")
    stage: str
    verdict: str
    order: dict[str, Any]
    awaiting_kind: str | None = None
    awaiting_role: str | None = None
    next_deadline: datetime | None = None
    overdue: bool = False
    updated_at: datetime


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
