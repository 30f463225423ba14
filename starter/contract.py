"""The wire contract as data: what an integrator may start, send and ask, read from the workflow definitions
and models themselves (so it cannot drift from the code), and exported as JSON Schema files by
`spotcheck schema --all` (docs/contract.md explains it in words)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio.workflow import _Definition

from domain.branches import BRANCH_OF_KIND, BRANCHES, BranchStatus
from domain.decisions import PAYLOADS, ROLE_MATRIX, Decision, DecisionKind, Receipt
from domain.models import SampleOrder
from domain.status import SampleStatus
from starter.generated import replace_section, rewrite

# Bumped on a breaking change of anything below (a renamed handler, a field removed or made required);
# adding a decision kind, an optional field or a workflow is not breaking. See docs/contract.md.
CONTRACT_VERSION = "1"

# Signals only Spotcheck's own workflows send, sealed with a worker-held key (domain/signing.py): listed so
# an integrator knows they exist and that sending them does nothing but leave an audit row.
INTERNAL_SIGNALS = frozenset({"branch_update", "enforcement_result", "follow_merged_case", "add_merged_sample",
                              "report_fail"})

MODELS: dict[str, type[BaseModel]] = {
    "sample-order": SampleOrder,
    "decision": Decision,
    "receipt": Receipt,
    "sample-status": SampleStatus,
    "branch-status": BranchStatus,
}


def kind_contract(kind: DecisionKind) -> dict[str, Any]:
    """One decision kind: the workflow that takes it, who may decide which outcome, what `data` holds."""
    branch = BRANCH_OF_KIND.get(kind.value)
    payload = PAYLOADS.get(kind)
    return {
        "kind": kind.value,
        "taken_by": BRANCHES[branch].workflow if branch else "SampleWorkflow",
        "branch": branch.value if branch else None,
        "outcomes": {o: sorted(r.value for r in roles) for o, roles in ROLE_MATRIX[kind].items()},
        "data": payload.model_json_schema() if payload else {"type": "object", "description": "no fields defined"},
    }


def workflow_contract() -> list[dict[str, Any]]:
    """Each workflow type with the signal, update and query names it registers (public and internal)."""
    from workflows.registry import all_workflows

    out = []
    for cls in all_workflows():
        d = _Definition.must_from_class(cls)
        signals = sorted(n for n in d.signals if n)
        out.append({
            "type": d.name,
            "updates": sorted(n for n in d.updates if n),
            "signals": [n for n in signals if n not in INTERNAL_SIGNALS],
            "internal_signals": [n for n in signals if n in INTERNAL_SIGNALS],
            "queries": sorted(n for n in d.queries if n),
        })
    return out


def index() -> dict[str, Any]:
    from worker import TASK_QUEUE

    return {
        "contract_version": CONTRACT_VERSION,
        "task_queue": TASK_QUEUE,
        "sample_workflow": {"type": "SampleWorkflow", "id": "sample-<sample_no>", "input": "sample-order"},
        "branch_workflow_ids": {b.value: f"sample-<sample_no>-{b.value}" for b in BRANCHES},
        "workflows": workflow_contract(),
        "schemas": {name: f"{name}.schema.json" for name in MODELS}
        | {"decision kinds": "kinds/<kind>.schema.json"},
    }


def export(out: Path) -> list[Path]:
    """Write the index, one JSON Schema per model and one per decision kind under `out`; the paths written."""
    written = []

    def write(path: Path, value: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        written.append(path)

    write(out / "index.json", index())
    for name, model in MODELS.items():
        write(out / f"{name}.schema.json", {"$schema": "https://json-schema.org/draft/2020-12/schema",
                                            **model.model_json_schema()})
    for kind in DecisionKind:
        contract = kind_contract(kind)
        write(out / "kinds" / f"{kind.value}.schema.json", {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"data of a {kind.value} decision",
            "x-taken-by": contract["taken_by"],
            "x-outcomes": contract["outcomes"],
            **contract["data"],
        })
    return written


# docs/contract.md holds the generated tables between these markers (`make contract-doc` writes them,
# tests/test_contract.py fails when they are stale).
BEGIN, END = "<!-- generated: spotcheck contract tables -->", "<!-- end of generated tables -->"


def tables_markdown() -> str:
    """The workflow and decision-kind tables of docs/contract.md, from the code."""
    lines = ["| workflow type | updates | signals | internal signals (sealed) | queries |", "|---|---|---|---|---|"]
    for w in workflow_contract():
        lines.append(f"| `{w['type']}` | " + " | ".join(", ".join(f"`{n}`" for n in w[k]) or "—" for k in
                                                        ("updates", "signals", "internal_signals", "queries")) + " |")
    lines += ["", "| decision kind | taken by | outcome → roles that may decide it | `data` fields (required*) |",
              "|---|---|---|---|"]
    for kind in DecisionKind:
        c = kind_contract(kind)
        outcomes = "; ".join(f"`{o}` → {', '.join(roles)}" for o, roles in c["outcomes"].items())
        required = set(c["data"].get("required", []))
        fields = ", ".join(f"`{f}`" + ("*" if f in required else "") for f in c["data"].get("properties", {})) or "—"
        lines.append(f"| `{kind.value}` | `{c['taken_by']}` | {outcomes} | {fields} |")
    return "\n".join(lines)


def with_tables(doc: str) -> str:
    """`doc` with its generated section replaced by the current tables."""
    return replace_section(doc, BEGIN, END, f"\n{tables_markdown()}\n")


if __name__ == "__main__":  # make contract-doc
    rewrite(Path(__file__).resolve().parent.parent / "docs" / "contract.md", with_tables)
