"""What an operator watches, counted from the records (monitoring.py exports it as metrics).

Read from PostgreSQL rather than Temporal's visibility: one query set, the same on a self-hosted cluster and
on Temporal Cloud (whose visibility counts are rate-limited), and no load on the Temporal server."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from domain.stages import Stage


@dataclass(frozen=True)
class RecordCounts:
    samples_by_stage: dict[str, int] = field(default_factory=dict)  # open samples: every stage but closed
    overdue: int = 0  # open samples whose awaited decision is past its deadline
    decisions: dict[bool, int] = field(default_factory=dict)  # accepted → count, since the records began
    outbox: dict[str, int] = field(default_factory=dict)  # pending, failed
    oldest_pending_seconds: float = 0.0  # age of the oldest message not yet sent nor given up


async def record_counts(pool: asyncpg.Pool) -> RecordCounts:
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        stages = dict.fromkeys((s.value for s in Stage if s is not Stage.CLOSED), 0)
        for row in await conn.fetch("SELECT stage, count(*) AS n FROM samples WHERE stage <> $1 GROUP BY stage",
                                    Stage.CLOSED.value):
            stages[row["stage"]] = row["n"]
        overdue = await conn.fetchval("SELECT count(*) FROM samples WHERE overdue AND stage <> $1", Stage.CLOSED.value)
        decisions = {True: 0, False: 0} | {
            row["accepted"]: row["n"]
            for row in await conn.fetch("SELECT accepted, count(*) AS n FROM decisions GROUP BY accepted")
        }
        outbox = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE failed_at IS NULL) AS pending,"
            "       count(*) FILTER (WHERE failed_at IS NOT NULL) AS failed,"
            "       coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE failed_at IS NULL)), 0) AS oldest"
            "  FROM outbox WHERE sent_at IS NULL"
        )
    assert outbox is not None  # an aggregate always has its one row
    return RecordCounts(
        samples_by_stage=stages, overdue=int(overdue), decisions=decisions,
        outbox={"pending": int(outbox["pending"]), "failed": int(outbox["failed"])},
        oldest_pending_seconds=float(outbox["oldest"]),
    )
