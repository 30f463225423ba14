"""The PostgreSQL record: sample projections, the decision audit trail and the outbox, written by idempotent
activities (every write is keyed, so a retry writes nothing new), plus small read helpers for the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from temporalio import activity

from domain.records import DecisionRecord, OutboxMessage, SampleProjection


def _get(d: Any, *path: str) -> str | None:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return None if d is None else str(d)


_UPSERT_SAMPLE = """
INSERT INTO samples AS s (
    sample_no, workflow_id, seq, stage, verdict, "order",
    product_code, region, channel, task_type, enterprise_code, plan_id,
    awaiting_kind, awaiting_role, next_deadline, overdue, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
ON CONFLICT (sample_no) DO UPDATE SET
    workflow_id = excluded.workflow_id, seq = excluded.seq, stage = excluded.stage,
    verdict = excluded.verdict, "order" = excluded."order",
    product_code = excluded.product_code, region = excluded.region, channel = excluded.channel,
    task_type = excluded.task_type, enterprise_code = excluded.enterprise_code, plan_id = excluded.plan_id,
    awaiting_kind = excluded.awaiting_kind, awaiting_role = excluded.awaiting_role,
    next_deadline = excluded.next_deadline, overdue = excluded.overdue, updated_at = excluded.updated_at
WHERE excluded.seq > s.seq
"""

_INSERT_DECISION = """
INSERT INTO decisions (
    workflow_id, request_id, kind, outcome, accepted, reason, actor, actor_id, actor_role,
    decision, stage, via, received_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (workflow_id, request_id, accepted) DO NOTHING
RETURNING id
"""

_INSERT_OUTBOX = """
INSERT INTO outbox (workflow_id, step_id, channel, recipient, subject, payload, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (workflow_id, step_id) DO NOTHING
RETURNING id
"""


class RecordActivities:
    """Register an instance's bound methods with the worker: `RecordActivities(pool).project_sample`, ..."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def project_sample(self, p: SampleProjection) -> None:
        """Upsert the sample's queryable state; an older projection arriving late changes nothing."""
        o = p.order
        await self.pool.execute(
            _UPSERT_SAMPLE,
            p.sample_no,
            p.workflow_id,
            p.seq,
            p.stage,
            p.verdict,
            o,
            _get(o, "product", "classification_code"),
            _get(o, "region"),
            _get(o, "channel"),
            _get(o, "task_type"),
            _get(o, "sampled_party", "credit_code"),
            _get(o, "plan_id"),
            p.awaiting_kind,
            p.awaiting_role,
            p.next_deadline,
            p.overdue,
            p.updated_at,
        )

    @activity.defn
    async def record_decision(self, r: DecisionRecord) -> bool:
        """Append to the audit trail; True when written, False when this (request id, accepted) was recorded."""
        row_id = await self.pool.fetchval(
            _INSERT_DECISION,
            r.workflow_id,
            r.request_id,
            r.kind,
            r.outcome,
            r.accepted,
            r.reason,
            r.actor,
            _get(r.actor, "id"),
            _get(r.actor, "role"),
            r.decision,
            r.stage,
            r.via,
            r.received_at,
        )
        return row_id is not None

    @activity.defn
    async def queue_outbox(self, m: OutboxMessage) -> bool:
        """Queue a message for an adapter; True when written, False when this step was already queued."""
        row_id = await self.pool.fetchval(
            _INSERT_OUTBOX,
            m.workflow_id,
            m.step_id,
            m.channel,
            m.recipient,
            m.subject,
            m.payload,
            m.created_at,
        )
        return row_id is not None


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
