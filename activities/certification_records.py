"""The certificate-action record (`certificate_actions`): one row per certification branch, upserted with
the branch's whole current state, so a retry or a worker restart never writes a second row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, Field
from temporalio import activity


class CertificateActionRow(BaseModel):
    workflow_id: str
    sample_no: str
    certificate_no: str
    body_notified_at: datetime | None = None
    handover_reference: str | None = None
    action: str | None = Field(default=None, description="suspended / revoked / none")
    reason: str | None = None
    decided_at: datetime | None = None


_UPSERT = """
INSERT INTO certificate_actions (workflow_id, sample_no, certificate_no, body_notified_at, handover_reference,
                                 action, reason, decided_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (workflow_id) DO UPDATE SET
    certificate_no = excluded.certificate_no, body_notified_at = excluded.body_notified_at,
    handover_reference = excluded.handover_reference, action = excluded.action, reason = excluded.reason,
    decided_at = excluded.decided_at
"""


class CertificationRecords:
    """Registered by the worker as `CertificationRecords(pool)`; activity names carry the branch's prefix."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="certification_save")
    async def save(self, row: CertificateActionRow) -> None:
        await self.pool.execute(
            _UPSERT, row.workflow_id, row.sample_no, row.certificate_no, row.body_notified_at,
            row.handover_reference, row.action, row.reason, row.decided_at,
        )


async def certificate_action_rows(pool: asyncpg.Pool, sample_no: str) -> list[dict[str, Any]]:
    """The certificate-action rows of a sample (for the CLI and tests)."""
    return [dict(r) for r in await pool.fetch("SELECT * FROM certificate_actions WHERE sample_no = $1", sample_no)]
