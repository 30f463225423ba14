"""The shared registers a final result feeds (migrations/002_registers.sql): enterprises and their fail
history, the post-licence inspection list, the sampling targets plans draw from, shops' fails and the key
list, the results bulletin. Also the platform branch's and the lead branch's own records (007).

Every activity is idempotent: each row is keyed (sample no, credit code, workflow id), a retry inserts
nothing new, and what an activity returns is computed from the stored rows, so a retry answers the same."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, Field
from temporalio import activity

from domain.decisions import EvidenceRef
from domain.models import Party, SampleOrder, TaskType


class RegisterRequest(BaseModel):
    """What every `register_*` activity takes: the sample's final result on a date."""

    workflow_id: str = Field(description="the sample's workflow id, sample-<no>")
    order: SampleOrder
    verdict: str = Field(description="the final verdict: fail (or pass for the bulletin)")
    failed_items: list[dict[str, Any]] = Field(default_factory=list, description="FailedItem dicts")
    on: date = Field(description="the date of the final verdict: bulletin quarter, shop-fail year")
    report_no: str | None = None
    at: datetime | None = Field(default=None, description="when recorded; default: when first written")


def _at(req: RegisterRequest) -> datetime:
    return req.at or datetime.now(UTC)


def _producer(order: SampleOrder) -> Party:
    """Who made the product: the labelled producer when named, else the sampled party (on site)."""
    return order.labelled_producer or order.sampled_party


def _parties(order: SampleOrder) -> list[tuple[Party, str]]:
    """The sampled party, and the labelled producer when present and a different enterprise."""
    parties = [(order.sampled_party, "sampled_party")]
    lp = order.labelled_producer
    if lp is not None and lp.credit_code != order.sampled_party.credit_code:
        parties.append((lp, "labelled_producer"))
    return parties


def shop_key(order: SampleOrder) -> tuple[str, str] | None:
    """(platform, shop id or, when the platform gives none, shop name); None for offline samples."""
    p = order.platform
    if p is None or not order.channel.purchased:
        return None
    return p.platform, p.shop_id or p.shop_name


def bulletin_period(on: date) -> str:
    return f"{on.year}-Q{(on.month - 1) // 3 + 1}"


def _items_text(items: list[dict[str, Any]]) -> str:
    return "；".join(f"{i.get('item')}（{i.get('standard')}）" for i in items)


_UPSERT_ENTERPRISE = """
INSERT INTO enterprises (credit_code, name, region, updated_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (credit_code) DO UPDATE SET name = excluded.name, region = excluded.region,
    updated_at = GREATEST(enterprises.updated_at, excluded.updated_at)
"""

# region: the organising regulator's (where the fail was found), as the cross-region merge reads it.
_INSERT_FAIL = """
INSERT INTO enterprise_fails (sample_no, credit_code, role, region, product_code, brand, model, batch, failed_on)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (sample_no, credit_code) DO NOTHING
"""

_INSERT_TARGET = """
INSERT INTO sampling_targets (credit_code, source, sample_no, product_code, region, note, added_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (credit_code, source, sample_no) DO NOTHING
"""

_INSERT_SHOP_FAIL = """
INSERT INTO shop_fails (sample_no, platform, shop_key, year, failed_on) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (sample_no) DO NOTHING
"""

# Consecutive calendar years, whichever of the two fails is registered first (an objection can delay one).
_NEIGHBOUR_YEARS = """
SELECT DISTINCT year FROM shop_fails
WHERE platform = $1 AND shop_key = $2 AND year IN ($3 - 1, $3 + 1)
"""

_UPSERT_KEY_SHOP = """
INSERT INTO key_list_shops (platform, shop_key, shop_name, years, listed_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (platform, shop_key) DO UPDATE SET years = (
    SELECT array_agg(DISTINCT y ORDER BY y) FROM unnest(key_list_shops.years || excluded.years) AS y
)
"""

_INSERT_BULLETIN = """
INSERT INTO results_bulletin (sample_no, workflow_id, period, verdict, entry, published_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (sample_no) DO NOTHING
"""

_INSERT_POST_LICENCE = """
INSERT INTO post_licence_list (sample_no, credit_code, licence_no, reason, listed_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (sample_no) DO NOTHING
"""


class Registers:
    """Register `Registers(pool).register_*` with the worker (found by activities/registry.py)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def register_enterprise_fail(self, req: RegisterRequest) -> list[str]:
        """The fail enters the history of the sampled party and of the labelled producer (when another
        enterprise). Returns their credit codes."""
        o, at = req.order, _at(req)
        async with self.pool.acquire() as conn, conn.transaction():
            for party, role in _parties(o):
                await conn.execute(_UPSERT_ENTERPRISE, party.credit_code, party.name, party.region, at)
                await conn.execute(
                    _INSERT_FAIL, o.sample_no, party.credit_code, role, o.region, o.product.classification_code,
                    o.product.brand, o.product.model, o.product.batch, req.on,
                )
        return [p.credit_code for p, _ in _parties(o)]

    @activity.defn
    async def register_post_licence(self, req: RegisterRequest) -> bool:
        """A licensed producer (生产许可证) goes on the post-licence inspection list and, as a post-licence
        problem enterprise, on the sampling targets. False when the product carries no licence."""
        o, at = req.order, _at(req)
        licence = o.product.production_licence
        if not licence:
            return False
        producer = _producer(o)
        reason = f"产品质量监督抽查不合格（抽样单编号 {o.sample_no}）：{_items_text(req.failed_items)}"
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_INSERT_POST_LICENCE, o.sample_no, producer.credit_code, licence, reason, at)
            await conn.execute(
                _INSERT_TARGET, producer.credit_code, "post_licence_problem", o.sample_no,
                o.product.classification_code, producer.region, f"证后检查问题企业（许可证 {licence}）", at,
            )
        return True

    @activity.defn
    async def register_shop_fail(self, req: RegisterRequest) -> bool:
        """Record an online or livestream shop's fail; a shop that also failed in the neighbouring calendar
        year goes on the key list and the sampling targets. Returns whether the shop is on the key list."""
        o, at = req.order, _at(req)
        key = shop_key(o)
        if key is None:
            return False
        platform, shop = key
        year = req.on.year
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_INSERT_SHOP_FAIL, o.sample_no, platform, shop, year, req.on)
            neighbours = [r["year"] for r in await conn.fetch(_NEIGHBOUR_YEARS, platform, shop, year)]
            if neighbours:
                assert o.platform is not None
                await conn.execute(_UPSERT_KEY_SHOP, platform, shop, o.platform.shop_name,
                                   sorted({year, *neighbours}), at)
                await conn.execute(
                    _INSERT_TARGET, o.sampled_party.credit_code, "key_list_shop", o.sample_no,
                    o.product.classification_code, o.sampled_party.region,
                    f"网店连续年度抽查不合格（{platform} {o.platform.shop_name}，"
                    f"{'、'.join(str(y) for y in sorted({year, *neighbours}))}年），列入重点监管名单", at,
                )
            listed = await conn.fetchval(
                "SELECT 1 FROM key_list_shops WHERE platform = $1 AND shop_key = $2", platform, shop
            )
        return listed is not None

    @activity.defn
    async def register_bulletin(self, req: RegisterRequest) -> str:
        """The final result enters the results bulletin of the verdict's quarter; returns the period."""
        o = req.order
        period = bulletin_period(req.on)
        entry = {
            "sample_no": o.sample_no,
            "product": o.product.name,
            "brand": o.product.brand,
            "model": o.product.model,
            "batch": o.product.batch,
            "sampled_party": {"name": o.sampled_party.name, "credit_code": o.sampled_party.credit_code},
            "labelled_producer": (
                {"name": o.labelled_producer.name, "credit_code": o.labelled_producer.credit_code}
                if o.labelled_producer else None
            ),
            "platform": (
                {"platform": o.platform.platform, "shop": o.platform.shop_name} if o.platform else None
            ),
            "region": o.region,
            "channel": o.channel.value,
            "task_type": o.task_type.value,
            "verdict": req.verdict,
            "failed_items": [
                {"item": i.get("item"), "standard": i.get("standard"), "result": i.get("result")}
                for i in req.failed_items
            ],
            "report_no": req.report_no,
            "lab": o.inspection_agency.name,
            "verdict_on": req.on.isoformat(),
        }
        await self.pool.execute(_INSERT_BULLETIN, o.sample_no, req.workflow_id, period, req.verdict, entry, _at(req))
        return period

    @activity.defn
    async def register_linked_sampling(self, req: RegisterRequest) -> list[str]:
        """An evaluative sample's risk finding (issue 3 item 12) proposes linked sampling for the next
        plan: the province samples at circulation, the city or county at production. Returns the credit
        codes proposed (none for other task types or without a risk finding)."""
        o, at = req.order, _at(req)
        if o.task_type is not TaskType.EVALUATIVE or req.verdict == "pass":
            return []
        note = (
            f"评价性抽查风险发现（抽样单编号 {o.sample_no}，{o.product.name} {o.product.brand} {o.product.model}"
            f"：{_items_text(req.failed_items) or '风险项目'}）：建议下一计划联动抽查，"
            "省级在流通领域抽查，市县在生产领域抽查"
        )
        parties = _parties(o)
        async with self.pool.acquire() as conn, conn.transaction():
            for party, _ in parties:
                await conn.execute(
                    _INSERT_TARGET, party.credit_code, "evaluative_linked", o.sample_no,
                    o.product.classification_code, party.region, note, at,
                )
        return [p.credit_code for p, _ in parties]


# --- the platform branch's and the lead branch's own records (007) -----------------------------------


class PlatformRequest(BaseModel):
    workflow_id: str
    sample_no: str
    platform: str
    shop: str
    listing_id: str
    requested_at: datetime
    handover_reference: str
    due: datetime
    key_listed: bool


class PlatformClosing(BaseModel):
    workflow_id: str
    confirmation: str
    reason: str | None = None
    confirmed_at: datetime
    closed_outcome: str


class LeadEntry(BaseModel):
    workflow_id: str
    sample_no: str
    lead_no: int
    type: str
    description: str
    evidence: list[EvidenceRef]
    routed_to: str
    recorded_at: datetime


class LeadReferral(BaseModel):
    workflow_id: str
    handover_reference: str


class LeadClosing(BaseModel):
    workflow_id: str
    outcome: str
    reason: str | None = None
    closed_at: datetime


class BranchRecords:
    """Rows of `platform_actions` and `leads`: inserted once, then completed by idempotent updates."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def platform_record_request(self, r: PlatformRequest) -> None:
        await self.pool.execute(
            """
            INSERT INTO platform_actions (workflow_id, sample_no, platform, shop, listing_id, requested_at,
                handover_reference, due, key_listed)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (workflow_id) DO NOTHING
            """,
            r.workflow_id, r.sample_no, r.platform, r.shop, r.listing_id, r.requested_at, r.handover_reference,
            r.due, r.key_listed,
        )

    @activity.defn
    async def platform_record_closing(self, r: PlatformClosing) -> None:
        await self.pool.execute(
            """
            UPDATE platform_actions SET confirmation = $2, confirmation_reason = $3, confirmed_at = $4,
                closed_outcome = $5
            WHERE workflow_id = $1
            """,
            r.workflow_id, r.confirmation, r.reason, r.confirmed_at, r.closed_outcome,
        )

    @activity.defn
    async def lead_record(self, r: LeadEntry) -> None:
        await self.pool.execute(
            """
            INSERT INTO leads (workflow_id, sample_no, lead_no, type, description, evidence, routed_to, recorded_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (workflow_id) DO NOTHING
            """,
            r.workflow_id, r.sample_no, r.lead_no, r.type, r.description,
            [e.model_dump(mode="json", exclude_none=True) for e in r.evidence], r.routed_to, r.recorded_at,
        )

    @activity.defn
    async def lead_record_referral(self, r: LeadReferral) -> None:
        await self.pool.execute(
            "UPDATE leads SET handover_reference = $2 WHERE workflow_id = $1", r.workflow_id, r.handover_reference
        )

    @activity.defn
    async def lead_record_outcome(self, r: LeadClosing) -> None:
        await self.pool.execute(
            "UPDATE leads SET outcome = $2, outcome_reason = $3, closed_at = $4 WHERE workflow_id = $1",
            r.workflow_id, r.outcome, r.reason, r.closed_at,
        )
