"""The records of result handling per Order 18 chapter 6: one row per 复查 (`re_inspections`) and one per
hand-over with its own record (`result_handovers`: 通报, report for the 公告, 停业整顿, licence revocation).
Both append-only, keyed by workflow id and round or step: a retried activity never writes a second row."""

from __future__ import annotations

from typing import Any

import asyncpg
from temporalio import activity

from activities.db import insert_once
from domain.records import ReInspectionRow, ResultHandoverRecord

__all__ = ["ReInspectionRow", "ResultHandlingRecords", "ResultHandoverRecord", "re_inspection_rows",
           "result_handover_rows"]


class ResultHandlingRecords:
    """Registered by the worker as `ResultHandlingRecords(pool)`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="record_re_inspection")
    async def record_re_inspection(self, row: ReInspectionRow) -> bool:
        """True when the row was written now (False: it was there already)."""
        async with self.pool.acquire() as conn:
            written = await insert_once(conn, "re_inspections", row.model_dump(), key=("workflow_id", "round"),
                                        returning="id")
        return written is not None

    @activity.defn(name="record_result_handover")
    async def record_result_handover(self, record: ResultHandoverRecord) -> bool:
        """True when the row was written now (False: it was there already)."""
        async with self.pool.acquire() as conn:
            written = await insert_once(conn, "result_handovers", record.model_dump(),
                                        key=("workflow_id", "step_id"), returning="id")
        return written is not None


async def re_inspection_rows(pool: asyncpg.Pool, sample_no: str) -> list[dict[str, Any]]:
    """The 复查 rows of a sample, oldest first (for the CLI and tests)."""
    return [dict(r) for r in await pool.fetch("SELECT * FROM re_inspections WHERE sample_no = $1 ORDER BY id",
                                              sample_no)]


async def result_handover_rows(pool: asyncpg.Pool, sample_no: str) -> list[dict[str, Any]]:
    """The result-handling hand-overs of a sample, oldest first (for the CLI and tests)."""
    return [dict(r) for r in await pool.fetch("SELECT * FROM result_handovers WHERE sample_no = $1 ORDER BY id",
                                              sample_no)]
