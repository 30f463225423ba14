"""The planning data in PostgreSQL (migrations/015_planning.sql): importing the pool, the signals and the frame,
and reading everything a plan's draw needs — then drawing it (`load_and_draw`, the pure draw being
`domain.planning.draw_plan`).

Imports are idempotent: a row already stored as it is changes nothing, a changed row is updated (by its key:
product code, (source, reference), candidate id), so a crashed import is simply run again."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

from activities.db import Db, create_pool
from activities.rule_packs import rule_pack_for
from activities.toml_files import read_toml
from domain.bounds import error_lines
from domain.csv_rows import parse_csv
from domain.frame import Candidate
from domain.jurisdiction import area_prefix
from domain.planning import (
    DrawPolicy,
    HigherPlanSample,
    SamplingHistory,
    ShopKey,
    draw_plan,
    period_bounds,
)
from domain.plans import PlanDraw, PlanSpec
from domain.pool import PoolEntry, Sampled
from domain.risk import ImportedSignal, RiskSignal, SignalSource

log = logging.getLogger(__name__)

PLANNING_DIR = Path(__file__).resolve().parent.parent / "planning"
POLICY_FILE = PLANNING_DIR / "policy.toml"
IMPORT_CHUNK = 1000


class Imported(NamedTuple):
    inserted: int
    updated: int
    unchanged: int


# --- the draw's policy ------------------------------------------------------------------------------


class PolicyError(ValueError):
    pass


def load_policy(on: date, path: Path | None = None) -> DrawPolicy:
    """planning/policy.toml (local policy), with `clean_record_months` from the rule pack in force on `on`."""
    where = str(path or POLICY_FILE)
    data = read_toml(path or POLICY_FILE, where, 64 * 1024, PolicyError)
    rule = rule_pack_for(on).rule("clean_record", on)
    try:
        return DrawPolicy.model_validate({**data, "clean_record_months": rule.length})
    except ValidationError as err:
        raise PolicyError(f"{where}: " + "; ".join(error_lines(err))) from None


# --- imports ----------------------------------------------------------------------------------------


class _Table(NamedTuple):
    name: str
    model: type[BaseModel]
    key: tuple[str, ...]
    row: Callable[[Any], dict[str, Any]]

    def parse(self, text: str, where: str) -> list[Any]:
        """The file's rows as models; `CsvRefused` naming every bad line and field (and a key given twice)."""
        return parse_csv(text, self.model, where=where, key=lambda r: tuple(getattr(r, k) for k in self.key))


def _pool_row(e: PoolEntry) -> dict[str, Any]:
    return e.model_dump()


def _signal_row(s: RiskSignal) -> dict[str, Any]:
    return s.model_dump(mode="json")


def _frame_row(c: Candidate) -> dict[str, Any]:
    return {"candidate_id": c.candidate_id, "product_code": c.product_code, "region": c.region,
            "credit_code": c.credit_code, "channel": c.channel.value,
            "candidate": c.model_dump(mode="json", exclude_none=True)}


POOL = _Table("product_pool", PoolEntry, ("product_code",), _pool_row)
SIGNALS = _Table("risk_signals", ImportedSignal, ("source", "reference"), _signal_row)
FRAME = _Table("sampling_frame", Candidate, ("candidate_id",), _frame_row)


def _import_sql(table: _Table, columns: Sequence[str]) -> str:
    changing = [c for c in columns if c not in table.key]
    sets = ", ".join(f"{c} = excluded.{c}" for c in [*changing, "updated_at"])
    differs = " OR ".join(f"t.{c} IS DISTINCT FROM excluded.{c}" for c in changing)
    cols = ", ".join([*columns, "updated_at"])
    return (
        f"INSERT INTO {table.name} AS t ({cols})\n"
        f"SELECT {', '.join(columns)}, $2 FROM jsonb_populate_recordset(NULL::{table.name}, $1::jsonb)\n"
        f"ON CONFLICT ({', '.join(table.key)}) DO UPDATE SET {sets}\nWHERE {differs}\n"
        "RETURNING (xmax = 0) AS inserted"
    )


async def import_rows(db: Db, table: _Table, items: Sequence[Any],
                      progress: Callable[[int], None] | None = None) -> Imported:
    """Insert new rows, update changed ones, leave equal ones alone; in chunks, each its own statement (a
    crash halfway leaves whole chunks, and the same import run again finishes the job)."""
    inserted = updated = 0
    for at in range(0, len(items), IMPORT_CHUNK):
        rows = [table.row(item) for item in items[at: at + IMPORT_CHUNK]]
        sql = _import_sql(table, list(rows[0]))
        now = datetime.now(UTC)
        flags = [r["inserted"] for r in await db.fetch(sql, rows, now)]
        inserted += sum(flags)
        updated += len(flags) - sum(flags)
        if progress:
            progress(len(rows))
    return Imported(inserted, updated, len(items) - inserted - updated)


# --- reading what a draw needs ------------------------------------------------------------------------


async def read_pool(db: Db) -> list[PoolEntry]:
    rows = await db.fetch("SELECT product_code, name, category, standards, cycle_months, note FROM product_pool "
                          "ORDER BY product_code")
    return [PoolEntry.model_validate(dict(r)) for r in rows]


async def read_sampled(db: Db) -> list[Sampled]:
    """Per product code and organising region: the latest sample started and how many were."""
    rows = await db.fetch(
        "SELECT product_code, region, max(created_at)::date AS last_sampled_on, count(*) AS count FROM samples "
        "WHERE product_code IS NOT NULL AND region IS NOT NULL GROUP BY product_code, region")
    return [Sampled.model_construct(**dict(r)) for r in rows]


async def read_frame(db: Db, region: str, codes: Sequence[str] | None = None) -> list[Candidate]:
    """The candidates in `region`'s area (of `codes` when given)."""
    rows = await db.fetch(
        "SELECT candidate FROM sampling_frame WHERE region LIKE $1 || '%' AND ($2::text[] IS NULL OR "
        "product_code = ANY($2)) ORDER BY candidate_id", area_prefix(region), list(codes) if codes else None)
    return [Candidate.model_validate(r["candidate"]) for r in rows]


async def read_signals(db: Db, policy: DrawPolicy) -> list[RiskSignal]:
    """The imported signals, and Spotcheck's own: every final fail (enterprise_fails) and every lead found while
    sampling that was not found unfounded (leads)."""
    imported = await db.fetch(
        "SELECT source, reference, product_code, region, credit_code, weight, observed_on, note FROM risk_signals")
    fails = await db.fetch(
        "SELECT sample_no || '/' || credit_code AS reference, product_code, region, credit_code, failed_on "
        "AS observed_on FROM enterprise_fails")
    leads = await db.fetch(
        "SELECT l.workflow_id AS reference, s.product_code, s.region, s.enterprise_code AS credit_code, "
        "l.recorded_at::date AS observed_on FROM leads l JOIN samples s USING (sample_no) "
        "WHERE l.outcome IS DISTINCT FROM 'unfounded' AND s.product_code IS NOT NULL")
    # Rows of Spotcheck's own tables were validated as orders when written.
    out = [RiskSignal.model_construct(**{**dict(r), "source": SignalSource(r["source"])}) for r in imported]
    out += [RiskSignal.model_construct(source=SignalSource.SPOT_CHECK_FAIL, weight=policy.fail_weight, note=None,
                                       **dict(r)) for r in fails]
    out += [RiskSignal.model_construct(source=SignalSource.SAMPLING_LEAD, weight=policy.lead_weight, note=None,
                                       **dict(r)) for r in leads]
    return out


async def read_history(db: Db, spec: PlanSpec) -> SamplingHistory:
    """Earlier sampling: per code and region, each enterprise's first sampling and latest fail, the key-list
    shops, the sampling targets, and for a follow-up plan the failed samples of the plan it follows."""
    first = await db.fetch("SELECT enterprise_code, min(created_at)::date AS day FROM samples "
                           "WHERE enterprise_code IS NOT NULL GROUP BY enterprise_code")
    failed = await db.fetch("SELECT credit_code, max(failed_on) AS day FROM enterprise_fails GROUP BY credit_code")
    shops = await db.fetch("SELECT platform, shop_key FROM key_list_shops")
    # A key-list shop is weighed as such (key_list_shops), not a second time as a target.
    targets = await db.fetch("SELECT credit_code, array_agg(DISTINCT source ORDER BY source) AS sources "
                             "FROM sampling_targets WHERE source <> 'key_list_shop' GROUP BY credit_code")
    follow = await db.fetch(
        "SELECT ef.credit_code, min(ef.sample_no) AS sample_no FROM enterprise_fails ef "
        "JOIN samples s USING (sample_no) WHERE s.plan_id = $1 GROUP BY ef.credit_code",
        spec.follow_up_of) if spec.follow_up_of else []
    return SamplingHistory(
        sampled=await read_sampled(db),
        first_sampled={r["enterprise_code"]: r["day"] for r in first},
        last_failed={r["credit_code"]: r["day"] for r in failed},
        key_list_shops=[ShopKey(platform=r["platform"], shop_key=r["shop_key"]) for r in shops],
        targets={r["credit_code"]: list(r["sources"]) for r in targets},
        failed_samples={r["credit_code"]: r["sample_no"] for r in follow},
    )


async def read_higher_plans(db: Db, spec: PlanSpec) -> list[HigherPlanSample]:
    """The product codes stored plans of the same year sample (the draw keeps those of overlapping periods) (`plans` and `plan_samples`, written by the plan
    workflow): none while those tables do not exist."""
    if not await db.fetchval("SELECT to_regclass('plan_samples') IS NOT NULL AND to_regclass('plans') IS NOT NULL"):
        return []
    rows = await db.fetch(
        "SELECT DISTINCT p.plan_id, p.period, p.level, p.region, ps.product_code FROM plan_samples ps "
        "JOIN plans p USING (plan_id) WHERE left(p.period, 4) = $1 AND p.plan_id <> $2 AND ps.cancelled_at IS NULL",
        spec.period[:4], spec.plan_id)
    return [HigherPlanSample.model_validate(dict(r)) for r in rows]


async def draw_from_db(db: Db, spec: PlanSpec, policy: DrawPolicy | None = None) -> PlanDraw:
    """Read the pool, frame, signals, history and higher plans of the period, and draw the plan: the same
    data and seed give the same draw (weights decay to the period's first day, not to today)."""
    start, _ = period_bounds(spec.period)
    policy = policy or load_policy(start)
    pool = await read_pool(db)
    return draw_plan(
        spec, pool, await read_frame(db, spec.region, spec.product_codes),
        await read_signals(db, policy), await read_history(db, spec), await read_higher_plans(db, spec), policy)


async def load_and_draw(spec: PlanSpec, db: Db | None = None) -> PlanDraw:
    """The plan's draw from PostgreSQL, through `db` (the calling activity's pool), else DATABASE_URL. Not an
    activity itself: a big plan's draw exceeds a Temporal payload (2 MB), so the plan workflow's own activity
    calls this and stores the draw."""
    if db is not None:
        return await draw_from_db(db, spec)
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        raise RuntimeError("DATABASE_URL is not set: the plan's draw reads the pool and the frame from PostgreSQL")
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        return await draw_from_db(pool, spec)
    finally:
        await pool.close()
