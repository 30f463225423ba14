"""The sample's view of a branch keeps the newest report the branch told: two `branch_update` signals sent
in one workflow task can reach the sample swapped (seen on the dev server with the credit listing)."""

from __future__ import annotations

from typing import Any

from domain.status import Awaiting, BranchReport
from workflows.post_handling import Branches


def _report(stage: str, seq: int | None, **extra: Any) -> BranchReport:
    return BranchReport(branch="credit", workflow_id="sample-X-credit", stage=stage, seq=seq, **extra)


def _branches() -> Branches:
    return Branches(sample=None, input_for=lambda b, c: None, seal=lambda p, t: p)  # type: ignore[arg-type]


def test_an_older_report_arriving_late_does_not_replace_a_newer_one() -> None:
    waiting = Awaiting.model_construct(kind="credit_repair_review", roles=["credit_officer"])
    branches = _branches()
    branches.update(_report("repair_review", 2_000_000_002, awaiting=[waiting]))
    branches.update(_report("publishing", 2_000_000_001))  # told first, arrived second
    held = branches.reports["sample-X-credit"]
    assert held.stage == "repair_review" and held.awaiting == [waiting]
    branches.update(_report("listed", 3_000_000_001))  # a later run's report is newer than any of the run before
    assert branches.reports["sample-X-credit"].stage == "listed"


def test_reports_without_an_order_keep_the_old_rule_the_latest_wins() -> None:
    branches = _branches()
    branches.update(_report("repair_review", None))
    branches.update(_report("publishing", None))
    assert branches.reports["sample-X-credit"].stage == "publishing"
    branches.update(_report("closed", None, closed=True))
    branches.update(_report("publishing", 5))  # nothing replaces a closed branch
    assert branches.reports["sample-X-credit"].closed
