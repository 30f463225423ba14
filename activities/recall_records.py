"""The recall record (`recalls`): one row per recall branch, upserted with the branch's whole current state
at each step, so a retried activity or a replayed step writes the same row again and never a second one, and
an older state landing late never overwrites a newer one."""

from __future__ import annotations

from typing import Any

import asyncpg
from temporalio import activity

from activities.db import upsert
from domain.records import RecallRow

__all__ = ["RecallRecords", "RecallRow", "recall_rows"]


class RecallRecords:
    """Registered by the worker as `RecallRecords(pool)`; activity names carry the branch's prefix."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="recall_save")
    async def save(self, row: RecallRow) -> None:
        await upsert(self.pool, "recalls", row.model_dump(), key=["workflow_id"], keep=["sample_no"])


async def recall_rows(pool: asyncpg.Pool, sample_no: str) -> list[dict[str, Any]]:
    """The recall rows of a sample (for the CLI and tests)."""
    return [dict(r) for r in await pool.fetch("SELECT * FROM recalls WHERE sample_no = $1", sample_no)]
