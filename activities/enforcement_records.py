"""Records of the enforcement branch: one `enforcement_cases` row per case handed to enforcement.

Every write is an upsert keyed by the branch's workflow id that only writes what it carries (a field left
None keeps its recorded value), so a retried activity or a restarted worker never doubles the row nor erases
what a later step recorded, and a write that lands late after the branch moved on changes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
from temporalio import activity

from activities.db import upsert
from domain.records import EnforcementCaseChange

__all__ = ["EnforcementCaseChange", "EnforcementRecordActivities", "enforcement_case"]


class EnforcementRecordActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def enforcement_record_case(self, change: EnforcementCaseChange) -> None:
        """Upsert the case row with what this step recorded: the columns it names (not None), at its time."""
        named = change.model_dump(exclude={"at"}, exclude_none=True)
        await upsert(self.pool, "enforcement_cases", named | {"updated_at": change.at}, key=["workflow_id"])


async def enforcement_case(pool: asyncpg.Pool, workflow_id: str) -> dict[str, Any] | None:
    """The case row of a branch (read helper for the CLI and tests, not an activity)."""
    row = await pool.fetchrow("SELECT * FROM enforcement_cases WHERE workflow_id = $1", workflow_id)
    return dict(row) if row else None
