"""Cross-region merge (并案): report a final fail to its product case, and keep the `product_cases` record.

`product_case_report_fail` is what a final fail calls (from the sample's post-handling or its enforcement
branch): it records the fail and signal-with-starts `case-<product key>` through the worker's own client,
so the product case exists exactly once however many samples of the product fail at the same moment.
Both writes are keyed (case id, sample number): a retried activity records nothing twice, and the product
case ignores a sample it already has."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy

from domain import signing, visibility
from domain.product_case import FailReport, ProductCaseState, ProductKey, product_case_id
from domain.records import CaseRecord

# Named by string, not imported: the workflow module imports this one for its activities.
WORKFLOW_TYPE = "ProductCaseWorkflow"
REPORT_SIGNAL = "report_fail"

_OPEN_CASE = """
INSERT INTO product_cases (case_workflow_id, product_key, credit_code, brand, model, product_code,
                           opened_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, now(), now())
ON CONFLICT (case_workflow_id) DO NOTHING
"""

# Each fail is one key of `fails`; a patch merges into that key's object, so a repeat rewrites the same
# values and two writers (the report and the case's assessment) add their own fields.
_PATCH_CASE = """
UPDATE product_cases c SET
    fails = c.fails || coalesce((
        SELECT jsonb_object_agg(p.key, coalesce(c.fails -> p.key, '{}'::jsonb) || p.value)
        FROM jsonb_each($2::jsonb) p), '{}'::jsonb),
    merged_case_workflow_id = coalesce($3, c.merged_case_workflow_id),
    merged_at = CASE WHEN $3::text IS NOT NULL AND $3::text IS DISTINCT FROM c.merged_case_workflow_id
                     THEN $4 ELSE c.merged_at END,
    closed_at = $5,
    updated_at = now()
WHERE c.case_workflow_id = $1
RETURNING merged_case_workflow_id
"""


def _merge_no(merged_case_workflow_id: str | None) -> int:
    match = re.search(r"-merged-(\d+)$", merged_case_workflow_id or "")
    return int(match.group(1)) if match else 0


class ProductCaseActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def _write(self, key: ProductKey, fails: dict[str, dict[str, Any]], merged: str | None,
                     merged_at: datetime | None, closed_at: datetime | None) -> str | None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                _OPEN_CASE, key.case_id, {"credit_code": key.credit_code, "brand": key.brand, "model": key.model},
                key.credit_code, key.brand, key.model, key.product_code,
            )
            latest: str | None = await conn.fetchval(_PATCH_CASE, key.case_id, fails, merged, merged_at,
                                                     closed_at)
            return latest

    @activity.defn
    async def product_case_report_fail(self, report: FailReport) -> str:
        """Record the fail and deliver it to its product case (started if it is not running). Returns the
        case's workflow id."""
        key = ProductKey.of(report.order)
        entry = report.model_dump(mode="json", include={
            "sample_no", "sample_workflow_id", "enforcement_workflow_id", "region", "batch", "product_name",
            "failed_on", "report_no",
        })
        latest = await self._write(key, {report.sample_no: entry}, None, None, None)
        # Used only when this starts a new run: it numbers its merged cases after those of earlier runs,
        # so a merged case id is never reused.
        state = ProductCaseState(key=key, merges_before=_merge_no(latest))
        await activity.client().start_workflow(
            WORKFLOW_TYPE,
            state,
            id=key.case_id,
            task_queue=activity.info().task_queue,
            start_signal=REPORT_SIGNAL,
            # Sealed: only Spotcheck's own activities report fails to a product case.
            start_signal_args=[signing.seal(report.model_dump(mode="json"), key.case_id)],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=key.summary,
            search_attributes=TypedSearchAttributes([
                *visibility.identity_attributes(visibility.PRODUCT_CASE),
                SearchAttributePair(visibility.PRODUCT_CODE, key.product_code),
                SearchAttributePair(visibility.ENTERPRISE_CODE, key.credit_code),
            ]),
        )
        activity.logger.info("fail of %s reported to %s", report.sample_no, key.case_id)
        return key.case_id

    @activity.defn
    async def product_case_record(self, record: CaseRecord) -> None:
        """Write the case's view of its fails (window, duplicate, merged case), its latest merged case, and
        whether its quiet window has ended."""
        fails = {f.sample_no: f.model_dump(mode="json") for f in record.fails}
        await self._write(record.key, fails, record.merged_case_workflow_id, record.merged_at, record.closed_at)


async def product_case_row(pool: asyncpg.Pool, case_id: str) -> dict[str, Any] | None:
    """The record of one product case (for the CLI and tests; not an activity)."""
    row = await pool.fetchrow("SELECT * FROM product_cases WHERE case_workflow_id = $1", case_id)
    return dict(row) if row else None


__all__ = ["CaseRecord", "ProductCaseActivities", "product_case_id", "product_case_row"]
