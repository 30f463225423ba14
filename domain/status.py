"""What a sample's `status` query answers: stage, verdict, awaited decisions with deadlines, timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

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
    beyond_schedule: bool = False


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
    failed_items: list[dict] = Field(default_factory=list)
    notices: list[dict] = Field(default_factory=list)
    branches: list[BranchReport] = Field(default_factory=list, description="post-handling branches")
    producer_answer: str | None = Field(default=None, description="labelled producer: confirmed or denied")
    closed_waits: dict[str, str] = Field(
        default_factory=dict, description="decision kinds no longer taken, with why (e.g. window ended)"
    )
