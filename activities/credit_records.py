"""Records of the credit branch: the credit listing row (table credit_listings) and the enterprise's fail
count for the serious-dishonesty check (table enterprise_fails). Every write is keyed by the branch's
workflow id, so a retried activity or a restarted worker never doubles a row."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg
from pydantic import AwareDatetime, BaseModel, Field
from temporalio import activity

from activities.calendar import CHINA, add_months


class CreditFailCount(BaseModel):
    credit_code: str
    sample_no: str = Field(description="this sample: its fail counts even before the sample's row is there")
    as_of: AwareDatetime
    months: int = Field(gt=0, description="look-back period")


class CreditListing(BaseModel):
    """The listing as first published."""

    workflow_id: str
    sample_no: str
    credit_code: str
    enterprise_name: str
    published_at: AwareDatetime
    publicity_due: AwareDatetime
    listed_until: AwareDatetime


class CreditListingChange(BaseModel):
    """A later change to the listing; a field left None keeps its recorded value (except that a new
    application clears the previous repair reason)."""

    workflow_id: str
    at: AwareDatetime
    repair_applied_at: AwareDatetime | None = None
    repair_outcome: str | None = None
    repair_reason: str | None = None
    removed_at: AwareDatetime | None = None
    removal_reason: str | None = None
    serious_dishonesty: str | None = None
    serious_basis: str | None = None


_COUNT_FAILS = """
SELECT count(*) FROM enterprise_fails WHERE credit_code = $1 AND failed_on >= $2 AND sample_no <> $3
"""

_INSERT_LISTING = """
INSERT INTO credit_listings (
    workflow_id, sample_no, credit_code, enterprise_name, published_at, publicity_due, listed_until, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $5)
ON CONFLICT (workflow_id) DO NOTHING
"""

_CHANGE_LISTING = """
UPDATE credit_listings SET
    repair_applied_at = COALESCE($2, repair_applied_at),
    repair_outcome = COALESCE($3, repair_outcome),
    -- a new application starts a new repair record: the previous one's reason goes
    repair_reason = CASE WHEN $2::timestamptz IS NOT NULL THEN $4 ELSE COALESCE($4, repair_reason) END,
    removed_at = COALESCE($5, removed_at),
    removal_reason = COALESCE($6, removal_reason),
    serious_dishonesty = COALESCE($7, serious_dishonesty),
    serious_basis = COALESCE($8, serious_basis),
    updated_at = GREATEST($9, updated_at)
WHERE workflow_id = $1
"""


def look_back_start(as_of: datetime, months: int) -> date:
    """First day of the look-back period, in China time."""
    return add_months(as_of.astimezone(CHINA).date(), -months)


class CreditRecordActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def credit_count_fails(self, req: CreditFailCount) -> int:
        """Fails of the enterprise within the look-back period, this sample's fail included (counted once,
        whether or not the sample has written its row yet)."""
        others = await self.pool.fetchval(
            _COUNT_FAILS, req.credit_code, look_back_start(req.as_of, req.months), req.sample_no
        )
        return 1 + int(others)

    @activity.defn
    async def credit_record_listing(self, listing: CreditListing) -> None:
        await self.pool.execute(
            _INSERT_LISTING, listing.workflow_id, listing.sample_no, listing.credit_code, listing.enterprise_name,
            listing.published_at, listing.publicity_due, listing.listed_until,
        )

    @activity.defn
    async def credit_update_listing(self, change: CreditListingChange) -> None:
        await self.pool.execute(
            _CHANGE_LISTING, change.workflow_id, change.repair_applied_at, change.repair_outcome,
            change.repair_reason, change.removed_at, change.removal_reason, change.serious_dishonesty,
            change.serious_basis, change.at,
        )


async def credit_listing_row(pool: asyncpg.Pool, workflow_id: str) -> dict[str, Any] | None:
    """The listing of a credit branch (read helper for the CLI and tests, not an activity)."""
    row = await pool.fetchrow("SELECT * FROM credit_listings WHERE workflow_id = $1", workflow_id)
    return dict(row) if row else None
