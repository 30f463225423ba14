"""The certificate-action record (`certificate_actions`): one row per certification branch, upserted with
the branch's whole current state, so a retry or a worker restart never writes a second row, and an older
state landing late never overwrites a newer one."""

from __future__ import annotations

from typing import Any

import asyncpg
from temporalio import activity

from activities.db import upsert, write_time
from domain.records import CertificateActionRow

__all__ = ["CertificateActionRow", "CertificationRecords", "certificate_action_rows"]


class CertificationRecords:
    """Registered by the worker as `CertificationRecords(pool)`; activity names carry the branch's prefix."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="certification_save")
    async def save(self, row: CertificateActionRow) -> None:
        values = row.model_dump() | {"updated_at": write_time(row.updated_at)}
        await upsert(self.pool, "certificate_actions", values, key=["workflow_id"], keep=["sample_no"])


async def certificate_action_rows(pool: asyncpg.Pool, sample_no: str) -> list[dict[str, Any]]:
    """The certificate-action rows of a sample (for the CLI and tests)."""
    return [dict(r) for r in await pool.fetch("SELECT * FROM certificate_actions WHERE sample_no = $1", sample_no)]
