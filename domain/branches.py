"""Post-handling branches: what a branch is started with and what it reports back to its sample.

Each consequence of a final fail (rectification, credit, enforcement, recall, certification, platform,
leads, …) runs as its own child workflow `sample-<no>-<branch>`. It keeps its sample informed with a
`branch_update` signal carrying a BranchReport, so the sample's status, search attributes and record show
every branch's stage and next deadline. The branch table and what starts each branch: docs/design.md §3."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from domain.decisions import PAYLOADS, DecisionKind, EvidenceRef, roles_for
from domain.models import SampleOrder
from domain.policy import DeploymentPolicy
from domain.rules import Deadline
from domain.status import BranchReport, ProcessCarry, TimelineEvent


class Branch(StrEnum):
    RECTIFICATION = "rectification"
    CREDIT = "credit"
    ENFORCEMENT = "enforcement"
    RECALL = "recall"
    CERTIFICATION = "certification"
    PLATFORM = "platform"
    LEAD = "lead"


ParentClose = Literal["terminate", "abandon"]


@dataclass(frozen=True)
class BranchSpec:
    """Everything the rest of Spotcheck knows about a branch; starting, routing `decide`, titles, schemas,
    the CLI and the Web UI details all read it from here."""

    branch: Branch
    title: str  # one line in Chinese and English, for timelines and the Web UI
    workflow: str  # the workflow type; the sample starts it by name so it need not import every branch
    kinds: tuple[DecisionKind, ...]  # the decisions it takes (routed to it when sent to the sample number)
    records: tuple[str, ...]  # the PostgreSQL tables holding its state
    awaited: bool = True  # the sample closes only after this branch has
    # TERMINATE guards against a sample terminated by an operator (awaited branches close before their
    # sample does, so it never fires otherwise); ABANDON for a branch that outlives its sample.
    parent_close: ParentClose = "terminate"
    # Kinds only runs started before a patch still await: routed to the branch, never awaited by new runs.
    retired: tuple[DecisionKind, ...] = ()

    def payloads(self) -> dict[DecisionKind, type[BaseModel] | None]:
        return {k: PAYLOADS.get(k) for k in self.kinds}

    def roles(self) -> dict[DecisionKind, list[str]]:
        return {k: sorted(r.value for r in roles_for(k)) for k in self.kinds}


BRANCHES: dict[Branch, BranchSpec] = {spec.branch: spec for spec in (
    BranchSpec(
        Branch.RECTIFICATION, "责令整改 rectification", "RectificationWorkflow",
        # Order 18 ch. 6: the report, the 复查 (three at most), the provincial 公告, the 停业整顿 order.
        (DecisionKind.RECTIFICATION_REPORT, DecisionKind.RE_INSPECTION, DecisionKind.PROVINCIAL_ANNOUNCEMENT,
         DecisionKind.SUSPENSION_ORDER),
        records=("rectifications", "re_inspections", "result_handovers"),
        retired=(DecisionKind.RECTIFICATION_EXTENSION, DecisionKind.RECTIFICATION_REVIEW),
    ),
    # A credit listing lasts a year (or until repaired): holding the sample open that long would keep
    # every sample "open" in the monitors' lists for nothing, so it outlives the sample on its own timers.
    BranchSpec(
        Branch.CREDIT, "信用约束与修复 credit listing and repair", "CreditWorkflow",
        (DecisionKind.CREDIT_REPAIR_APPLICATION, DecisionKind.CREDIT_REPAIR_ACCEPTANCE,
         DecisionKind.CREDIT_REPAIR_REVIEW, DecisionKind.SERIOUS_DISHONESTY_REVIEW),
        records=("credit_listings",), awaited=False, parent_close="abandon",
    ),
    BranchSpec(
        Branch.ENFORCEMENT, "移交执法稽查 enforcement hand-off", "EnforcementWorkflow",
        (DecisionKind.CASE_FILING, DecisionKind.CASE_OUTCOME, DecisionKind.CRIME_TRANSFER_DECISION,
         DecisionKind.CRIME_TRANSFER_RECEIPT),
        records=("enforcement_cases",),
    ),
    BranchSpec(
        Branch.RECALL, "缺陷研判与召回 defect assessment and recall", "RecallWorkflow",
        (DecisionKind.DEFECT_ASSESSMENT, DecisionKind.RECALL_DECISION, DecisionKind.RECALL_PLAN,
         DecisionKind.RECALL_PROGRESS, DecisionKind.RECALL_SUMMARY),
        records=("recalls",),
    ),
    BranchSpec(
        Branch.CERTIFICATION, "CCC 认证处置 certificate suspension or revocation", "CertificationWorkflow",
        (DecisionKind.CERTIFICATE_ACTION,), records=("certificate_actions",),
    ),
    BranchSpec(
        Branch.PLATFORM, "网抽下架 platform delisting", "PlatformWorkflow",
        (DecisionKind.DELIST_CONFIRMATION,), records=("platform_actions",),
    ),
    BranchSpec(
        Branch.LEAD, "检监联动线索 lead", "LeadWorkflow", (DecisionKind.LEAD_OUTCOME,), records=("leads",),
    ),
)}

# Which branch takes a decision kind, for routing a decision sent to the sample number.
BRANCH_OF_KIND: dict[str, Branch] = {
    k.value: spec.branch for spec in BRANCHES.values() for k in (*spec.kinds, *spec.retired)
}


class SampleResult(BaseModel):
    """The facts of a sample's result that its branches and registers work from."""

    order: SampleOrder
    sample_workflow_id: str
    clock_origin: datetime = Field(description="the sample's clock origin, so compressed dates agree")
    verdict: str
    failed_items: list[dict[str, Any]] = Field(default_factory=list)
    report_no: str | None = None
    evidence: list[EvidenceRef] = Field(default_factory=list)
    notices: list[dict[str, Any]] = Field(default_factory=list, description="the sample's notices (hashes)")
    policy: DeploymentPolicy | None = Field(default=None, description="the deployment policy the sample recorded")


class BranchCarry(ProcessCarry):
    """A branch's carry when it continues as new: also its outcome so far, its data, and its own state."""

    outcome: str | None = None
    enforcement_lead: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    state: dict[str, Any] = Field(default_factory=dict, description="what this branch's own steps need")


class BranchInput(SampleResult):
    branch: Branch
    context: dict[str, Any] = Field(default_factory=dict, description="branch-specific input")
    carried: BranchCarry | None = Field(default=None, description="set when the branch continues as new")


class BranchStatus(BranchReport):
    """The branch workflow's own `status` query: its report plus its timeline and deadlines."""

    timeline: list[TimelineEvent] = Field(default_factory=list)
    timeline_from: int = 0
    timeline_total: int = 0
    deadlines: list[Deadline] = Field(default_factory=list)
    notices: list[dict[str, Any]] = Field(default_factory=list)
    needs_operator: str | None = None


def branch_workflow_id(sample_workflow_id: str, branch: str, n: int | None = None) -> str:
    return f"{sample_workflow_id}-{branch}" + (f"-{n}" if n is not None else "")


__all__ = ["BRANCHES", "BRANCH_OF_KIND", "Branch", "BranchSpec", "BranchInput", "BranchReport", "BranchCarry", "BranchStatus", "SampleResult", "branch_workflow_id"]
