"""The shared registers a final result feeds (migrations/002_registers.sql): enterprises and their fail
history, the post-licence inspection list, the sampling targets plans draw from, shops' fails and the key
list, the results bulletin. (The platform and lead branches' own records: activities/platform_records.py and
activities/lead_records.py.)

Every activity is idempotent: each row is keyed (sample no, credit code, workflow id), a retry inserts
nothing new, and what an activity returns is computed from the stored rows, so a retry answers the same.
The one state row, an enterprise's name and region, is upserted: an older write never overwrites a newer."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg
from temporalio import activity

from activities.db import Db, insert_once, upsert, write_time
from domain.models import Party, SampleOrder, TaskType
from domain.records import RegisterRequest

__all__ = ["RegisterRequest", "Registers", "bulletin_period", "shop_key"]


def _at(req: RegisterRequest) -> datetime:
    return write_time(req.at)


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


async def _add_target(db: Db, credit_code: str, source: str, o: SampleOrder, region: str, note: str,
                      at: datetime) -> None:
    """A sampling target for the next plans, once per (credit code, source, sample)."""
    await insert_once(db, "sampling_targets", {
        "credit_code": credit_code, "source": source, "sample_no": o.sample_no,
        "product_code": o.product.classification_code, "region": region, "note": note, "added_at": at,
    }, key=["credit_code", "source", "sample_no"])


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
                await upsert(conn, "enterprises", {
                    "credit_code": party.credit_code, "name": party.name, "region": party.region, "updated_at": at,
                }, key=["credit_code"])
                # region: the organising regulator's (where the fail was found): the cross-region merge reads it
                await insert_once(conn, "enterprise_fails", {
                    "sample_no": o.sample_no, "credit_code": party.credit_code, "role": role, "region": o.region,
                    "product_code": o.product.classification_code, "brand": o.product.brand,
                    "model": o.product.model, "batch": o.product.batch, "failed_on": req.on,
                }, key=["sample_no", "credit_code"])
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
            await insert_once(conn, "post_licence_list", {
                "sample_no": o.sample_no, "credit_code": producer.credit_code, "licence_no": licence,
                "reason": reason, "listed_at": at,
            }, key=["sample_no"])
            await _add_target(conn, producer.credit_code, "post_licence_problem", o, producer.region,
                              f"证后检查问题企业（许可证 {licence}）", at)
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
            await insert_once(conn, "shop_fails", {
                "sample_no": o.sample_no, "platform": platform, "shop_key": shop, "year": year, "failed_on": req.on,
            }, key=["sample_no"])
            neighbours = [r["year"] for r in await conn.fetch(_NEIGHBOUR_YEARS, platform, shop, year)]
            if neighbours:
                assert o.platform is not None
                await conn.execute(_UPSERT_KEY_SHOP, platform, shop, o.platform.shop_name,
                                   sorted({year, *neighbours}), at)
                await _add_target(
                    conn, o.sampled_party.credit_code, "key_list_shop", o, o.sampled_party.region,
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
        await insert_once(self.pool, "results_bulletin", {
            "sample_no": o.sample_no, "workflow_id": req.workflow_id, "period": period, "verdict": req.verdict,
            "entry": entry, "published_at": _at(req),
        }, key=["sample_no"])
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
                await _add_target(conn, party.credit_code, "evaluative_linked", o, party.region, note, at)
        return [p.credit_code for p, _ in parties]
