"""The rectification record (`rectifications`) and the rectification rule's extension terms.

One row per rectification branch, upserted with the branch's whole current state at each step, so a retried
activity or a worker restart writes the same row again and never a second one. The extension terms (how long,
how early to ask) are read from the rule pack in force by an activity, like every deadline: a pack changed
later never changes what a running branch was told."""

from __future__ import annotations

from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.calendar import CHINA, _packs
from activities.db import upsert
from activities.rule_packs import RulePackError, overrides_from_env, pack_in_force, rules_dir
from domain.records import RectificationRow, RectificationTerms, TermsRequest

__all__ = ["RectificationRecords", "RectificationRow", "RectificationTerms", "TermsRequest", "rectification_rows",
           "rectification_terms"]

RULE_ID = "rectification"


class RectificationRecords:
    """Registered by the worker as `RectificationRecords(pool)`; activity names carry the branch's prefix."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn(name="rectification_save")
    async def save(self, row: RectificationRow) -> None:
        await upsert(self.pool, "rectifications", row.model_dump(), key=["workflow_id"],
                     keep=["sample_no", "ordered_at"])


@activity.defn(name="rectification_terms")
async def rectification_terms(req: TermsRequest) -> RectificationTerms:
    """The extension terms of the rectification rule in the pack in force on the day the order was served
    (the same cached packs and overrides as the deadlines, so the two never disagree)."""
    try:
        on = req.start.astimezone(CHINA).date()
        rule = pack_in_force(_packs(rules_dir()), on).with_overrides(overrides_from_env()).rule(RULE_ID, on)
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
