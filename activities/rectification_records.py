"""The rectification record (`rectifications`) and the rectification rule's extension terms.

One row per rectification branch, upserted with the branch's whole current state at each step, so a retried
activity or a worker restart writes the same row again and never a second one. The extension terms (how long,
how early to ask) are read from the rule pack in force by an activity, like every deadline: a pack changed
later never changes what a running branch was told."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from pydantic import AwareDatetime, BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.calendar import CHINA, _packs
from domain.rules import RulePackError, overrides_from_env, pack_in_force, rules_dir

RULE_ID = "rectification"


class RectificationRow(BaseModel):
    workflow_id: str
    sample_no: str
    ordered_at: datetime = Field(description="the order notice issued (sample clock)")
    due: datetime = Field(description="the rectification deadline in force, extension included")
    extension_outcome: str | None = Field(default=None, description="granted / refused")
    extended_days: int | None = None
    extension_decided_at: datetime | None = None
    report_at: datetime | None = None
    review_outcome: str | None = Field(default=None, description="accepted / rejected")
    review_reason: str | None = None
    follow_up_sample_no: str | None = None
    closed_outcome: str | None = Field(default=None, description="accepted / rejected / missed")
    updated_at: datetime


class TermsRequest(BaseModel):
    start: AwareDatetime = Field(description="when the order was served: picks the rule pack in force")


class RectificationTerms(BaseModel):
    extension_length: int = Field(description="the most days one extension may add")
    extension_request_before: int = Field(description="an extension is decided at least this many days before expiry")
    extension_note: str | None = None


_UPSERT = """
INSERT INTO rectifications AS r (
    workflow_id, sample_no, ordered_at, due, extension_outcome, extended_days, extension_decided_at,
    report_at, review_outcome, review_reason, follow_up_sample_no, closed_outcome, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (workflow_id) DO UPDATE SET
    due = excluded.due, extension_outcome = excluded.extension_outcome, extended_days = excluded.extended_days,
    extension_decided_at = excluded.extension_decided_at, report_at = excluded.report_at,
    review_outcome = excluded.review_outcome, review_reason = excluded.review_reason,
    follow_up_sample_no = excluded.follow_up_sample_no, closed_outcome = excluded.closed_outcome,
    updated_at = excluded.updated_at
WHERE excluded.updated_at >= r.updated_at
"""


class RectificationRecords:
    """Registered by the worker as `RectificationRecords(pool)`; activity names carry the branch's prefix."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="rectification_save")
    async def save(self, row: RectificationRow) -> None:
        await self.pool.execute(
            _UPSERT, row.workflow_id, row.sample_no, row.ordered_at, row.due, row.extension_outcome,
            row.extended_days, row.extension_decided_at, row.report_at, row.review_outcome, row.review_reason,
            row.follow_up_sample_no, row.closed_outcome, row.updated_at,
        )


@activity.defn(name="rectification_terms")
async def rectification_terms(req: TermsRequest) -> RectificationTerms:
    """The extension terms of the rectification rule in the pack in force on the day the order was served
    (the same cached packs and overrides as the deadlines, so the two never disagree)."""
    try:
        pack = pack_in_force(_packs(rules_dir()), req.start.astimezone(CHINA).date())
        rule = pack.with_overrides(overrides_from_env()).rule(RULE_ID)
    except (RulePackError, KeyError) as exc:
        raise ApplicationError(str(exc), type="NoRectificationRule", non_retryable=True) from exc
    if rule.extension_length is None:
        raise ApplicationError(f"rule {RULE_ID} has no extension_length", type="NoRectificationRule",
                               non_retryable=True)
    return RectificationTerms(
        extension_length=rule.extension_length,
        extension_request_before=rule.extension_request_before or 0,
        extension_note=rule.extension_note,
    )


async def rectification_rows(pool: asyncpg.Pool, sample_no: str) -> list[dict[str, Any]]:
    """The rectification rows of a sample (for the CLI and tests)."""
    return [dict(r) for r in await pool.fetch("SELECT * FROM rectifications WHERE sample_no = $1", sample_no)]
