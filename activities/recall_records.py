"""The recall record (`recalls`): one row per recall branch, upserted with the branch's whole current state
at each step, so a retried activity or a replayed step writes the same row again and never a second one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, Field
from temporalio import activity


class RecallRow(BaseModel):
    workflow_id: str
    sample_no: str
    assessment: str | None = Field(default=None, description="defect / no_defect")
    recall_type: str | None = Field(default=None, description="voluntary / ordered")
    plan_at: datetime | None = None
    progress: list[dict[str, Any]] = Field(default_factory=list, description="progress reports, in order")
    completed_at: datetime | None = None
    summary_at: datetime | None = None
    closed_outcome: str | None = None
    updated_at: datetime


_UPSERT = """
INSERT INTO recalls (workflow_id, sample_no, assessment, recall_type, plan_at, progress, completed_at,
                     summary_at, closed_outcome, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (workflow_id) DO UPDATE SET
    assessment = excluded.assessment, recall_type = excluded.recall_type, plan_at = excluded.plan_at,
    progress = excluded.progress, completed_at = excluded.completed_at, summary_at = excluded.summary_at,
    closed_outcome = excluded.closed_outcome, updated_at = excluded.updated_at
"""


class RecallRecords:
    """Registered by the worker as `RecallRecords(pool)`; activity names carry the branch's prefix."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="recall_save")
    async def save(self, row: RecallRow) -> None:
        await self.pool.execute(
            _UPSERT, row.workflow_id, row.sample_no, row.assessment, row.recall_type, row.plan_at,
            row.progress, row.completed_at, row.summary_at, row.closed_outcome, row.updated_at,
        )


async def recall_rows(pool: asyncpg.Pool, sample_no: str) -> list[dict[str, Any]]:
    """The recall rows of a sample (for the CLI and tests)."""
    return [dict(r) for r in await pool.fetch("SELECT * FROM recalls WHERE sample_no = $1", sample_no)]
