"""What monitors see of a running process in the Web UI: its search attributes and current details.

`publish` is the one place a Spotcheck workflow writes its search attributes; the details are markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from domain import visibility as sa
    from domain.decisions import AWAITED_TEXT, DecisionKind
    from domain.holidays import estimate_note
    from domain.models import SampleOrder
    from domain.stages import STAGE_TITLES, Stage, Verdict
    from domain.status import Awaiting, BranchReport


def publish(
    stage: str,
    details: str,
    *,
    awaiting: Sequence[Awaiting] | None = None,
    verdict: str | None = None,
    needs_operator: bool | None = None,
    estimated: bool | None = None,
    extra: Sequence[SearchAttributeUpdate[Any]] = (),
    only_changed: bool = False,
) -> None:
    """Stage (and verdict), who is awaited by when and whether anything is overdue, then the details.
    `awaiting=None` leaves the wait attributes alone (a process that never waits for people),
    `needs_operator=None` the NeedsOperator attribute and `estimated=None` EstimatedDeadline. `only_changed`
    (lean runs): upsert only the attributes whose value differs from the workflow's own (each upsert is an
    event in history and a visibility write)."""
    updates: list[SearchAttributeUpdate[Any]] = [*extra, sa.STAGE.value_set(stage)]
    if verdict is not None:
        updates.append(sa.VERDICT.value_set(verdict))
    if awaiting is not None:
        roles = sorted({r for a in awaiting for r in a.roles})
        next_due = min((a.due_at for a in awaiting), default=None)
        updates += [
            sa.AWAITING_ROLE.value_set(roles) if roles else sa.AWAITING_ROLE.value_unset(),
            sa.NEXT_DEADLINE.value_set(next_due) if next_due else sa.NEXT_DEADLINE.value_unset(),
            sa.OVERDUE.value_set(any(a.overdue for a in awaiting)),
        ]
    if needs_operator is not None:
        updates.append(sa.NEEDS_OPERATOR.value_set(needs_operator))
    if estimated is not None:
        updates.append(sa.ESTIMATED_DEADLINE.value_set(estimated))
    if only_changed:
        current = workflow.info().typed_search_attributes
        updates = [u for u in updates if current.get(u.key) != u.value]
    if updates:
        workflow.upsert_search_attributes(updates)
    workflow.set_current_details(details)


def _wait_line(a: Awaiting, indent: str = "") -> str:
    flag = " ⚠️ **overdue**" if a.overdue else ""
    estimate = f" ({estimate_note(a.due.date())})" if a.estimated else ""
    what = AWAITED_TEXT[DecisionKind(a.kind)]
    return (f"{indent}- waiting for {what} (`{a.kind}`) from **{'/'.join(a.roles)}** by **{a.due.date()}**"
            f"{estimate}{flag} — {a.basis}")


def operator_line(needs_operator: str | None) -> list[str]:
    return [f"- 🛑 **needs an operator**: {needs_operator} (fix it, then signal `operator_retry`)"] if needs_operator else []


def sample_details(
    order: SampleOrder, stage: Stage, verdict: Verdict, awaiting: Sequence[Awaiting],
    branches: Sequence[BranchReport] = (), needs_operator: str | None = None,
) -> str:
    """Stage, verdict, and for each open wait: what, from whom, by when, on what legal basis; each branch."""
    lines = [
        f"**{order.sample_no}** · {order.product.name} · stage **{stage.value}** "
        f"({STAGE_TITLES[stage]}) · verdict **{verdict.value}**",
        *operator_line(needs_operator),
    ]
    lines += [_wait_line(a) for a in awaiting]
    open_branches = [b for b in branches if not b.closed]
    for b in branches:
        state = f"closed → **{b.outcome}**" if b.closed else f"stage **{b.stage}**"
        lines.append(f"- branch **{b.branch}** ({b.workflow_id}): {state}")
        lines += [_wait_line(a, "  ") for a in (b.awaiting if not b.closed else [])]
    if not awaiting and not open_branches:
        lines.append("- waiting for nothing")
    if order.time_scale != 1:
        lines.append(f"- compressed clock: ×{order.time_scale:g}")
    return "\n".join(lines)


def branch_details(
    order: SampleOrder, title: str, stage: str, outcome: str | None, awaiting: Sequence[Awaiting],
    needs_operator: str | None = None,
) -> str:
    lines = [f"**{order.sample_no}** · {title} · stage **{stage}**" + (f" · outcome **{outcome}**" if outcome else ""),
             *operator_line(needs_operator)]
    lines += [_wait_line(a) for a in awaiting]
    return "\n".join(lines)
