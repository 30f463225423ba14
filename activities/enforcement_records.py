"""Records of the enforcement branch: one `enforcement_cases` row per case handed to enforcement.

Every write is an upsert keyed by the branch's workflow id that only fills in what it carries (a field left
None keeps its recorded value), so a retried activity, a restarted worker or a write that lands late after
the branch moved on never doubles the row nor erases what a later step recorded."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic import AwareDatetime, BaseModel, Field
from temporalio import activity


class EnforcementCaseChange(BaseModel):
    """The case's identity (sent with every write, so the first write to arrive creates the row) and what
    this step changes."""

    workflow_id: str
    sample_no: str | None = Field(description="null for a merged case")
    merged_samples: list[dict[str, Any]] | None = None
    reason: str
    at: AwareDatetime = Field(description="when the step was recorded (workflow time)")
    handed_over_at: AwareDatetime | None = None
    handover_reference: str | None = None
    filing_due: date | None = None
    filing_outcome: str | None = None
    case_no: str | None = None
    outcome_due: date | None = None
    outcome: str | None = None
    fine_amount: Decimal | None = None
    heavy: bool | None = None
    crime_decision: str | None = None
    transferred_at: AwareDatetime | None = None
    transfer_receipt_at: AwareDatetime | None = None
    followed_case: str | None = None
    closed_outcome: str | None = None


_COLUMNS = (
    "sample_no", "merged_samples", "reason", "handed_over_at", "handover_reference", "filing_due",
    "filing_outcome", "case_no", "outcome_due", "outcome", "fine_amount", "heavy", "crime_decision",
    "transferred_at", "transfer_receipt_at", "followed_case", "closed_outcome",
)

_UPSERT_CASE = f"""
INSERT INTO enforcement_cases AS c (workflow_id, {", ".join(_COLUMNS)}, updated_at)
VALUES ({", ".join(f"${i}" for i in range(1, len(_COLUMNS) + 3))})
ON CONFLICT (workflow_id) DO UPDATE SET
    {", ".join(f"{col} = COALESCE(excluded.{col}, c.{col})" for col in _COLUMNS)},
    updated_at = GREATEST(excluded.updated_at, c.updated_at)
"""


class EnforcementRecordActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def enforcement_record_case(self, change: EnforcementCaseChange) -> None:
        """Upsert the case row with what this step recorded."""
        values = [getattr(change, col) for col in _COLUMNS]
        await self.pool.execute(_UPSERT_CASE, change.workflow_id, *values, change.at)


async def enforcement_case(pool: asyncpg.Pool, workflow_id: str) -> dict[str, Any] | None:
    """The case row of a branch (read helper for the CLI and tests, not an activity)."""
    row = await pool.fetchrow("SELECT * FROM enforcement_cases WHERE workflow_id = $1", workflow_id)
    return dict(row) if row else None
