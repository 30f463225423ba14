"""What monitors see of a running sample in the Web UI: the current details, in markdown."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.decisions import AWAITED_TEXT
    from domain.models import SampleOrder
    from domain.stages import STAGE_TITLES, Stage, Verdict
    from domain.status import BranchReport
    from workflows.desk import Wait


def details_markdown(
    order: SampleOrder, stage: Stage, verdict: Verdict, waits: list[Wait], branches: list[BranchReport] | None = None
) -> str:
    """Stage, verdict, and for each open wait: what, from whom, by when, on what legal basis."""
    lines = [
        f"**{order.sample_no}** · {order.product.name} · stage **{stage.value}** "
        f"({STAGE_TITLES[stage]}) · verdict **{verdict.value}**",
    ]
    for w in waits:
        flag = " ⚠️ **overdue**" if w.overdue else ""
        lines.append(
            f"- waiting for {AWAITED_TEXT[w.kind]} (`{w.kind.value}`) from **{'/'.join(w.roles)}** "
            f"by **{w.deadline.due_date}**{flag} — {w.deadline.basis}"
        )
    open_branches = [b for b in branches or [] if not b.closed]
    for b in branches or []:
        state = f"closed → **{b.outcome}**" if b.closed else f"stage **{b.stage}**"
        lines.append(f"- branch **{b.branch}** ({b.workflow_id}): {state}")
        for a in b.awaiting if not b.closed else []:
            flag = " ⚠️ **overdue**" if a.overdue else ""
            lines.append(f"  - waiting for `{a.kind}` from **{'/'.join(a.roles)}** by **{a.due.date()}**{flag}")
    if not waits and not open_branches:
        lines.append("- waiting for nothing")
    if order.time_scale != 1:
        lines.append(f"- compressed clock: ×{order.time_scale:g}")
    return "\n".join(lines)
