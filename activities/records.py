"""The PostgreSQL record: sample projections, the decision audit trail and the outbox, written by idempotent
activities (every write is keyed, so a retry writes nothing new), plus small read helpers for the CLI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
from temporalio import activity

from activities.calendar import compute_deadline
from activities.db import insert_once, update_row, upsert
from activities.policy import current_policy
from domain.records import (
    AuditedDecision,
    DecisionRecord,
    OutboxMessage,
    SampleProjection,
    WaitOpened,
    WaitOpening,
)


def _get(d: Any, *path: str) -> str | None:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return None if d is None else str(d)


OUTBOX_KEY = ("workflow_id", "step_id")


class RecordActivities:
    """Register an instance's bound methods with the worker: `RecordActivities(pool).project_sample`, ..."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def project_sample(self, p: SampleProjection) -> None:
        """Upsert the sample's queryable state; an older projection arriving late changes nothing, nor does a
        repeat of the same seq (the seq, not the time, orders them: projections of one workflow task share
        the workflow's time)."""
        o = p.order
        state = {
            "sample_no": p.sample_no,
            "workflow_id": p.workflow_id,
            "seq": p.seq,
            "stage": p.stage,
            "verdict": p.verdict,
            "awaiting_kind": p.awaiting_kind,
            "awaiting_role": p.awaiting_role,
            "next_deadline": p.next_deadline,
            "overdue": p.overdue,
            "updated_at": p.updated_at,
        }
        if o is None:
            # The order came with the first projection (it does not change): later ones update the state.
            await update_row(self.pool, "samples", {"sample_no": p.sample_no}, state, guard="seq")
            return
        await upsert(self.pool, "samples", {
            **state,
            "order": o,
            "product_code": _get(o, "product", "classification_code"),
            "region": _get(o, "region"),
            "channel": _get(o, "channel"),
            "task_type": _get(o, "task_type"),
            "enterprise_code": _get(o, "sampled_party", "credit_code"),
            "plan_id": _get(o, "plan_id"),
        }, key=["sample_no"], guard="seq", strict=True)

    @activity.defn
    async def open_wait(self, w: WaitOpening) -> WaitOpened:
        """A sample opening a wait, in one local activity where it took two to four: the audit rows of the
        decisions that set it off (as `audit_decision`), the wait's deadline (as `compute_deadline`), then the
        `samples` record showing the wait (as `project_sample`); at the first wait, the deployment policy too
        (as `deployment_policy`)."""
        return await opened_wait(w, self.project_sample, self.audit_decision)

    @activity.defn
    async def record_decision(self, r: DecisionRecord) -> bool:
        """Append to the audit trail; True when written, False when this (request id, accepted) was recorded.
        Runs from before `local-audit` (workflows/process.py) call it."""
        return (await self.audit_decision(r)).written

    @activity.defn
    async def audit_decision(self, r: DecisionRecord) -> AuditedDecision:
        """Append to the audit trail once per (request id, accepted), saying which row in the history."""
        row = r.model_dump(include={
            "workflow_id", "request_id", "kind", "outcome", "accepted", "reason", "actor", "decision", "stage",
            "via", "received_at",
        })
        row.update(actor_id=_get(r.actor, "id"), actor_role=_get(r.actor, "role"))
        row_id = await insert_once(
            self.pool, "decisions", row, key=["workflow_id", "request_id", "accepted"], returning="id"
        )
        return AuditedDecision(request_id=r.request_id, accepted=r.accepted, written=row_id is not None)

    @activity.defn
    async def queue_outbox(self, m: OutboxMessage) -> bool:
        """Queue a message for an adapter; True when written, False when this step was already queued."""
        row_id = await insert_once(self.pool, "outbox", m.model_dump(), key=OUTBOX_KEY, returning="id")
        return row_id is not None


async def opened_wait(w: WaitOpening, project: Callable[[SampleProjection], Awaitable[None]],
                      audit: Callable[[DecisionRecord], Awaitable[AuditedDecision]]) -> WaitOpened:
    """`open_wait` with `project` writing the record and `audit` each audit row (the test suite's in-memory
    store has its own). The rows first: the decisions are on the trail before the record shows their step."""
    audited = [await audit(r) for r in w.audits]
    policy = current_policy() if w.read_policy else None
    deadline = await compute_deadline(w.deadline)
    projection, state = w.opened(deadline, policy)
    await project(projection)
    return WaitOpened(deadline=deadline, projected=state, policy=policy, audited=audited)


# --- read helpers for the CLI and tests (not activities) --------------------------------------------------


async def sample_rows(
    pool: asyncpg.Pool,
    *,
    workflow_id: str | None = None,
    stage: str | None = None,
    region: str | None = None,
    overdue: bool | None = None,
    awaiting_role: str | None = None,
    plan_id: str | None = None,
    updated_before: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Samples matching every filter given, most recently updated first."""
    filters = {
        "workflow_id": workflow_id,
        "stage": stage,
        "region": region,
        "overdue": overdue,
        "awaiting_role": awaiting_role,
        "plan_id": plan_id,
    }
    where: list[str] = []
    args: list[Any] = []
    for column, value in filters.items():
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if updated_before is not None:
        args.append(updated_before)
        where.append(f"updated_at < ${len(args)}")
    args.append(limit)
    sql = (
        "SELECT * FROM samples"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY updated_at DESC, sample_no LIMIT ${len(args)}"
    )
    return [dict(r) for r in await pool.fetch(sql, *args)]


async def audit_trail(pool: asyncpg.Pool, workflow_id: str) -> list[dict[str, Any]]:
    """Every decision received for a workflow, accepted and rejected, in order of arrival."""
    rows = await pool.fetch(
        "SELECT * FROM decisions WHERE workflow_id = $1 ORDER BY received_at, id", workflow_id
    )
    return [dict(r) for r in rows]


async def notices_for(pool: asyncpg.Pool, workflow_id: str) -> list[dict[str, Any]]:
    """The notices issued for a workflow (with their text and hash), in order of issue."""
    rows = await pool.fetch(
        "SELECT id, workflow_id, step_id, template, title, body, sha256, issued_at FROM notices"
        " WHERE workflow_id = $1 ORDER BY issued_at, id",
        workflow_id,
    )
    return [dict(r) for r in rows]


async def outbox_for(pool: asyncpg.Pool, workflow_id: str) -> list[dict[str, Any]]:
    """The outbox messages queued for a workflow, in order of creation."""
    rows = await pool.fetch("SELECT * FROM outbox WHERE workflow_id = $1 ORDER BY created_at, id", workflow_id)
    return [dict(r) for r in rows]
