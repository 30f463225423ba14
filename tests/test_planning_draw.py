"""The plan draw's properties (issue 12), with hypothesis: drawn strata follow the targets, clean-record
enterprises are drawn less often and key-list shops more often, the same seed gives the same draw, the cycle
covers every code over successive periods, and no product is in both a province and a county plan of a period.
Pure: `domain.planning.draw_plan` on frames made here."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from activities.planning import load_policy
from domain import planning
from domain.credit_code import ALPHABET, with_check_character
from domain.frame import STRATA, Candidate
from domain.planning import DrawPolicy, HigherPlanSample, SamplingHistory, ShopKey
from domain.plans import OrganiserLevel, PlanDraw, PlanSpec
from domain.pool import PoolEntry, Sampled, add_months, due_by, pool_status
from domain.risk import RiskSignal, decayed, risk_scores

POLICY = load_policy(date(2026, 10, 1))  # the shipped policy, clean_record from the rule pack
VALUES = {"zhejiang_made": ("zhejiang", "other"), "channel": ("online", "offline"),
          "price_band": ("low", "mid", "high"), "enterprise_size": ("large", "medium", "small", "micro")}
AGENCY = {"name": "浙江省产品质量安全科学研究院", "code": "ZJPQ"}
DRAWS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def credit(rng: random.Random, region: str = "330106") -> str:
    return with_check_character(f"91{region}MA2" + "".join(rng.choice(ALPHABET) for _ in range(6)))


def candidate(rng: random.Random, n: int, code: str, region: str = "330106", *, credit_code: str | None = None,
              stratum: dict[str, str] | None = None, channel: str | None = None, shop: str | None = None) -> Candidate:
    """One frame row; its stratum random unless given."""
    s = stratum or {d: rng.choice(v) for d, v in VALUES.items()}
    online = s["channel"] == "online"
    channel = channel or (rng.choice(["online", "livestream"]) if online else
                          rng.choice(["offline_production", "offline_circulation"]))
    listing = {"platform": "某电商平台A", "shop_name": f"示例店{shop or n}", "shop_id": shop or f"S-{n}",
               "listing_id": f"L-{n}"} if channel in ("online", "livestream") else {}
    return Candidate(candidate_id=f"F-{code}-{n:05d}", product_code=code, product_name=f"产品{code}", brand="示例",
                     model=f"M-{n}", enterprise_name=f"示例企业{n}", credit_code=credit_code or credit(rng, region),
                     region=region, zhejiang_made=s["zhejiang_made"] == "zhejiang",
                     enterprise_size=s["enterprise_size"], channel=channel, price_band=s["price_band"],
                     livestream_room="示例直播间" if channel == "livestream" else None, **listing)


def pool_of(n: int, cycles: tuple[int, ...] = (12,)) -> list[PoolEntry]:
    return [PoolEntry(product_code=f"01.{i // 100:02d}.{i % 100:02d}", name=f"产品{i}", category="测试",
                      cycle_months=cycles[i % len(cycles)]) for i in range(n)]


def spec(budget: int, seed: int, *, level: str = "county", region: str = "330106", task_type: str = "routine",
         period: str = "2026Q4", plan_id: str = "P-TEST", **kw: object) -> PlanSpec:
    return PlanSpec.model_validate({"plan_id": plan_id, "name": "测试计划", "period": period, "level": level,
                                    "region": region, "task_type": task_type, "budget_batches": budget, "seed": seed,
                                    "inspection_agencies": [AGENCY], **kw})


def draw(s: PlanSpec, pool: list[PoolEntry], frame: list[Candidate], *, signals: list[RiskSignal] | None = None,
         history: SamplingHistory | None = None, higher: list[HigherPlanSample] | None = None,
         policy: DrawPolicy = POLICY) -> PlanDraw:
    return planning.draw_plan(s, pool, frame, signals or [], history or SamplingHistory(), higher or [], policy)


def shares(d: PlanDraw, dimension: str) -> dict[str, float]:
    counts = Counter(s.stratum[dimension] for s in d.samples)
    return {v: counts[v] / len(d.samples) for v in VALUES[dimension]}


CELLS = [dict(zip(VALUES, combo, strict=True)) for combo in itertools.product(*VALUES.values())]


@DRAWS
@given(seed=st.integers(0, 2**32), codes=st.integers(3, 12), per_code=st.integers(1, 6), risky=st.integers(0, 20),
       weights=st.fixed_dictionaries({d: st.lists(st.integers(1, 10), min_size=len(v), max_size=len(v))
                                      for d, v in VALUES.items()}))
def test_drawn_strata_follow_their_targets(seed: int, codes: int, per_code: int, risky: int,
                                           weights: dict[str, list[int]]) -> None:
    """Any target shares, any risk signals: where each code's frame has every stratum cell, each value's count is
    within two batches of target × batches (a draw blind to the strata is off by far more)."""
    rng = random.Random(seed)
    pool = pool_of(codes)
    frame = [candidate(rng, n, e.product_code, stratum=cell) for e in pool for n, cell in enumerate(CELLS)]
    frame += [candidate(rng, 100 + n, e.product_code) for e in pool for n in range(rng.randrange(20))]
    signals = [RiskSignal(source="consumer_complaint", reference=f"TS-{i}", product_code=c.product_code,
                          region="330106", credit_code=c.credit_code, weight=rng.choice([1, 5, 50]),
                          observed_on=date(2026, 9, 1)) for i, c in enumerate(rng.sample(frame, risky))]
    targets = {d: {v: w / sum(weights[d]) for v, w in zip(VALUES[d], weights[d], strict=True)} for d in VALUES}
    budget = codes * per_code
    d = draw(spec(budget, seed), pool, frame, signals=signals, policy=POLICY.model_copy(update={"strata": targets}))
    assert len(d.samples) == budget
    for dimension in STRATA:
        counts, total = Counter(s.stratum[dimension] for s in d.samples), sum(weights[dimension])
        for value, weight in zip(VALUES[dimension], weights[dimension], strict=True):
            # one batch of rounding, and up to one more where a code's last batches must take what it has left:
            # |count - target × budget| ≤ 2, in whole numbers (× the weights' total), so that a count exactly two
            # off is not failed by float rounding (0.037… × 54 = 2.0000000000000027)
            assert abs(counts[value] * total - weight * budget) <= 2 * total, (dimension, value)


def test_a_stratum_the_frame_lacks_is_left_out_and_the_others_renormalised() -> None:
    rng = random.Random(4)
    pool = pool_of(4)
    frame = [candidate(rng, n, e.product_code, stratum={**cell, "channel": "offline"})
             for e in pool for n, cell in enumerate(CELLS)]
    d = draw(spec(40, 1), pool, frame)
    assert shares(d, "channel") == {"online": 0, "offline": 1}
    assert shares(d, "zhejiang_made") == pytest.approx(POLICY.strata["zhejiang_made"], abs=1 / 40)


def twins(rng: random.Random, codes: int, pairs: int) -> tuple[list[PoolEntry], list[Candidate], list[Candidate]]:
    """Candidates in pairs of the same code and stratum: the first of each pair is the one set apart."""
    pool = pool_of(codes)
    marked, plain = [], []
    for e in pool:
        for n in range(pairs):
            stratum = {d: rng.choice(v) for d, v in VALUES.items()} | {"channel": "online"}
            marked.append(candidate(rng, 2 * n, e.product_code, stratum=stratum, channel="online"))
            plain.append(candidate(rng, 2 * n + 1, e.product_code, stratum=stratum, channel="online"))
    return pool, marked, plain


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32), codes=st.integers(2, 6), pairs=st.integers(4, 10))
def test_clean_record_enterprises_are_drawn_less_often_and_key_list_shops_more(seed: int, codes: int,
                                                                                pairs: int) -> None:
    rng = random.Random(seed)
    pool, marked, plain = twins(rng, codes, pairs)
    on = planning.period_bounds("2026Q4")[0]
    months = POLICY.clean_record_months
    clean = SamplingHistory(  # the marked: first sampled long ago, never failed; the plain: failed last year
        first_sampled={c.credit_code: add_months(on, -months - 12) for c in marked + plain},
        last_failed={c.credit_code: on - timedelta(days=300) for c in plain})
    key_list = SamplingHistory(key_list_shops=[ShopKey(platform=p, shop_key=k)
                                               for p, k in (c.shop_key for c in marked if c.shop_key)])
    budget = codes * 2
    counts = {"clean": Counter[str](), "key_list": Counter[str]()}
    marked_firms = {c.credit_code for c in marked}
    for s in range(40):
        for name, history in (("clean", clean), ("key_list", key_list)):
            d = draw(spec(budget, seed + s), pool, marked + plain, history=history)
            counts[name].update("marked" if x.order.sampled_party.credit_code in marked_firms else "plain"
                                for x in d.samples)
    assert counts["clean"]["marked"] < counts["clean"]["plain"]
    assert counts["key_list"]["marked"] > counts["key_list"]["plain"]


@DRAWS
@given(seed=st.integers(0, 2**63 - 2), budget=st.integers(1, 60))
def test_the_same_seed_gives_the_same_draw(seed: int, budget: int) -> None:
    rng = random.Random(1)
    pool = pool_of(8)
    frame = [candidate(rng, n, e.product_code) for e in pool for n in range(10)]
    signals = [RiskSignal(source="consumer_complaint", reference=f"TS-{i}", product_code=pool[i].product_code,
                          region="330100", credit_code=frame[i * 10].credit_code, weight=2,
                          observed_on=date(2026, 5, 1)) for i in range(4)]
    first = draw(spec(budget, seed), pool, frame, signals=signals)
    assert first == draw(spec(budget, seed), pool, list(reversed(frame)), signals=signals)  # frame order: no matter
    assert [s.order.sample_no for s in first.samples] == [f"P-TEST-{i:05d}" for i in range(1, budget + 1)]
    assert all(s.reasons for s in first.samples)
    if budget >= 10:  # another seed, another draw (with 80 candidates and at least 10 batches)
        assert draw(spec(budget, seed + 1), pool, frame, signals=signals).samples != first.samples


def quarters(first_year: int, count: int) -> list[str]:
    return [f"{first_year + q // 4}Q{q % 4 + 1}" for q in range(count)]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), cycles=st.lists(st.sampled_from([3, 6, 12, 24]), min_size=4, max_size=16))
def test_the_cycle_covers_every_code_over_successive_periods(seed: int, cycles: list[int]) -> None:
    """Quarterly plans whose budget is twice the pool's average load (a code of cycle c needs 3/c batches a
    quarter; the slack absorbs cycles falling due together, as in pinwheel scheduling): each code, last sampled at a random month of its cycle before the first plan, is drawn again
    before its cycle ends, every time."""
    rng = random.Random(seed)
    pool = [PoolEntry(product_code=f"02.00.{i:02d}", name=f"产品{i}", category="测试", cycle_months=c)
            for i, c in enumerate(cycles)]
    frame = [candidate(rng, n, e.product_code) for e in pool for n in range(3)]
    start = date(2026, 1, 1)
    last = {e.product_code: add_months(start, -rng.randrange(e.cycle_months)) for e in pool}
    budget = 2 * math.ceil(sum(3 / c for c in cycles))
    for period in quarters(2026, 16):
        first_day, _ = planning.period_bounds(period)
        history = SamplingHistory(sampled=[Sampled(product_code=c, region="330106", last_sampled_on=d, count=1)
                                           for c, d in last.items()])
        d = draw(spec(budget, seed, period=period), pool, frame, history=history)
        for e in pool:  # nothing went past its cycle before this period began
            assert due_by(last[e.product_code], e.cycle_months) >= first_day, e.product_code
        for s in d.samples:
            last[s.order.product.classification_code] = first_day


@DRAWS
@given(seed=st.integers(0, 2**32), province_budget=st.integers(1, 30), county_budget=st.integers(1, 30))
def test_no_product_is_in_both_a_province_and_a_county_plan_of_a_period(seed: int, province_budget: int,
                                                                       county_budget: int) -> None:
    rng = random.Random(seed)
    pool = pool_of(20)
    frame = [candidate(rng, n, e.product_code, region=rng.choice(["330106", "330110", "330203"]))
             for e in pool for n in range(8)]
    province = draw(spec(province_budget, seed, level="province", region="330000", plan_id="ZJ-P"), pool, frame)
    higher = [HigherPlanSample(plan_id="ZJ-P", period="2026Q4", level=OrganiserLevel.PROVINCE, region="330000",
                               product_code=s.order.product.classification_code) for s in province.samples]
    county = draw(spec(county_budget, seed), pool, frame, higher=higher)
    province_codes = {h.product_code for h in higher}
    assert not province_codes & {s.order.product.classification_code for s in county.samples}
    assert {e.product_code for e in county.excluded if "ZJ-P" in e.reason} == province_codes
    other_period = draw(spec(county_budget, seed, period="2027Q1"), pool, frame, higher=higher)
    assert not any("ZJ-P" in e.reason for e in other_period.excluded)  # another period: no exclusion
    yearly = [h.model_copy(update={"period": "2026"}) for h in higher]
    within_the_year = draw(spec(county_budget, seed, period="2026M11"), pool, frame, higher=yearly)
    assert {e.product_code for e in within_the_year.excluded if "ZJ-P" in e.reason} == province_codes


def test_a_linked_plan_puts_the_province_at_circulation_and_the_county_at_production() -> None:
    rng = random.Random(5)
    pool = pool_of(6)
    frame = [candidate(rng, n, e.product_code) for e in pool for n in range(20)]
    province = draw(spec(30, 1, level="province", region="330000", task_type="linked"), pool, frame)
    county = draw(spec(30, 1, task_type="linked"), pool, frame)
    assert {s.order.channel.value for s in province.samples} <= {"offline_circulation", "online", "livestream"}
    assert {s.order.channel.value for s in county.samples} == {"offline_production"}
    assert all(any("省市县联动" in r for r in s.reasons) for s in county.samples)
    shops_only = pool_of(7)[6]
    frame += [candidate(rng, n, shops_only.product_code, channel="offline_circulation",
                        stratum={d: v[0] for d, v in VALUES.items()} | {"channel": "offline"}) for n in range(3)]
    county = draw(spec(30, 1, task_type="linked"), [*pool, shops_only], frame)
    assert [(e.product_code, e.reason) for e in county.excluded] == [
        (shops_only.product_code, "省市县联动：本地区无生产端的可抽对象")]


def test_risk_pulls_codes_and_decays_by_the_half_life() -> None:
    rng = random.Random(9)
    pool = pool_of(30)
    frame = [candidate(rng, n, e.product_code) for e in pool for n in range(4)]
    history = SamplingHistory(sampled=[Sampled(product_code=e.product_code, region="330106",
                                               last_sampled_on=date(2026, 6, 1), count=1) for e in pool])
    risky = pool[7].product_code
    signal = RiskSignal(source="samr_circular", reference="ZJTB-1", product_code=risky, region="000000",
                        weight=20, observed_on=date(2026, 9, 1))
    with_signal = sum(risky in {s.order.product.classification_code for s in
                                draw(spec(5, seed), pool, frame, signals=[signal], history=history).samples}
                      for seed in range(40))
    without = sum(risky in {s.order.product.classification_code for s in
                            draw(spec(5, seed), pool, frame, history=history).samples} for seed in range(40))
    assert with_signal > 2 * without
    loud = signal.model_copy(update={"weight": 100})
    frame += [candidate(rng, 10 + n, risky) for n in range(20)]
    d = draw(spec(60, 1), pool, frame, signals=[loud], history=history)  # 30 codes: one batch each, 30 more
    taken = Counter(s.order.product.classification_code for s in d.samples)
    assert taken.most_common(1)[0] == (risky, math.ceil(POLICY.max_code_share * 60))  # risky, but capped
    two_codes = draw(spec(30, 1, product_codes=[risky, pool[8].product_code]), pool, frame)
    assert len(two_codes.samples) == 24 + 4  # too few codes to keep the cap: all the frame holds
    on = date(2026, 10, 1)
    half = POLICY.half_life_days
    assert decayed(8, on - timedelta(days=int(half)), on, half) == pytest.approx(4)
    scores = risk_scores([signal], on, half, "330106")
    assert scores.code(risky) == pytest.approx(decayed(20, date(2026, 9, 1), on, half))
    assert risk_scores([signal.model_copy(update={"region": "440300"})], on, half, "330106").code(risky) == 0


def test_a_follow_up_plan_samples_the_failed_enterprises_again() -> None:
    rng = random.Random(3)
    pool = pool_of(4)
    frame = [candidate(rng, n, e.product_code) for e in pool for n in range(6)]
    failed = {frame[0].credit_code: "OLD-00001", frame[7].credit_code: "OLD-00002"}
    d = draw(spec(5, 1, task_type="special", follow_up_of="OLD"), pool, frame,
             history=SamplingHistory(failed_samples=failed))
    assert {s.order.sampled_party.credit_code for s in d.samples} == set(failed)
    assert {s.order.follows_sample_no for s in d.samples} == set(failed.values())
    assert {s.order.task_type.value for s in d.samples} == {"follow_up"}


def test_overdue_codes_are_visible_and_drawn_first() -> None:
    pool = pool_of(3, cycles=(12,))
    on = date(2026, 10, 1)
    sampled = {pool[0].product_code: (date(2025, 9, 15), 2), pool[1].product_code: (date(2026, 3, 1), 1)}
    status = {s.entry.product_code: s for s in pool_status(pool, sampled, on)}
    assert status[pool[0].product_code].overdue and status[pool[0].product_code].due_by == date(2026, 9, 30)
    assert not status[pool[1].product_code].overdue
    assert status[pool[2].product_code].overdue and status[pool[2].product_code].last_sampled_on is None
    rng = random.Random(2)
    frame = [candidate(rng, n, e.product_code) for e in pool for n in range(3)]
    history = SamplingHistory(sampled=[Sampled(product_code=c, region="330100", last_sampled_on=d, count=n)
                                       for c, (d, n) in sampled.items()])
    d = draw(spec(2, 4), pool, frame, history=history)
    assert {s.order.product.classification_code for s in d.samples} == {pool[0].product_code, pool[2].product_code}


def test_the_frame_takes_only_the_four_registered_size_classes() -> None:
    """The frame and the reports share one size enum; a report's own classes (个体工商户 told by the credit
    code, unknown) are no stratum a frame row can claim: refused with the field named, never the value."""
    row = candidate(random.Random(1), 1, "01.01.01").model_dump()
    for size in ("individual", "unknown", "huge"):
        with pytest.raises(ValidationError) as err:
            Candidate.model_validate({**row, "enterprise_size": size})
        [problem] = err.value.errors()
        assert problem["loc"] == ("enterprise_size",)
    assert Candidate.model_validate({**row, "enterprise_size": "micro"}).enterprise_size == "micro"
