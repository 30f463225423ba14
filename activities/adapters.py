"""Outbound adapters: every external system (credit publicity, platforms, enforcement, certification
bodies, public security, notifications) behind one small protocol. The default adapter writes to the
outbox table, so the whole service runs with no external system at all; production registers real ones
by system name."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import asyncpg
from pydantic import BaseModel, Field
from temporalio import activity


class Handover(BaseModel):
    """One message to an outside system, keyed by workflow id + step id so a retry never sends twice."""

    workflow_id: str
    step_id: str
    system: str = Field(description="credit_publicity, platform, enforcement, certification, public_security, …")
    action: str = Field(description="what is asked, e.g. publish_listing, delist, transfer_case")
    recipient: str
    subject: str
    payload: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class HandoverReceipt(BaseModel):
    system: str
    reference: str = Field(description="the outside system's reference, or outbox:<id> when queued")
    queued: bool = Field(description="True when left in the outbox for a dispatcher")


class OutboundAdapter(Protocol):
    async def send(self, handover: Handover) -> HandoverReceipt: ...


class OutboxAdapter:
    """Queue the message in the outbox (idempotent on workflow id + step id); a dispatcher sends it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def send(self, handover: Handover) -> HandoverReceipt:
        async with self.pool.acquire() as conn:
            await conn.execute(
                """
                INSERT INTO outbox (workflow_id, step_id, channel, recipient, subject, payload, created_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (workflow_id, step_id) DO NOTHING
                """,
                handover.workflow_id, handover.step_id, handover.system, handover.recipient, handover.subject,
                {"action": handover.action, **handover.payload}, handover.created_at,
            )
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
