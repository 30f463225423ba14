"""Outbound adapters: every external system (credit publicity, platforms, enforcement, certification
bodies, public security, notifications) behind one small protocol. The default adapter writes to the
outbox table, so the whole service runs with no external system at all; production registers real ones
by system name."""

from __future__ import annotations

from typing import Protocol

import asyncpg
from temporalio import activity

from activities.db import insert_once
from activities.records import OUTBOX_KEY
from domain.records import Handover, HandoverReceipt

__all__ = ["Handover", "HandoverReceipt", "OutboundActivities", "OutboundAdapter", "OutboxAdapter"]


class OutboundAdapter(Protocol):
    async def send(self, handover: Handover) -> HandoverReceipt: ...


class OutboxAdapter:
    """Queue the message in the outbox (idempotent on workflow id + step id); a dispatcher sends it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def send(self, handover: Handover) -> HandoverReceipt:
        async with self.pool.acquire() as conn:
            await insert_once(conn, "outbox", {
                "workflow_id": handover.workflow_id, "step_id": handover.step_id, "channel": handover.system,
                "recipient": handover.recipient, "subject": handover.subject,
                "payload": {"action": handover.action, **handover.payload}, "created_at": handover.created_at,
            }, key=OUTBOX_KEY)
            row_id = await conn.fetchval(
                "SELECT id FROM outbox WHERE workflow_id = $1 AND step_id = $2", handover.workflow_id, handover.step_id
            )
        return HandoverReceipt(system=handover.system, reference=f"outbox:{row_id}", queued=True)


class OutboundActivities:
    def __init__(self, pool: asyncpg.Pool, adapters: dict[str, OutboundAdapter] | None = None) -> None:
        self.default = OutboxAdapter(pool)
        self.adapters = adapters or {}

    @activity.defn
    async def hand_over(self, handover: Handover) -> HandoverReceipt:
        adapter = self.adapters.get(handover.system, self.default)
        return await adapter.send(handover)
