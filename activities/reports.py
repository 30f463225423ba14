"""Oversight reports read from the records (issue 13): one fact per sample of the scope and the deadlines of its
steps, from PostgreSQL, turned into the report's tables by domain/reporting.py. Read-only, in one read-only
transaction, so every table of a report counts the same records.

`plan_report_summary(plan_id)` is the activity a plan workflow calls for its closing summary; `read_report`
is the plain function the CLI and that activity share. The renderers are activities/report_render.py."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import asyncpg
from temporalio import activity

from activities.calendar import is_working_day
from activities.holiday_files import current_calendar
from domain.branches import BRANCHES
from domain.holidays import Calendar
from domain.reporting import Report, ReportScope, SampleFact, StepDeadlines, build_report
from domain.strata import PRICE_LEVEL_TITLES, enterprise_size, price_range
from domain.windows import CHINA

# A row as read (asyncpg), or as a test's in-memory store keeps it.
Row = Mapping[str, Any] | asyncpg.Record

# A branch's workflow id is its sample's plus -<branch>[-<n>] (domain/branches.py): stripped, the sample's.
BRANCH_SUFFIX = r"-(" + "|".join(re.escape(b) for b in BRANCHES) + r")(-[0-9]+)?$"

# Requests a party makes when it wants to, and windows that simply close: no deadline of theirs is missed.
NOT_DEADLINES = ("objection", "credit_repair_application", "rectification_extension")

# The day a sample belongs to a period by: the order's date, else the day (China time) its record began.
_DAY = """coalesce((s."order"->>'ordered_on')::date, (s.created_at AT TIME ZONE 'Asia/Shanghai')::date)"""

_SAMPLES = f"""
SELECT s.sample_no, s.workflow_id, s.verdict, s."order" AS o, {_DAY} AS day, b.entry AS bulletin
  FROM samples s LEFT JOIN results_bulletin b ON b.sample_no = s.sample_no
 WHERE ($1::text IS NULL OR s.plan_id = $1)
   AND ($2::date IS NULL OR {_DAY} >= $2) AND ($3::date IS NULL OR {_DAY} < $3)
   AND ($4::text IS NULL OR left(s."order"->'sampled_party'->>'region', $5) = left($4, $5))
 ORDER BY s.sample_no
"""

# The sample's own decisions the lab's figures come from, in order of arrival.
_LAB_DECISIONS = """
SELECT workflow_id, kind, outcome, received_at, decision->'data' AS data
  FROM decisions
 WHERE accepted AND workflow_id = ANY($1) AND kind IN ('sample_receipt', 'lab_report', 'retest_report')
 ORDER BY received_at, id
"""

# Per workflow (the sample's or a branch's) and awaited kind: decisions taken by people, defaults taken by the
# rule pack when nobody decided, escalations of a wait past its deadline (the outbox's `escalation` rows).
_STEPS = """
WITH scope(sample_workflow_id) AS (SELECT unnest($1::text[])),
marks AS (
    SELECT workflow_id, kind, via, false AS escalation FROM decisions WHERE accepted
    UNION ALL SELECT workflow_id, payload->>'kind', NULL, true FROM outbox WHERE channel = 'escalation'
),
owned AS (
    SELECT m.*, coalesce(a.sample_workflow_id, b.sample_workflow_id) AS sample_workflow_id
      FROM marks m
      LEFT JOIN scope a ON a.sample_workflow_id = m.workflow_id
      LEFT JOIN scope b ON a.sample_workflow_id IS NULL AND b.sample_workflow_id = regexp_replace(m.workflow_id, $2, '')
)
SELECT sample_workflow_id, workflow_id, kind,
       count(*) FILTER (WHERE NOT escalation AND via <> 'default') AS decided,
       count(*) FILTER (WHERE NOT escalation AND via = 'default') AS defaulted,
       count(*) FILTER (WHERE escalation) AS escalated
  FROM owned
 WHERE sample_workflow_id IS NOT NULL AND kind IS NOT NULL AND NOT kind = ANY($3)
 GROUP BY 1, 2, 3
"""

# Post-handling outcomes per sample, from the branches' records (a merged case's penalty counts for each of
# its samples).
_OUTCOMES = """
SELECT sample_no, 'rectified' AS outcome FROM rectifications
 WHERE closed_outcome IN ('accepted', 'corrected_after_announcement', 'corrected_after_suspension')
UNION ALL SELECT sample_no, 'revocation_proposed' FROM rectifications WHERE closed_outcome = 'revocation_proposed'
UNION ALL SELECT sample_no, 'penalised' FROM enforcement_cases WHERE outcome = 'penalty' AND sample_no IS NOT NULL
UNION ALL SELECT m->>'sample_no', 'penalised' FROM enforcement_cases, jsonb_array_elements(merged_samples) m
 WHERE outcome = 'penalty' AND jsonb_typeof(merged_samples) = 'array'
UNION ALL SELECT sample_no, 'crime_transferred' FROM enforcement_cases
 WHERE crime_decision = 'transfer' AND sample_no IS NOT NULL
UNION ALL SELECT sample_no, 'recalled' FROM recalls WHERE recall_type IS NOT NULL
UNION ALL SELECT sample_no, 'delisted' FROM platform_actions WHERE confirmation = 'delisted'
UNION ALL SELECT sample_no, 'certificate_suspended' FROM certificate_actions WHERE action = 'suspended'
UNION ALL SELECT sample_no, 'certificate_revoked' FROM certificate_actions WHERE action = 'revoked'
UNION ALL SELECT sample_no, 'credit_listed' FROM credit_listings
"""

# A plan's draw may record the strata it drew by (issue 12's `plan_samples`, when that table exists).
_STRATA = """
SELECT sample_no, stratum FROM plan_samples WHERE sample_no = ANY($1)
"""


def _working_days(start: datetime, end: datetime, cal: Calendar) -> int:
    """Working days after the day of `start` up to the day of `end` (China time): the start day is not counted."""
    first, last = start.astimezone(CHINA).date(), end.astimezone(CHINA).date()
    days, d = 0, first
    while d < last:
        d = date.fromordinal(d.toordinal() + 1)
        days += is_working_day(d, cal)[0]
    return days


def _failed_items(items: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(i.get("item") or ""), str(i.get("standard") or "")) for i in items or () if isinstance(i, dict))


def sample_fact(row: Row, lab: list[Row], steps: dict[tuple[str, str], list[int]],
                outcomes: set[str], stratum: dict[str, Any], cal: Calendar) -> SampleFact:
    """One sample's fact from its `samples` row (with its order as `o`, its `day` and its bulletin entry), its
    lab decisions, the deadline counts of its workflows, its outcomes and its plan's stratum."""
    o: dict[str, Any] = row["o"]
    product, party = o.get("product") or {}, o.get("sampled_party") or {}
    producer = o.get("labelled_producer") or party
    agency = o.get("inspection_agency") or {}
    receipts = [d for d in lab if d["kind"] == "sample_receipt"]
    accepted = next((d["received_at"] for d in receipts if d["outcome"] == "accepted"), None)
    reports = [d for d in lab if d["kind"] == "lab_report"]
    retests = [d for d in lab if d["kind"] == "retest_report"]
    results = retests or reports
    last: dict[str, Any] = (results[-1]["data"] or {}) if results else {}  # the report the verdict stands on
    bulletin = row["bulletin"] or {}
    first_fail = bool(reports) and reports[0]["outcome"] == "fail"
    wid = row["workflow_id"]
    overdue = any(steps.get((wid, k), [0, 0, 0])[2] for k in ("lab_report", "retest_report"))
    return SampleFact(
        sample_no=row["sample_no"], plan_id=str(o.get("plan_id") or ""), day=row["day"],
        region=str(party.get("region") or ""), channel=str(o.get("channel") or ""),
        task_type=str(o.get("task_type") or ""), product_code=str(product.get("classification_code") or ""),
        product_name=str(product.get("name") or ""), brand=str(product.get("brand") or ""),
        model=str(product.get("model") or ""), batch=product.get("batch") or None,
        price_range=price_range(product.get("price")),
        price_level=str(stratum["price_band"]) if stratum.get("price_band") in PRICE_LEVEL_TITLES else None,
        size=enterprise_size(party.get("credit_code"), stratum.get("enterprise_size")),
        sampled_party=str(party.get("name") or ""), producer=str(producer.get("name") or ""),
        agency_code=str(agency.get("code") or ""), agency=str(agency.get("name") or ""),
        verdict=row["verdict"],
        report_no=bulletin.get("report_no") or last.get("report_no"),
        failed_items=_failed_items(bulletin["failed_items"] if "failed_items" in bulletin
                                   else last.get("failed_items")),
        lab_reported=bool(reports), first_fail=first_fail,
        overturned=first_fail and any(d["outcome"] == "pass" for d in retests),
        lab_rejections=sum(d["outcome"] == "rejected" for d in receipts),
        turnaround=_working_days(accepted, reports[0]["received_at"], cal) if accepted and reports else None,
        testing_days=int(o.get("testing_working_days") or 20), lab_overdue=overdue,
        outcomes=frozenset(outcomes),
    )


async def _strata(conn: Any, sample_nos: list[str]) -> dict[str, dict[str, Any]]:
    if not await conn.fetchval("SELECT to_regclass('plan_samples') IS NOT NULL AND EXISTS (SELECT 1 FROM "
                               "information_schema.columns WHERE table_name = 'plan_samples' AND column_name = 'stratum')"):
        return {}
    rows = await conn.fetch(_STRATA, sample_nos)
    return {r["sample_no"]: r["stratum"] if isinstance(r["stratum"], dict) else {} for r in rows}


async def read_report(pool: asyncpg.Pool, scope: ReportScope, today: date | None = None) -> Report:
    """The report of `scope` from the records, every table counted in one snapshot."""
    days = scope.days
    width = None
    if scope.region:
        width = 2 if scope.region.endswith("0000") else 4 if scope.region.endswith("00") else 6
    async with pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
        rows = await conn.fetch(_SAMPLES, scope.plan_id, days[0] if days else None, days[1] if days else None,
                                scope.region, width)
        ids = [r["workflow_id"] for r in rows]
        nos = [r["sample_no"] for r in rows]
        lab: dict[str, list[Row]] = {}
        for d in await conn.fetch(_LAB_DECISIONS, ids):
            lab.setdefault(d["workflow_id"], []).append(d)
        step_counts: dict[tuple[str, str], list[int]] = {}
        owner: dict[str, str] = {}
        for s in await conn.fetch(_STEPS, ids, BRANCH_SUFFIX, list(NOT_DEADLINES)):
            step_counts[(s["workflow_id"], s["kind"])] = [s["decided"], s["defaulted"], s["escalated"]]
            owner[s["workflow_id"]] = s["sample_workflow_id"]
        outcomes: dict[str, set[str]] = {}
        for r in await conn.fetch(f"SELECT * FROM ({_OUTCOMES}) x WHERE sample_no = ANY($1)", nos):
            outcomes.setdefault(r["sample_no"], set()).add(r["outcome"])
        strata = await _strata(conn, nos)
    cal = current_calendar()
    facts = [sample_fact(r, lab.get(r["workflow_id"], []), step_counts, outcomes.get(r["sample_no"], set()),
                   strata.get(r["sample_no"], {}), cal) for r in rows]
    region_of = {r["workflow_id"]: (r["sample_no"], f.region) for r, f in zip(rows, facts, strict=True)}
    steps = []
    for (wid, kind), (decided, defaulted, escalated) in sorted(step_counts.items()):
        sample_no, region = region_of[owner[wid]]
        # A wait answered after its escalation counts once, as missed; a default is a wait nobody answered.
        steps.append(StepDeadlines(sample_no=sample_no, region=region, kind=kind,
                                   met=max(decided - escalated, 0), missed=escalated + defaulted))
    return build_report(scope, facts, steps, today or datetime.now(CHINA).date())


class ReportActivities:
    """Register `ReportActivities(pool).plan_report_summary` with the worker (activities/registry.py)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def plan_report_summary(self, plan_id: str) -> dict[str, Any]:
        """The plan's totals for its closing summary (Report.summary: samples, pass rate, deadlines met and
        missed, post-handling outcomes, failed standards, the agencies ranked). Read-only: a retry reads again."""
        return (await read_report(self.pool, ReportScope(plan_id=plan_id))).summary()
