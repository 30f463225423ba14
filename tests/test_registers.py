"""The shared registers a final result feeds, against real PostgreSQL: each activity twice (a retry) writes
once; the key list takes shops failing in consecutive calendar years only."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import asyncpg

from activities.registers import RegisterRequest, Registers
from tests import factories as f


def _request(order: dict[str, Any], on: date, verdict: str = "fail") -> RegisterRequest:
    return RegisterRequest.model_validate({
        "workflow_id": f"sample-{order['sample_no']}", "order": order, "verdict": verdict,
        "failed_items": f.FAILED_ITEMS if verdict == "fail" else [], "on": on.isoformat(), "report_no": "R-1",
    })


def _online(shop_id: str | None = None, channel: str = "online") -> dict[str, Any]:
    order = f.order(channel)
    order["platform"]["shop_id"] = shop_id
    return order


async def _count(pool: asyncpg.Pool, sql: str, *args: Any) -> int:
    return int(await pool.fetchval(sql, *args))


async def test_enterprise_fail_records_the_seller_and_the_labelled_producer_once(pool: asyncpg.Pool) -> None:
    reg = Registers(pool)
    order = f.order("offline_circulation")
    req = _request(order, date(2026, 5, 6))
    first = await reg.register_enterprise_fail(req)
    assert await reg.register_enterprise_fail(req) == first  # a retry
    rows = await pool.fetch("SELECT credit_code, role, region, failed_on FROM enterprise_fails WHERE sample_no = $1"
                            " ORDER BY role DESC", order["sample_no"])
    assert [(r["credit_code"], r["role"]) for r in rows] == [
        (order["sampled_party"]["credit_code"], "sampled_party"),
        (order["labelled_producer"]["credit_code"], "labelled_producer"),
    ]
    assert {r["failed_on"] for r in rows} == {date(2026, 5, 6)}
    assert {r["region"] for r in rows} == {order["region"]}  # where the fail was found
    names = await pool.fetch("SELECT name FROM enterprises WHERE credit_code = ANY($1)", first)
    assert sorted(r["name"] for r in names) == sorted(
        [order["sampled_party"]["name"], order["labelled_producer"]["name"]])


async def test_enterprise_fail_of_a_producer_sampled_on_site_is_one_row(pool: asyncpg.Pool) -> None:
    order = f.order("offline_production")
    await Registers(pool).register_enterprise_fail(_request(order, date(2026, 5, 6)))
    assert await _count(pool, "SELECT count(*) FROM enterprise_fails WHERE sample_no = $1", order["sample_no"]) == 1


async def test_post_licence_lists_the_licensed_producer_and_targets_it(pool: asyncpg.Pool) -> None:
    reg = Registers(pool)
    order = f.order("offline_circulation")
    order["product"]["production_licence"] = "XK16-108-00123"
    req = _request(order, date(2026, 5, 6))
    assert await reg.register_post_licence(req) is True
    assert await reg.register_post_licence(req) is True
    producer = order["labelled_producer"]["credit_code"]  # the licence holder, not the shop
    listed = await pool.fetch("SELECT credit_code, licence_no, reason FROM post_licence_list WHERE sample_no = $1",
                              order["sample_no"])
    assert [(r["credit_code"], r["licence_no"]) for r in listed] == [(producer, "XK16-108-00123")]
    assert "输出电压（GB 4943.1-2022）" in listed[0]["reason"]
    targets = await pool.fetch("SELECT credit_code, source FROM sampling_targets WHERE sample_no = $1",
                               order["sample_no"])
    assert [(r["credit_code"], r["source"]) for r in targets] == [(producer, "post_licence_problem")]


async def test_post_licence_skips_an_unlicensed_product(pool: asyncpg.Pool) -> None:
    order = f.order("offline_production")
    assert await Registers(pool).register_post_licence(_request(order, date(2026, 5, 6))) is False
    assert await _count(pool, "SELECT count(*) FROM post_licence_list WHERE sample_no = $1", order["sample_no"]) == 0
    assert await _count(pool, "SELECT count(*) FROM sampling_targets WHERE sample_no = $1", order["sample_no"]) == 0


async def _key_listed(pool: asyncpg.Pool, platform: str, shop: str) -> list[int] | None:
    years = await pool.fetchval("SELECT years FROM key_list_shops WHERE platform = $1 AND shop_key = $2",
                                platform, shop)
    return list(years) if years is not None else None


async def test_a_shop_failing_in_consecutive_years_goes_on_the_key_list_once(pool: asyncpg.Pool) -> None:
    reg = Registers(pool)
    shop = f"S-{uuid.uuid4().hex[:8]}"
    earlier, later = _online(shop), _online(shop)
    assert await reg.register_shop_fail(_request(earlier, date(2025, 11, 3))) is False
    assert await _key_listed(pool, "某电商平台", shop) is None
    req = _request(later, date(2026, 2, 10))
    assert await reg.register_shop_fail(req) is True
    assert await reg.register_shop_fail(req) is True  # a retry changes nothing
    assert await _key_listed(pool, "某电商平台", shop) == [2025, 2026]
    assert await _count(pool, "SELECT count(*) FROM shop_fails WHERE shop_key = $1", shop) == 2
    targets = await pool.fetch("SELECT credit_code, note FROM sampling_targets WHERE source = 'key_list_shop'"
                               " AND sample_no = $1", later["sample_no"])
    assert [r["credit_code"] for r in targets] == [later["sampled_party"]["credit_code"]]
    assert "2025、2026" in targets[0]["note"]


async def test_the_key_list_holds_when_the_earlier_year_is_registered_last(pool: asyncpg.Pool) -> None:
    reg = Registers(pool)
    shop = f"S-{uuid.uuid4().hex[:8]}"
    assert await reg.register_shop_fail(_request(_online(shop), date(2026, 3, 1))) is False
    # The 2025 fail became final late (objection and re-test): the pair still counts.
    assert await reg.register_shop_fail(_request(_online(shop), date(2025, 12, 30))) is True
    assert await _key_listed(pool, "某电商平台", shop) == [2025, 2026]


async def test_two_fails_in_one_year_or_two_years_apart_are_not_key_listed(pool: asyncpg.Pool) -> None:
    reg = Registers(pool)
    same_year, apart = f"S-{uuid.uuid4().hex[:8]}", f"S-{uuid.uuid4().hex[:8]}"
    assert await reg.register_shop_fail(_request(_online(same_year), date(2026, 1, 5))) is False
    assert await reg.register_shop_fail(_request(_online(same_year), date(2026, 12, 28))) is False
    assert await reg.register_shop_fail(_request(_online(apart), date(2024, 6, 1))) is False
    assert await reg.register_shop_fail(_request(_online(apart), date(2026, 6, 1))) is False
    assert await _key_listed(pool, "某电商平台", same_year) is None
    assert await _key_listed(pool, "某电商平台", apart) is None
    assert await _count(pool, "SELECT count(*) FROM shop_fails WHERE shop_key = ANY($1)", [same_year, apart]) == 4


async def test_a_shop_without_an_id_is_known_by_its_name(pool: asyncpg.Pool) -> None:
    reg = Registers(pool)
    name = f"直播间-{uuid.uuid4().hex[:6]}"
    orders = [_online(None, "livestream") for _ in range(2)]
    for o in orders:
        o["platform"]["shop_name"] = name
    assert await reg.register_shop_fail(_request(orders[0], date(2025, 7, 1))) is False
    assert await reg.register_shop_fail(_request(orders[1], date(2026, 7, 1))) is True
    assert await _key_listed(pool, "某直播平台", name) == [2025, 2026]


async def test_an_offline_sample_has_no_shop_fail(pool: asyncpg.Pool) -> None:
    order = f.order("offline_circulation")
    assert await Registers(pool).register_shop_fail(_request(order, date(2026, 7, 1))) is False
    assert await _count(pool, "SELECT count(*) FROM shop_fails WHERE sample_no = $1", order["sample_no"]) == 0


async def test_bulletin_entry_in_the_quarter_of_the_verdict(pool: asyncpg.Pool) -> None:
    reg = Registers(pool)
    autumn, spring = f.order("online"), f.order("offline_production")
    assert await reg.register_bulletin(_request(autumn, date(2026, 11, 25))) == "2026-Q4"
    assert await reg.register_bulletin(_request(autumn, date(2026, 11, 25))) == "2026-Q4"
    assert await reg.register_bulletin(_request(spring, date(2027, 3, 31), verdict="pass")) == "2027-Q1"
    rows = await pool.fetch("SELECT sample_no, period, verdict, entry FROM results_bulletin WHERE sample_no = ANY($1)"
                            " ORDER BY period", [autumn["sample_no"], spring["sample_no"]])
    assert [(r["period"], r["verdict"]) for r in rows] == [("2026-Q4", "fail"), ("2027-Q1", "pass")]
    entry = rows[0]["entry"]
    assert (entry["product"], entry["brand"], entry["model"]) == ("移动电源", "闪充", "SC-20000")
    assert entry["sampled_party"]["name"] == autumn["sampled_party"]["name"]
    assert entry["region"] == "330100" and entry["lab"] == "浙江省产品质量安全科学研究院"
    assert entry["failed_items"][0]["standard"] == "GB 4943.1-2022"
    assert rows[1]["entry"]["failed_items"] == []


async def test_linked_sampling_proposed_for_an_evaluative_risk_finding(pool: asyncpg.Pool) -> None:
    reg = Registers(pool)
    order = f.order("evaluative")
    order["labelled_producer"] = {"name": "台州鲜享塑业有限公司", "credit_code": "91120222MA05QWERTN",
                                  "region": "331000"}
    req = _request(order, date(2026, 8, 1))
    proposed = await reg.register_linked_sampling(req)
    assert await reg.register_linked_sampling(req) == proposed
    rows = await pool.fetch("SELECT credit_code, region, note FROM sampling_targets WHERE source = 'evaluative_linked'"
                            " AND sample_no = $1 ORDER BY region", order["sample_no"])
    assert [(r["credit_code"], r["region"]) for r in rows] == [
        (order["sampled_party"]["credit_code"], "330302"), ("91120222MA05QWERTN", "331000")]
    assert all("省级在流通领域" in r["note"] and "市县在生产领域" in r["note"] for r in rows)


async def test_no_linked_sampling_for_a_routine_fail_or_an_evaluative_pass(pool: asyncpg.Pool) -> None:
    reg = Registers(pool)
    routine, clean = f.order("offline_production"), f.order("evaluative")
    assert await reg.register_linked_sampling(_request(routine, date(2026, 8, 1))) == []
    assert await reg.register_linked_sampling(_request(clean, date(2026, 8, 1), verdict="pass")) == []
    assert await _count(pool, "SELECT count(*) FROM sampling_targets WHERE sample_no = ANY($1)",
                        [routine["sample_no"], clean["sample_no"]]) == 0
