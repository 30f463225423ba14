"""The plan draw (抽查计划抽样): which products, and who, a plan samples — pure and reproducible from the plan's seed.

1. Products. The plan's scope is the product cycle pool (or the codes a campaign names), less every code a
   higher-level plan of an overlapping period already samples in an overlapping area (产品质量法 Art. 15 ¶2:
   上级监督抽查的产品，下级不得另行重复抽查), less codes with nobody to sample. Codes due in the period (never
   sampled in the area, or their cycle ends by the period's end) come first, the most overdue first; the rest
   of the budget goes to other codes and extra batches in proportion to 1 + the code's risk score, no code
   taking more than `max_code_share` of the plan while others can take the batches.
2. Who. Each batch goes to the stratum cell (Zhejiang-made or not, online or offline, price band, enterprise
   size: task 1) furthest below its target shares so far, so the drawn strata follow the targets; inside the
   cell a candidate is drawn with weight (1 + the enterprise's risk score) × ½ for an enterprise with a clean
   record (no fail for `clean_record` months of the rule pack: task 4) × 2 for a key-list shop (task 11) or a
   listed sampling target (task 6). The factors and targets are local policy (`planning/policy.toml`).
3. Linked plans (省市县联动, task 14): the province samples circulation, the city and county production.

Every drawn sample says why it was chosen; every code left out says why."""

from __future__ import annotations

import calendar
import math
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.bounds import Choice, Code
from domain.frame import STRATA, Candidate
from domain.jurisdiction import area_prefix
from domain.models import Channel, InspectionAgency, SampleOrder, TaskType
from domain.plans import (
    PERIOD_PATTERN,
    DrawnSample,
    Exclusion,
    OrganiserLevel,
    PlanDraw,
    PlanSpec,
    PlanTaskType,
    period_year,
)
from domain.pool import PoolEntry, Sampled, add_months, due_by, regions_overlap, sampled_in_area
from domain.risk import RiskScores, RiskSignal, risk_scores

# Cells whose shortfalls differ by less than this are equally short.
_TIE = 1e-9
_LEVEL_NAMES = {OrganiserLevel.PROVINCE: "省级", OrganiserLevel.CITY: "市级", OrganiserLevel.COUNTY: "县级"}
_STRATUM_NAMES = {
    "zhejiang": "浙产", "other": "外产", "online": "线上", "offline": "线下",
    "low": "低价位", "mid": "中价位", "high": "高价位",
    "large": "大型企业", "medium": "中型企业", "small": "小型企业", "micro": "微型企业",
}
SAMPLE_NO_DIGITS = 5
# sampling_targets sources (activities/registers.py) as a reason names them.
_TARGET_SOURCES = {"post_licence_problem": "证后检查问题企业", "evaluative_linked": "评价性抽查问题产品联动抽查",
                   "key_list_shop": "重点抽查名单网店"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DrawPolicy(_Strict):
    """The draw's knobs. All are local policy (`planning/policy.toml`) except `clean_record_months`, which is
    the rule pack's `clean_record` (the opinion, task 4: 近三年未发现产品质量不合格)."""

    clean_record_months: int = Field(ge=1, le=240)
    half_life_days: float = Field(gt=0, le=3650, description="a risk signal's weight halves this often")
    clean_record_factor: float = Field(gt=0, le=1, description="weight of an enterprise with a clean record")
    key_list_factor: float = Field(ge=1, le=100, description="weight of a key-list shop (连续多年不合格网店)")
    target_list_factor: float = Field(ge=1, le=100, description="weight of an enterprise on the target list")
    fail_weight: float = Field(gt=0, le=100, description="a past fail as a risk signal")
    lead_weight: float = Field(gt=0, le=100, description="a lead found by a sample as a risk signal")
    max_code_share: float = Field(gt=0, le=1, description="most of a plan's batches one code may take (unless "
                                  "the plan has too few codes to fill its budget otherwise)")
    strata: dict[str, dict[str, float]] = Field(description="dimension → value → target share")

    @model_validator(mode="after")
    def _strata(self) -> DrawPolicy:
        for dimension, shares in self.strata.items():
            if dimension not in STRATA:
                raise ValueError(f"strata: unknown dimension {dimension[:40]!r}; known: {', '.join(STRATA)}")
            if not shares or any(not 0 <= v <= 1 for v in shares.values()) or abs(sum(shares.values()) - 1) > 1e-6:
                raise ValueError(f"strata.{dimension}: shares from 0 to 1 that add up to 1")
        return self


class ShopKey(_Strict):
    platform: str
    shop_key: str


class SamplingHistory(_Strict):
    """What the records say about earlier sampling, read from PostgreSQL when a plan is drawn."""

    sampled: list[Sampled] = Field(default_factory=list, description="per product code and region")
    first_sampled: dict[str, date] = Field(default_factory=dict, description="credit code → first sampled on")
    last_failed: dict[str, date] = Field(default_factory=dict, description="credit code → latest fail")
    key_list_shops: list[ShopKey] = Field(default_factory=list)
    targets: dict[str, list[str]] = Field(default_factory=dict,
                                          description="credit code → sampling_targets sources (task 6)")
    failed_samples: dict[str, str] = Field(
        default_factory=dict, description="credit code → its failed sample of the plan followed up (follow_up_of)")


class HigherPlanSample(_Strict):
    """A product code a stored plan samples: read to keep lower-level plans of the period off it."""

    plan_id: Code
    period: str = Field(pattern=PERIOD_PATTERN)
    level: Annotated[OrganiserLevel, Choice]
    region: str
    product_code: str


def period_bounds(period: str) -> tuple[date, date]:
    """First and last day of 2026, 2026H1, 2026Q4 or 2026M03."""
    year = period_year(period)
    rest = period[4:]
    first, months = 1, 12
    if rest.startswith("H"):
        first, months = 1 + 6 * (int(rest[1]) - 1), 6
    elif rest.startswith("Q"):
        first, months = 1 + 3 * (int(rest[1]) - 1), 3
    elif rest.startswith("M"):
        first, months = int(rest[1:]), 1
    start = date(year, first, 1)
    end = add_months(start, months - 1)
    return start, end.replace(day=calendar.monthrange(end.year, end.month)[1])


def clean_record(credit_code: str, history: SamplingHistory, on: date, months: int) -> bool:
    """No fail for `months` (the clock starts at the last fail, or at the first sampling): an enterprise never
    sampled has no record yet, so it is not clean."""
    start = history.last_failed.get(credit_code) or history.first_sampled.get(credit_code)
    return start is not None and add_months(start, months) <= on


def allowed_channels(spec: PlanSpec) -> frozenset[Channel]:
    """Task 14: in a linked plan the province samples circulation (shops and online), the city and county
    production."""
    if spec.task_type is not PlanTaskType.LINKED:
        return frozenset(Channel)
    if spec.level is OrganiserLevel.PROVINCE:
        return frozenset({Channel.OFFLINE_CIRCULATION, Channel.ONLINE, Channel.LIVESTREAM})
    return frozenset({Channel.OFFLINE_PRODUCTION})


def higher_plan_codes(spec: PlanSpec, higher: Sequence[HigherPlanSample]) -> dict[str, HigherPlanSample]:
    """Codes a plan of a higher level, of an overlapping period (the province's 2026 holds the county's 2026Q4),
    in an overlapping area already samples."""
    out: dict[str, HigherPlanSample] = {}
    start, end = period_bounds(spec.period)
    for h in sorted(higher, key=lambda h: (h.level.rank, h.plan_id)):
        h_start, h_end = period_bounds(h.period)
        if (h_start <= end and start <= h_end and h.level.rank < spec.level.rank and h.plan_id != spec.plan_id
                and regions_overlap(h.region, spec.region)):
            out.setdefault(h.product_code, h)
    return out


def _sample_task_type(spec: PlanSpec) -> TaskType:
    if spec.follow_up_of:
        return TaskType.FOLLOW_UP
    return {PlanTaskType.SPECIAL: TaskType.SPECIAL, PlanTaskType.EVALUATIVE: TaskType.EVALUATIVE}.get(
        spec.task_type, TaskType.ROUTINE)


def sample_no(plan_id: str, seq: int) -> str:
    return f"{plan_id}-{seq:0{SAMPLE_NO_DIGITS}d}"


class _Weighed:
    """A candidate with its weight before strata, and the reasons for that weight."""

    __slots__ = ("candidate", "weight", "reasons", "risk", "key", "follows")

    def __init__(self, candidate: Candidate, weight: float, reasons: list[str], risk: float,
                 follows: str | None) -> None:
        self.candidate = candidate
        self.weight = weight
        self.reasons = reasons
        self.risk = risk
        self.key = tuple(candidate.stratum[d] for d in STRATA)
        self.follows = follows  # the failed sample a follow-up plan samples this enterprise after


def _weigh(c: Candidate, scores: RiskScores, history: SamplingHistory, policy: DrawPolicy, on: date,
           key_shops: set[tuple[str, str]]) -> _Weighed:
    risk = scores.enterprise(c.credit_code)
    weight, reasons = 1.0 + risk, []
    if risk:
        reasons.append(f"企业风险分 {risk:.2f}（{scores.explain_enterprise(c.credit_code)}）")
    if clean_record(c.credit_code, history, on, policy.clean_record_months):
        weight *= policy.clean_record_factor
        reasons.append(f"近{policy.clean_record_months}个月无不合格记录，降低抽查频次（×{policy.clean_record_factor:g}，"
                       "规则 clean_record）")
    if c.shop_key and c.shop_key in key_shops:
        weight *= policy.key_list_factor
        reasons.append(f"列入重点抽查名单的网店（连续多年不合格，×{policy.key_list_factor:g}）")
    if c.credit_code in history.targets:
        weight *= policy.target_list_factor
        sources = sorted(_TARGET_SOURCES.get(t, t) for t in history.targets[c.credit_code])
        reasons.append(f"列入抽查对象清单（{'、'.join(sources)}，"
                       f"×{policy.target_list_factor:g}）")
    follows = history.failed_samples.get(c.credit_code)
    if follows:
        reasons.append(f"跟踪抽查：该企业的样品 {follows} 不合格")
    return _Weighed(c, weight, reasons, risk, follows)


def _weighted_pick(rng: random.Random, weights: Sequence[float]) -> int:
    """The index of an item drawn with probability in proportion to its weight."""
    total = sum(weights)
    x = rng.random() * total
    for i, w in enumerate(weights):
        x -= w
        if x < 0:
            return i
    return len(weights) - 1


def _targets(policy: DrawPolicy, available: Sequence[_Weighed]) -> dict[str, dict[str, float]]:
    """The policy's target shares, each dimension renormalised over the values the eligible frame has."""
    out = {}
    for d_index, d in enumerate(STRATA):
        present = {w.key[d_index] for w in available}
        shares = {v: s for v, s in policy.strata.get(d, {}).items() if v in present}
        if not shares or sum(shares.values()) == 0:  # no target for it, or none of its values available
            shares = {v: 1.0 for v in present}
        total = sum(shares.values())
        out[d] = {v: s / total for v, s in shares.items()}
    return out


def _allocate(spec: PlanSpec, codes: Sequence[str], due: Mapping[str, tuple[bool, date | None]],
              capacity: Mapping[str, int], cap: int, scores: RiskScores, rng: random.Random) -> dict[str, int]:
    """Batches per code: due codes first (never sampled, then the earliest due), then other codes and extra
    batches in proportion to 1 + risk, never more than a code's frame holds nor `cap` (so that one risky code
    does not take the plan) while other codes can take them."""
    tiebreak = {c: rng.random() for c in codes}
    due_codes = sorted((c for c in codes if due[c][0]),
                       key=lambda c: (due[c][1] is not None, due[c][1] or date.min, -scores.code(c), tiebreak[c]))
    quota = {c: 1 for c in due_codes[: spec.budget_batches]}
    others = sorted(c for c in codes if c not in quota)
    while len(quota) < spec.budget_batches and others:
        i = _weighted_pick(rng, [1.0 + scores.code(c) for c in others])
        quota[others.pop(i)] = 1
    left = spec.budget_batches - len(quota)
    for limit in ({c: min(capacity[c], cap) for c in quota}, capacity):  # the cap, then what the frame holds
        open_codes = sorted(c for c in quota if limit[c] > quota[c])
        while left > 0 and open_codes:
            i = _weighted_pick(rng, [1.0 + scores.code(c) for c in open_codes])
            code = open_codes[i]
            quota[code] += 1
            left -= 1
            if quota[code] >= limit[code]:
                open_codes.pop(i)
    return quota


def _code_reason(entry: PoolEntry, due: tuple[bool, date | None], last: date | None, scores: RiskScores) -> str:
    name = f"{entry.name}（{entry.product_code}）"
    if last is None:
        text = f"产品循环池：{name}在本地区从未抽查，应抽"
    elif due[0]:
        text = f"产品循环池：{name}上次抽查 {last}，周期 {entry.cycle_months} 个月，{due[1]} 前应再抽"
    else:
        text = f"产品循环池：{name}上次抽查 {last}，周期内，按风险加权抽取"
    risk = scores.code(entry.product_code)
    return text + (f"；产品风险分 {risk:.2f}（{scores.explain_code(entry.product_code)}）" if risk else "")


def draw_plan(spec: PlanSpec, pool: Sequence[PoolEntry], frame: Sequence[Candidate], signals: Sequence[RiskSignal],
              history: SamplingHistory, higher_plans: Sequence[HigherPlanSample], policy: DrawPolicy) -> PlanDraw:
    """The plan's samples and exclusions: the same inputs and seed always give the same draw."""
    if len(sample_no(spec.plan_id, 0)) > 64:
        raise ValueError(f"plan_id: at most {63 - SAMPLE_NO_DIGITS} characters, so its sample numbers fit")
    rng = random.Random(spec.seed)
    start, end = period_bounds(spec.period)
    entries = {e.product_code: e for e in pool}
    excluded: list[Exclusion] = []
    scope = sorted(entries)
    if spec.product_codes is not None:
        scope = sorted({c for c in spec.product_codes if c in entries})
        excluded += [Exclusion(product_code=c, reason="不在产品循环池中")
                     for c in sorted(set(spec.product_codes) - set(entries))]
    higher = higher_plan_codes(spec, higher_plans)
    for code in [c for c in scope if c in higher]:
        h = higher[code]
        excluded.append(Exclusion(product_code=code, reason=(
            f"已列入同期（{h.period}）{_LEVEL_NAMES[h.level]}计划 {h.plan_id}（{h.region}）："
            "产品质量法第十五条第二款，上级监督抽查的产品，下级不得另行重复抽查")))
    scope = [c for c in scope if c not in higher]

    scores = risk_scores(signals, start, policy.half_life_days, spec.region)
    key_shops = {(k.platform, k.shop_key) for k in history.key_list_shops}
    channels = allowed_channels(spec)
    area = area_prefix(spec.region)
    by_code: dict[str, list[_Weighed]] = defaultdict(list)
    # Why a code has nobody to sample: the first test its candidates fail, the furthest any got.
    furthest: dict[str, int] = {}
    tests = (lambda c: c.region.startswith(area), lambda c: c.channel in channels,
             lambda c: not spec.follow_up_of or c.credit_code in history.failed_samples)
    in_scope = set(scope)
    for c in sorted(frame, key=lambda c: c.candidate_id):
        if c.product_code not in in_scope:
            continue
        passed = next((i for i, test in enumerate(tests) if not test(c)), len(tests))
        furthest[c.product_code] = max(furthest.get(c.product_code, 0), passed)
        if passed == len(tests):
            by_code[c.product_code].append(_weigh(c, scores, history, policy, start, key_shops))
    why = (f"抽样框中本地区（{spec.region}）无该产品",
           "省市县联动：本地区无" + ("流通端" if spec.level is OrganiserLevel.PROVINCE else "生产端") + "的可抽对象",
           f"跟踪抽查：计划 {spec.follow_up_of} 的不合格企业不在抽样框中")
    for code in [c for c in scope if not by_code.get(c)]:
        excluded.append(Exclusion(product_code=code, reason=why[furthest.get(code, 0)]))
    codes = [c for c in scope if by_code.get(c)]

    sampled = sampled_in_area(history.sampled, spec.region)
    due: dict[str, tuple[bool, date | None]] = {}
    for code in codes:
        last = sampled.get(code, (None, 0))[0]
        by = due_by(last, entries[code].cycle_months) if last else None
        due[code] = (by is None or by <= end, by)
    cap = max(math.ceil(policy.max_code_share * spec.budget_batches), math.ceil(spec.budget_batches / max(len(codes), 1)))
    quota = _allocate(spec, codes, due, {c: len(by_code[c]) for c in codes}, cap, scores, rng)

    available = [w for c in sorted(quota) for w in by_code[c]]
    targets = _targets(policy, available)
    samples = _draw_candidates(spec, quota, by_code, targets, rng, lambda code: _code_reason(
        entries[code], due[code], sampled.get(code, (None, 0))[0], scores), scores)
    return PlanDraw(plan=spec, samples=samples, excluded=excluded)


def _draw_candidates(spec: PlanSpec, quota: dict[str, int], by_code: Mapping[str, list[_Weighed]],
                     targets: Mapping[str, Mapping[str, float]], rng: random.Random,
                     code_reason: Callable[[str], str], scores: RiskScores) -> list[DrawnSample]:
    """Batch after batch, among the codes with batches left: the stratum cell (a value of each dimension) whose
    values are furthest below their target counts so far (ties by the cells' weights), then a candidate of that
    cell by weight. Like the largest-remainder method, each dimension's counts stay within about one batch of
    target × batches wherever the frame has the cells."""
    left = dict(quota)
    cells: dict[tuple[str, ...], dict[str, list[_Weighed]]] = defaultdict(lambda: defaultdict(list))
    # Per cell, and per code and cell: the weight and number of candidates still drawable (a code whose batches
    # are all drawn stays in the cells, and counts no more).
    weight_of: dict[tuple[str, ...], float] = defaultdict(float)
    live: dict[tuple[str, ...], int] = defaultdict(int)
    of_code: dict[str, dict[tuple[str, ...], list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))
    for code in sorted(quota):
        for w in by_code[code]:
            cells[w.key][code].append(w)
            weight_of[w.key] += w.weight
            live[w.key] += 1
            of_code[code][w.key][0] += w.weight
            of_code[code][w.key][1] += 1
    counts: dict[str, dict[str, int]] = {d: defaultdict(int) for d in STRATA}
    agencies: list[InspectionAgency] = spec.inspection_agencies
    samples: list[DrawnSample] = []
    reasons_by_code: dict[str, str] = {}
    for k in range(sum(quota.values())):
        below = [{v: share * (k + 1) - counts[d][v] for v, share in targets[d].items()} for d in STRATA]
        short = {key: sum(below[i].get(value, 0.0) for i, value in enumerate(key)) for key, n in live.items() if n}
        most = max(short.values())
        keys = sorted(key for key, value in short.items() if value >= most - _TIE)
        key = keys[_weighted_pick(rng, [max(weight_of[key], 0.0) for key in keys])]
        codes = [c for c in cells[key] if left[c] and of_code[c][key][1]]
        code = codes[_weighted_pick(rng, [max(of_code[c][key][0], 0.0) for c in codes])]
        members = cells[key][code]
        chosen = members.pop(_weighted_pick(rng, [w.weight for w in members]))
        weight_of[key] -= chosen.weight
        live[key] -= 1
        of_code[code][key][0] -= chosen.weight
        of_code[code][key][1] -= 1
        left[code] -= 1
        if left[code] == 0:
            for cell_key, (weight, n) in of_code[code].items():
                weight_of[cell_key] -= weight
                live[cell_key] -= int(n)
        for i, d in enumerate(STRATA):
            counts[d][key[i]] += 1
        samples.append(_drawn(spec, len(samples) + 1, chosen, agencies,
                              reasons_by_code.setdefault(code, code_reason(code)), scores))
    return samples


def _drawn(spec: PlanSpec, seq: int, w: _Weighed, agencies: Sequence[InspectionAgency], code_reason: str, scores: RiskScores) -> DrawnSample:
    c = w.candidate
    stratum = c.stratum
    order = SampleOrder(
        sample_no=sample_no(spec.plan_id, seq), plan_id=spec.plan_id, task_type=_sample_task_type(spec),
        channel=c.channel, region=spec.region, product=c.product(), sampled_party=c.sampled_party(),
        labelled_producer=c.labelled_producer(), platform=c.listing(),
        inspection_agency=agencies[(seq - 1) % len(agencies)], testing_working_days=spec.testing_working_days,
        time_scale=spec.time_scale, follows_sample_no=w.follows if spec.follow_up_of else None,
    )
    strata_text = "、".join(_STRATUM_NAMES[stratum[d]] for d in STRATA)
    reasons = [code_reason, *w.reasons, f"分层：{strata_text}"]
    if spec.task_type is PlanTaskType.LINKED:
        reasons.append("省市县联动：省级抽流通端，市、县级抽生产端")
    return DrawnSample(seq=seq, order=order, stratum=stratum,
                       risk_score=round(scores.code(c.product_code) + w.risk, 6), reasons=reasons)
