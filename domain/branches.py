"""Post-handling branches: what a branch is started with and what it reports back to its sample.

Each consequence of a final fail (rectification, credit, enforcement, recall, certification, platform,
leads, …) runs as its own child workflow `sample-<no>-<branch>`. It keeps its sample informed with a
`branch_update` signal carrying a BranchReport, so the sample's status, search attributes and record show
every branch's stage and next deadline."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from domain.decisions import EvidenceRef
from domain.models import SampleOrder
from domain.rules import Deadline
from domain.status import BranchReport, TimelineEvent


class Branch(StrEnum):
    RECTIFICATION = "rectification"
    CREDIT = "credit"
    ENFORCEMENT = "enforcement"
    RECALL = "recall"
    CERTIFICATION = "certification"
    LICENCE = "licence"
    PLATFORM = "platform"
    LEAD = "lead"
    PUBLICATION = "publication"


class BranchInput(BaseModel):
    branch: Branch
    order: SampleOrder
    sample_workflow_id: str
    clock_origin: datetime = Field(description="the sample's clock origin, so compressed dates agree")
    verdict: str
    failed_items: list[dict[str, Any]] = Field(default_factory=list)
    report_no: str | None = None
    evidence: list[EvidenceRef] = Field(default_factory=list)
    notices: list[dict[str, Any]] = Field(default_factory=list, description="the sample's notices (hashes)")
    context: dict[str, Any] = Field(default_factory=dict, description="branch-specific input")


class BranchStatus(BranchReport):
    """The branch workflow's own `status` query: its report plus its timeline and deadlines."""

    timeline: list[TimelineEvent] = Field(default_factory=list)
    deadlines: list[Deadline] = Field(default_factory=list)
    notices: list[dict[str, Any]] = Field(default_factory=list)


# Which branch takes a decision kind, for routing a decision sent to the sample number.
BRANCH_OF_KIND: dict[str, Branch] = {
    "rectification_extension": Branch.RECTIFICATION,
    "rectification_report": Branch.RECTIFICATION,
    "rectification_review": Branch.RECTIFICATION,
    "credit_repair_application": Branch.CREDIT,
    "credit_repair_acceptance": Branch.CREDIT,
    "credit_repair_review": Branch.CREDIT,
    "serious_dishonesty_review": Branch.CREDIT,
    "case_filing": Branch.ENFORCEMENT,
    "case_outcome": Branch.ENFORCEMENT,
    "crime_transfer_decision": Branch.ENFORCEMENT,
    "crime_transfer_receipt": Branch.ENFORCEMENT,
    "defect_assessment": Branch.RECALL,
    "recall_decision": Branch.RECALL,
    "recall_plan": Branch.RECALL,
    "recall_progress": Branch.RECALL,
    "recall_summary": Branch.RECALL,
    "certificate_action": Branch.CERTIFICATION,
    "delist_confirmation": Branch.PLATFORM,
    "lead_outcome": Branch.LEAD,
}


def branch_workflow_id(sample_workflow_id: str, branch: str, n: int | None = None) -> str:
    return f"{sample_workflow_id}-{branch}" + (f"-{n}" if n is not None else "")


__all__ = ["BRANCH_OF_KIND", "Branch", "BranchInput", "BranchReport", "BranchStatus", "branch_workflow_id"]
