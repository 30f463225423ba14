"""Records of the platform branch (007): one `platform_actions` row per delisting request, inserted once when
the request is made, then completed by the platform's answer (an answer older than the row changes nothing)."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities.db import insert_once, update_row, write_time
from domain.records import PlatformClosing, PlatformRequest

__all__ = ["PlatformClosing", "PlatformRecords", "PlatformRequest"]


class PlatformRecords:
    """Registered by the worker as `PlatformRecords(pool)` (found by activities/registry.py)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def platform_record_request(self, r: PlatformRequest) -> None:
        row = r.model_dump() | {"updated_at": write_time(r.updated_at)}
        await insert_once(self.pool, "platform_actions", row, key=["workflow_id"])

    @activity.defn
    async def platform_record_closing(self, r: PlatformClosing) -> None:
        await update_row(self.pool, "platform_actions", {"workflow_id": r.workflow_id}, {
            "confirmation": r.confirmation, "confirmation_reason": r.reason, "confirmed_at": r.confirmed_at,
            "closed_outcome": r.closed_outcome, "updated_at": write_time(r.updated_at),
        })
