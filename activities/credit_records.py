"""Records of the credit branch: the credit listing row (table credit_listings) and the enterprise's fail
count for the serious-dishonesty check (table enterprise_fails). Every write is keyed by the branch's
workflow id, so a retried activity or a restarted worker never doubles a row, and a change older than the
listing's last one changes nothing."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg
from temporalio import activity

from activities.calendar import CHINA, add_months
from activities.db import insert_once, update_row, write_time
from domain.records import CreditFailCount, CreditListing, CreditListingChange

__all__ = ["CreditFailCount", "CreditListing", "CreditListingChange", "CreditRecordActivities",
           "credit_listing_row", "look_back_start"]


_COUNT_FAILS = """
SELECT count(*) FROM enterprise_fails WHERE credit_code = $1 AND failed_on >= $2 AND sample_no <> $3
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
        """The listing as first published (a repeat writes nothing); later steps change it."""
        row = listing.model_dump() | {"updated_at": write_time(listing.updated_at)}
        await insert_once(self.pool, "credit_listings", row, key=["workflow_id"])

    @activity.defn
    async def credit_update_listing(self, change: CreditListingChange) -> None:
        """Write the columns the change names (not None), unless the listing was changed later; a new
        application (repair_applied_at) starts a new repair record: the previous one's reason goes."""
        named = change.model_dump(exclude={"workflow_id", "at"}, exclude_none=True)
        if change.repair_applied_at is not None:
            named["repair_reason"] = change.repair_reason
        # The serious-dishonesty check runs beside the listing and its repair: its columns carry their own
        # write time, so a late write of one path is never dropped for a newer write of the other.
        guard = "serious_updated_at" if all(k.startswith("serious_") for k in named) else "updated_at"
        await update_row(self.pool, "credit_listings", {"workflow_id": change.workflow_id},
                         named | {guard: change.at}, guard=guard)


async def credit_listing_row(pool: asyncpg.Pool, workflow_id: str) -> dict[str, Any] | None:
    """The listing of a credit branch (read helper for the CLI and tests, not an activity)."""
    row = await pool.fetchrow("SELECT * FROM credit_listings WHERE workflow_id = $1", workflow_id)
    return dict(row) if row else None
