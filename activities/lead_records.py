"""Records of the lead branch (007): one `leads` row per lead found while buying, inserted once when it is
recorded, then completed by its referral and its outcome (a change older than the row changes nothing)."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities.db import insert_once, update_row, write_time
from domain.records import LeadClosing, LeadEntry, LeadReferral

__all__ = ["LeadClosing", "LeadEntry", "LeadRecords", "LeadReferral"]


class LeadRecords:
    """Registered by the worker as `LeadRecords(pool)` (found by activities/registry.py)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def lead_record(self, r: LeadEntry) -> None:
        row = r.model_dump(exclude={"evidence"}) | {
            # the proof is the hash (固证): each file as {name, sha256, uri?}
            "evidence": [e.model_dump(mode="json", exclude_none=True) for e in r.evidence],
            "updated_at": write_time(r.updated_at),
        }
        await insert_once(self.pool, "leads", row, key=["workflow_id"])

    @activity.defn
    async def lead_record_referral(self, r: LeadReferral) -> None:
        await update_row(self.pool, "leads", {"workflow_id": r.workflow_id}, {
            "handover_reference": r.handover_reference, "updated_at": write_time(r.updated_at),
        })

    @activity.defn
    async def lead_record_outcome(self, r: LeadClosing) -> None:
        await update_row(self.pool, "leads", {"workflow_id": r.workflow_id}, {
            "outcome": r.outcome, "outcome_reason": r.reason, "closed_at": r.closed_at,
            "updated_at": write_time(r.updated_at),
        })
