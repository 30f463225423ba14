"""What monitors see of a running process in the Web UI: its search attributes and current details.

`publish` is the one place a Spotcheck workflow writes its search attributes; the details are markdown."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from domain import visibility as sa
    from domain.decisions import AWAITED_TEXT, DecisionKind
    from domain.holidays import estimate_note
    from domain.models import SampleOrder
    from domain.stages import STAGE_TITLES, Stage, Verdict
    from domain.status import Awaiting, BranchReport
    from domain.windows import CHINA


def publish(
    stage: str,
    details: str,
    *,
    awaiting: Sequence[Awaiting] | None = None,
    verdict: str | None = None,
    needs_operator: bool | None = None,
    estimated: bool | None = None,
    extra: Sequence[SearchAttributeUpdate[Any]] = (),
    identity: Sequence[SearchAttributePair[Any]] = (),
    only_changed: bool = False,
    monitored: bool = False,
) -> None:
    """Stage (and verdict), who is awaited by when and whether anything is overdue, then the details.
    `awaiting=None` leaves the wait attributes alone (a process that never waits for people),
    `needs_operator=None` the NeedsOperator attribute and `estimated=None` EstimatedDeadline. `only_changed`
    (lean runs): upsert only the attributes whose value differs from the workflow's own (each upsert is an
    event in history and a visibility write). `identity` (ProcessKind, RegionName) and OverdueRole came
    with the MONITORING patch: a `monitored` run writes them like the others; an older run only beside an
    upsert it makes anyway, so that its history (and a replay of it) keeps its commands."""
    updates: list[SearchAttributeUpdate[Any]] = [*extra, sa.STAGE.value_set(stage)]
    later: list[SearchAttributeUpdate[Any]] = [p.key.value_set(p.value) for p in identity]
    if verdict is not None:
        updates.append(sa.VERDICT.value_set(verdict))
    if awaiting is not None:
        roles = sorted({r for a in awaiting for r in a.roles})
        next_due = min((a.due_at for a in awaiting), default=None)
        late = sorted({r for a in awaiting if a.overdue for r in a.roles})
        updates += [
            sa.AWAITING_ROLE.value_set(roles) if roles else sa.AWAITING_ROLE.value_unset(),
            sa.NEXT_DEADLINE.value_set(next_due) if next_due else sa.NEXT_DEADLINE.value_unset(),
            sa.OVERDUE.value_set(any(a.overdue for a in awaiting)),
        ]
        later.append(sa.OVERDUE_ROLE.value_set(late) if late else sa.OVERDUE_ROLE.value_unset())
    if needs_operator is not None:
        updates.append(sa.NEEDS_OPERATOR.value_set(needs_operator))
    if estimated is not None:
        updates.append(sa.ESTIMATED_DEADLINE.value_set(estimated))
    if monitored:
        updates, later = [*updates, *later], []
    if only_changed:
        current = workflow.info().typed_search_attributes
        updates = [u for u in updates if current.get(u.key) != u.value]
        later = [u for u in later if current.get(u.key) != u.value]
    if updates:
        updates += later
        workflow.upsert_search_attributes(updates)
    workflow.set_current_details(details)


def link(workflow_id: str) -> str:
    """A link to a workflow's row in the Web UI (relative: it works under whichever host serves the UI)."""
    query = f"WorkflowId%3D%22{workflow_id}%22"
    return f"[{workflow_id}](/namespaces/{workflow.info().namespace}/workflows?query={query})"


def shanghai(at: datetime) -> str:
    return f"{at.astimezone(CHINA):%Y-%m-%d %H:%M} Asia/Shanghai"


def clock_line(time_scale: float) -> list[str]:
    """Said wherever a compressed clock's dates appear: they are legal dates, not when things happen."""
    if time_scale == 1:
        return []
    return [f"- ⏱ **compressed demo clock ×{time_scale:g}**: the dates above are the sample's legal dates on "
            "its compressed clock; real times (when a timer fires) are in brackets"]


def _wait_line(a: Awaiting, indent: str = "", compressed: bool = False) -> str:
    flag = " ⚠️ **overdue**" if a.overdue else ""
    estimate = f" ({estimate_note(a.due.date())})" if a.estimated else ""
    what = AWAITED_TEXT[DecisionKind(a.kind)]
    real = f" (real: {shanghai(a.due_at)})" if compressed else ""
    return (f"{indent}- waiting for {what} (`{a.kind}`) from **{'/'.join(a.roles)}** by "
            f"**{a.due.astimezone(CHINA).date()}**{estimate}{real}{flag} — {a.basis}")


def operator_line(needs_operator: str | None) -> list[str]:
    return [f"- 🛑 **needs an operator**: {needs_operator} (fix it, then signal `operator_retry`)"] if needs_operator else []


def sample_details(
    order: SampleOrder, stage: Stage, verdict: Verdict, awaiting: Sequence[Awaiting],
    branches: Sequence[BranchReport] = (), needs_operator: str | None = None,
) -> str:
    """Stage, verdict, and for each open wait: what, from whom, by when, on what legal basis; each branch."""
    compressed = order.time_scale != 1
    lines = [
        f"**{order.sample_no}** · {order.product.name} · stage **{stage.value}** "
        f"({STAGE_TITLES[stage]}) · verdict **{verdict.value}**",
        *operator_line(needs_operator),
    ]
    lines += [_wait_line(a, compressed=compressed) for a in awaiting]
    open_branches = [b for b in branches if not b.closed]
    for b in branches:
        state = f"closed → **{b.outcome}**" if b.closed else f"stage **{b.stage}**"
        lines.append(f"- branch **{b.branch}** ({link(b.workflow_id)}): {state}")
        lines += [_wait_line(a, "  ", compressed) for a in (b.awaiting if not b.closed else [])]
    if not awaiting and not open_branches:
        lines.append("- waiting for nothing")
    return "\n".join([*lines, *clock_line(order.time_scale)])


def branch_details(
    order: SampleOrder, title: str, stage: str, outcome: str | None, awaiting: Sequence[Awaiting],
    needs_operator: str | None = None, related: Sequence[tuple[str, str]] = (),
) -> str:
    """As the sample's: stage, outcome, each open wait; then the workflows it belongs with (`related`:
    what each is, its id)."""
    compressed = order.time_scale != 1
    lines = [f"**{order.sample_no}** · {title} · stage **{stage}**" + (f" · outcome **{outcome}**" if outcome else ""),
             *operator_line(needs_operator)]
    lines += [_wait_line(a, compressed=compressed) for a in awaiting]
    if not awaiting:
        lines.append("- waiting for nothing" if stage == "closed" else "- no decision awaited now")
    lines += [f"- {what}: {link(workflow_id)}" for what, workflow_id in related]
    return "\n".join([*lines, *clock_line(order.time_scale)])
