"""Orders and decisions for tests, built from the valid examples in examples/."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def order(channel: str = "offline_production", **overrides: Any) -> dict[str, Any]:
    """A valid order from examples/orders/<channel>.json with a fresh sample number."""
    data = json.loads((EXAMPLES / "orders" / f"{channel}.json").read_text(encoding="utf-8"))
    data["sample_no"] = f"T-{uuid.uuid4().hex[:12]}"
    for key, value in overrides.items():
        data[key] = value
    return data


def decision(
    kind: str, outcome: str, role: str, *, reason: str | None = None, data: dict[str, Any] | None = None,
    request_id: str | None = None, actor_id: str = "tester",
) -> dict[str, Any]:
    return {
        "kind": kind,
        "outcome": outcome,
        "actor": {"id": actor_id, "role": role},
        "request_id": request_id or f"rq-{uuid.uuid4().hex[:12]}",
        "reason": reason,
        "data": data or {},
    }


FAILED_ITEMS = [{"item": "输出电压", "standard": "GB 4943.1-2022", "requirement": "5V±5%", "result": "5.6V"}]


def sealed() -> dict[str, Any]:
    return decision("sampling_record", "sealed", "sampler", data={"record_no": "CY-1"})


def received() -> dict[str, Any]:
    return decision("sample_receipt", "accepted", "lab")


def report(outcome: str, kind: str = "lab_report") -> dict[str, Any]:
    items = FAILED_ITEMS if outcome == "fail" else []
    return decision(kind, outcome, "lab", data={"report_no": f"R-{uuid.uuid4().hex[:6]}", "failed_items": items})


def delivered() -> dict[str, Any]:
    return decision("result_delivery", "delivered", "case_officer")


def objection(outcome: str = "filed") -> dict[str, Any]:
    return decision("objection", outcome, "enterprise", reason="对检验结果有异议")


def review(outcome: str) -> dict[str, Any]:
    return decision("objection_review", outcome, "case_officer", reason="审查意见")


def disposal(outcome: str = "disposed") -> dict[str, Any]:
    return decision("disposal", outcome, "lab")


def copy_of(d: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(d)


def branch_input(branch: str, channel: str = "online", *, context: dict[str, Any] | None = None,
                 **order_overrides: Any) -> dict[str, Any]:
    """A BranchInput (as JSON) for starting a branch workflow on its own in a test. Its sample workflow
    does not exist: the branch's updates to it are dropped, which the branch tolerates."""
    from datetime import UTC, datetime

    o = order(channel, **order_overrides)
    return {
        "branch": branch,
        "order": o,
        "sample_workflow_id": f"sample-{o['sample_no']}",
        "clock_origin": datetime.now(UTC).isoformat(),
        "verdict": "fail",
        "failed_items": FAILED_ITEMS,
        "report_no": "ZJPQ-T-1",
        "evidence": [{"name": "report.pdf", "sha256": "a" * 64}],
        "notices": [{"template": "inspection_result", "title": "产品质量监督抽查检验结果通知书", "sha256": "b" * 64}],
        "context": context or {},
    }
