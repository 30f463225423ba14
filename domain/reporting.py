"""What oversight reads (issue 13): the statistics of a plan or a period, the inspection agencies' evaluation
(承检机构工作质量评价) and the results bulletin (抽查结果公告), computed from one fact per sample (pure; the facts
are read from PostgreSQL by activities/reports.py). How each figure is computed: docs/design.md §11."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.bounds import Code
from domain.models import REGION_PATTERN, Channel, TaskType
from domain.plans import PERIOD_PATTERN
from domain.regions import region_name
from domain.stages import Verdict
from domain.strata import (
    ENTERPRISE_SIZE_TITLES,
    PRICE_LEVEL_TITLES,
    PRICE_RANGE_TITLES,
    EnterpriseSize,
    PriceRange,
)


class ReportScope(BaseModel):
    """Which samples a report covers: a plan, a period (2026, 2026H1, 2026Q4, 2026M03) or both, optionally
    only those sampled inside a region's area (GB/T 2260: 330000 covers 3301xx)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plan_id: Code | None = None
    period: str | None = Field(default=None, pattern=PERIOD_PATTERN)
    region: str | None = Field(default=None, pattern=REGION_PATTERN)

    @model_validator(mode="after")
    def _something(self) -> ReportScope:
        if self.plan_id is None and self.period is None:
            raise ValueError("scope: name a plan or a period")
        return self

    @property
    def days(self) -> tuple[date, date] | None:
        """[first day, day after the last) of the period, or None for a plan without one."""
        return period_days(self.period) if self.period else None

    @property
    def title(self) -> str:
        parts = []
        if self.plan_id:
            parts.append(f"抽查计划 {self.plan_id}")
        if self.period:
            parts.append(period_title(self.period))
        if self.region:
            parts.append(region_title(self.region))
        return " · ".join(parts)


def period_days(period: str) -> tuple[date, date]:
    """2026 → [2026-01-01, 2027-01-01); 2026H2, 2026Q4, 2026M03 likewise."""
    match = re.fullmatch(PERIOD_PATTERN, period)
    if not match:
        raise ValueError("period: not a period (2026, 2026H1, 2026Q4 or 2026M03)")
    year, part = int(match.group(1)), match.group(2) or ""
    n = int(part[1:] or 0)
    first, months = {"": (1, 12), "H": (6 * n - 5, 6), "Q": (3 * n - 2, 3), "M": (n, 1)}[part[:1]]
    end_month = first + months
    end = date(year + 1, 1, 1) if end_month > 12 else date(year, end_month, 1)
    return date(year, first, 1), end


def period_title(period: str) -> str:
    year, part = period[:4], period[4:]
    if not part:
        return f"{year}年"
    return f"{year}年" + {"H": f"{'上' if part[1:] == '1' else '下'}半年", "Q": f"第{'一二三四'[int(part[1:]) - 1]}季度",
                         "M": f"{int(part[1:])}月"}[part[0]]


def region_title(code: str) -> str:
    """杭州市 for 330100; the code itself only for a code the table does not hold."""
    return region_name(code) or f"行政区划 {code}"


def in_area(region: str, code: str) -> bool:
    """Whether `region` lies inside the area of `code` (330000 covers 3301xx and 330102)."""
    width = 2 if code.endswith("0000") else 4 if code.endswith("00") else 6
    return region[:width] == code[:width]


# --- the facts --------------------------------------------------------------------------------------------

CHANNEL_TITLES: dict[str, str] = {
    Channel.OFFLINE_PRODUCTION: "线下（生产领域）",
    Channel.OFFLINE_CIRCULATION: "线下（流通领域）",
    Channel.ONLINE: "网络销售",
    Channel.LIVESTREAM: "直播带货",
}

VERDICT_TITLES: dict[str, str] = {
    Verdict.PASS: "合格", Verdict.FAIL: "不合格", Verdict.FAIL_PROVISIONAL: "不合格（待确定）",
    Verdict.REFUSED: "拒检", Verdict.PENDING: "检验中",
}

# Steps whose deadlines the statistics count, by the decision that meets them (the sample's and the branches').
STEP_TITLES: dict[str, str] = {
    "sampling_record": "抽样", "sample_receipt": "样品接收", "lab_report": "检验报告", "result_delivery": "结果送达",
    "producer_confirmation": "标称生产者确认", "objection": "异议", "objection_review": "异议审查",
    "retest_report": "复检报告", "disposal": "样品处置", "rectification_report": "整改报告",
    "re_inspection": "复查", "provincial_announcement": "省级公告", "suspension_order": "停业整顿决定",
    "rectification_extension": "延期整改", "rectification_review": "整改复查（旧）",
    "credit_repair_application": "信用修复申请", "credit_repair_acceptance": "信用修复受理",
    "credit_repair_review": "信用修复决定", "serious_dishonesty_review": "严重失信审查", "case_filing": "立案",
    "case_outcome": "案件处理", "crime_transfer_decision": "涉刑移送决定", "crime_transfer_receipt": "公安回执",
    "defect_assessment": "缺陷研判", "recall_decision": "召回决定", "recall_plan": "召回计划",
    "recall_progress": "召回进展", "recall_summary": "召回总结", "certificate_action": "认证处置",
    "delist_confirmation": "下架确认", "lead_outcome": "线索核查",
}


# Post-handling outcomes counted per sample (each sample at most once per outcome), by the key
# activities/reports.py reads each from the branches' records with.
OUTCOME_TITLES: dict[str, str] = {
    "rectified": "整改到位（复查合格）",
    "revocation_proposed": "提请吊销营业执照",
    "penalised": "行政处罚",
    "crime_transferred": "移送公安机关",
    "recalled": "召回",
    "delisted": "平台下架",
    "certificate_suspended": "认证证书暂停",
    "certificate_revoked": "认证证书撤销",
    "credit_listed": "信用公示",
}


@dataclass(frozen=True)
class SampleFact:
    """One sample as the statistics see it (activities/reports.py reads it from the records)."""

    sample_no: str
    plan_id: str
    day: date  # the day that places it in a period: the order's date, else the day its record began
    region: str  # where it was sampled: the sampled party's region
    channel: str
    task_type: str
    product_code: str
    product_name: str
    brand: str
    model: str
    batch: str | None
    price_range: PriceRange
    price_level: str | None  # the 价位 its plan's draw recorded (low, mid, high), when drawn by a plan
    size: EnterpriseSize
    sampled_party: str
    producer: str  # the labelled producer when named, else the sampled party
    agency_code: str
    agency: str
    verdict: str
    report_no: str | None = None
    failed_items: tuple[tuple[str, str], ...] = ()  # (item, standard) of the final result
    lab_reported: bool = False  # the lab's report is in
    first_fail: bool = False  # the lab's first report failed the sample
    overturned: bool = False  # … and the re-test passed it (复检推翻)
    lab_rejections: int = 0  # arrivals the lab refused (sample_receipt rejected)
    turnaround: int | None = None  # working days from the sample's receipt to the lab's report
    testing_days: int = 20  # the plan's testing period (working days)
    lab_overdue: bool = False  # the lab's report wait passed its deadline (escalated)
    outcomes: frozenset[str] = frozenset()

    @property
    def final(self) -> bool:
        return self.verdict in (Verdict.PASS, Verdict.FAIL)


@dataclass(frozen=True)
class StepDeadlines:
    """One awaited step of one workflow of a sample: how many of its waits were met and how many missed."""

    sample_no: str
    region: str
    kind: str
    met: int
    missed: int


# --- the tables -------------------------------------------------------------------------------------------


def share(part: float, whole: float) -> float | None:
    """part ÷ whole, None when there is no whole (a rate of nothing is shown as none, never as 0)."""
    return part / whole if whole else None


class RateRow(BaseModel):
    key: str
    label: str
    samples: int = 0
    passed: int = 0
    failed: int = 0
    refused: int = 0
    pending: int = 0

    @property
    def tested(self) -> int:
        return self.passed + self.failed

    @property
    def rate(self) -> float | None:
        """Pass rate among final results (合格率 = 合格批次 / 已有确定结论的批次), None without one."""
        return share(self.passed, self.tested)


class StandardRow(BaseModel):
    standard: str
    items: list[str]
    failed_items: int
    samples: int


class DeadlineRow(BaseModel):
    key: str
    label: str
    met: int = 0
    missed: int = 0

    @property
    def rate(self) -> float | None:
        return share(self.met, self.met + self.missed)


class OutcomeRow(BaseModel):
    key: str
    label: str
    samples: int


class AgencyRow(BaseModel):
    code: str
    name: str
    samples: int
    reports: int
    mean_turnaround: float | None
    testing_days: float | None  # the plans' testing period, mean over its samples (working days)
    overdue: int
    first_fails: int
    overturned: int
    rejections: int
    score: float
    rank: int = 0

    @property
    def overdue_rate(self) -> float | None:
        return share(self.overdue, self.reports)

    @property
    def overturn_share(self) -> float | None:
        return share(self.overturned, self.first_fails)

    @property
    def rejection_share(self) -> float | None:
        return share(self.rejections, self.samples + self.rejections)


class BulletinRow(BaseModel):
    no: int
    sample_no: str
    product: str
    producer: str
    sampled_party: str
    brand: str
    model: str
    batch: str
    result: str
    failed_items: str
    agency: str


class Report(BaseModel):
    scope: ReportScope
    title: str
    generated_on: date
    totals: RateRow
    by_category: list[RateRow]
    by_region: list[RateRow]
    by_channel: list[RateRow]
    by_price_range: list[RateRow]
    by_price_level: list[RateRow]  # samples a plan drew by 价位 only
    by_size: list[RateRow]
    by_period: list[RateRow]
    by_standard: list[StandardRow]
    deadlines_by_step: list[DeadlineRow]
    deadlines_by_region: list[DeadlineRow]
    deadline_totals: DeadlineRow
    outcomes: list[OutcomeRow]
    agencies: list[AgencyRow]
    bulletin: list[BulletinRow]

    def summary(self) -> dict[str, Any]:
        """The plan's totals (plan_report_summary): counts, pass rate, deadlines, outcomes, agencies ranked."""
        t = self.totals
        return {
            "scope": self.scope.model_dump(exclude_none=True),
            "samples": t.samples, "passed": t.passed, "failed": t.failed, "refused": t.refused,
            "pending": t.pending, "pass_rate": t.rate,
            "deadlines_met": self.deadline_totals.met, "deadlines_missed": self.deadline_totals.missed,
            "outcomes": {o.key: o.samples for o in self.outcomes},
            "failed_standards": {s.standard: s.samples for s in self.by_standard},
            "agencies": [{"code": a.code, "name": a.name, "rank": a.rank, "score": a.score} for a in self.agencies],
        }


# --- computing them ---------------------------------------------------------------------------------------


_VERDICT_COLUMN = {Verdict.PASS: "passed", Verdict.FAIL: "failed", Verdict.REFUSED: "refused"}


def _rate_row(key: str, label: str, verdicts: Counter[str]) -> RateRow:
    """A row from the verdicts counted in it (pending and provisional fails together as not final)."""
    counts = {column: verdicts[v] for v, column in _VERDICT_COLUMN.items()}
    return RateRow(key=key, label=label, samples=verdicts.total(), **counts,
                   pending=verdicts.total() - sum(counts.values()))


def rates(facts: Iterable[SampleFact], key: Callable[[SampleFact], str], label: Callable[[str], str],
          order: list[str] | None = None) -> list[RateRow]:
    """Pass-rate rows grouped by `key`: in `order` when given (every key in it, counted or not), else by key."""
    groups: dict[str, Counter[str]] = {k: Counter() for k in order or ()}
    for fact in facts:
        groups.setdefault(key(fact), Counter())[fact.verdict] += 1
    keys = list(groups) if order else sorted(groups)
    return [_rate_row(k, label(k), groups[k]) for k in keys]


def region_group(region: str, within: str | None) -> str:
    """The row a sampled region counts in: its city (330782 → 330700), or inside a city's report its county."""
    if within and within.endswith("00") and not within.endswith("0000"):
        return region
    return region[:4] + "00"


def by_standard(facts: Iterable[SampleFact]) -> list[StandardRow]:
    """Failed items of final fails by standard, most samples first (task 7: which standards fail most)."""
    items: dict[str, Counter[str]] = defaultdict(Counter)
    samples: dict[str, set[str]] = defaultdict(set)
    for fact in facts:
        if fact.verdict != Verdict.FAIL:
            continue
        for item, standard in fact.failed_items:
            items[standard][item] += 1
            samples[standard].add(fact.sample_no)
    rows = [StandardRow(standard=s, items=[i for i, _ in items[s].most_common()], failed_items=sum(items[s].values()),
                        samples=len(samples[s])) for s in items]
    return sorted(rows, key=lambda r: (-r.samples, -r.failed_items, r.standard))


def deadlines(steps: Iterable[StepDeadlines], key: Callable[[StepDeadlines], str],
              label: Callable[[str], str]) -> list[DeadlineRow]:
    counts: dict[str, list[int]] = {}
    for step in steps:
        met_missed = counts.setdefault(key(step), [0, 0])
        met_missed[0] += step.met
        met_missed[1] += step.missed
    rows = [DeadlineRow(key=k, label=label(k), met=met, missed=missed) for k, (met, missed) in counts.items()]
    return sorted(rows, key=lambda r: (-r.missed, r.key))


def outcomes(facts: Iterable[SampleFact]) -> list[OutcomeRow]:
    counts = Counter(o for fact in facts for o in fact.outcomes)
    return [OutcomeRow(key=k, label=title, samples=counts[k]) for k, title in OUTCOME_TITLES.items()]


# Local policy: an agency's score weighs the share of its fails overturned on re-test and its overdue rate
# equally (the opinion's 加强承检机构工作质量验收评价 names no formula); lab rejections of arriving samples are
# shown, not scored: a broken seal is rarely the lab's doing. Ties rank by the faster mean turnaround.
OVERTURN_WEIGHT, OVERDUE_WEIGHT = 50.0, 50.0


def agencies(facts: Iterable[SampleFact]) -> list[AgencyRow]:
    """承检机构工作质量评价: per agency, ranked (1 = best)."""
    groups: dict[str, list[SampleFact]] = defaultdict(list)
    for fact in facts:
        groups[fact.agency_code].append(fact)
    rows = []
    for code, group in groups.items():
        reported = [f for f in group if f.lab_reported]
        turnarounds = [f.turnaround for f in reported if f.turnaround is not None]
        overdue = sum(f.lab_overdue for f in group)
        first_fails = sum(f.first_fail for f in group)
        overturned = sum(f.overturned for f in group)
        score = 100.0 - OVERTURN_WEIGHT * (share(overturned, first_fails) or 0.0) \
            - OVERDUE_WEIGHT * (share(overdue, len(reported)) or 0.0)
        rows.append(AgencyRow(
            code=code, name=group[0].agency, samples=len(group), reports=len(reported),
            mean_turnaround=share(sum(turnarounds), len(turnarounds)),
            testing_days=share(sum(f.testing_days for f in reported), len(reported)),
            overdue=overdue, first_fails=first_fails, overturned=overturned,
            rejections=sum(f.lab_rejections for f in group), score=round(score, 1),
        ))
    rows.sort(key=lambda r: (-r.score, r.mean_turnaround if r.mean_turnaround is not None else float("inf"), r.code))
    for rank, row in enumerate(rows, 1):
        row.rank = rank
    return rows


def _result(fact: SampleFact) -> str:
    title = VERDICT_TITLES.get(fact.verdict, fact.verdict)
    if fact.verdict == Verdict.FAIL and fact.task_type == TaskType.EVALUATIVE:
        return title + "（评价性抽查）"
    return title


def bulletin(facts: Iterable[SampleFact]) -> list[BulletinRow]:
    """The results bulletin (抽查结果公告): every sample with a final result, failed ones first, in the official
    columns (产品名称, 标称生产企业, 被抽样单位, 商标, 规格型号, 生产日期/批号, 抽查结果, 不合格项目, 承检机构)."""
    final = sorted((f for f in facts if f.final), key=lambda f: (f.verdict != Verdict.FAIL, f.product_name,
                                                                 f.producer, f.sample_no))
    return [BulletinRow(
        no=n, sample_no=f.sample_no, product=f.product_name, producer=f.producer, sampled_party=f.sampled_party,
        brand=f.brand, model=f.model, batch=f.batch or "—", result=_result(f),
        failed_items="；".join(dict.fromkeys(item for item, _ in f.failed_items)) or "—", agency=f.agency,
    ) for n, f in enumerate(final, 1)]


@dataclass
class _Labels:
    products: dict[str, str] = field(default_factory=dict)

    def product(self, code: str) -> str:
        return f"{self.products.get(code, '')}（{code}）"


def build_report(scope: ReportScope, facts: list[SampleFact], steps: list[StepDeadlines], today: date) -> Report:
    """Every table of the report from the scope's facts and deadline steps."""
    labels = _Labels()
    for fact in sorted(facts, key=lambda f: f.sample_no):
        labels.products.setdefault(fact.product_code, fact.product_name)
    totals = _rate_row("total", "合计", Counter(f.verdict for f in facts))
    step_rows = deadlines(steps, lambda s: s.kind, lambda k: STEP_TITLES.get(k, k))
    return Report(
        scope=scope,
        title=f"产品质量监督抽查统计报告（{scope.title}）",
        generated_on=today,
        totals=totals,
        by_category=rates(facts, lambda f: f.product_code, labels.product),
        by_region=rates(facts, lambda f: region_group(f.region, scope.region), region_title),
        by_channel=rates(facts, lambda f: f.channel, lambda k: CHANNEL_TITLES.get(k, k), list(CHANNEL_TITLES)),
        by_price_range=rates(facts, lambda f: f.price_range.value, lambda k: PRICE_RANGE_TITLES[PriceRange(k)],
                            [b.value for b in PriceRange]),
        by_price_level=rates([f for f in facts if f.price_level], lambda f: str(f.price_level),
                             lambda k: PRICE_LEVEL_TITLES.get(k, k)),
        by_size=rates(facts, lambda f: f.size.value, lambda k: ENTERPRISE_SIZE_TITLES[EnterpriseSize(k)],
                      [s.value for s in EnterpriseSize]),
        by_period=rates(facts, lambda f: f"{f.day.year}-{f.day.month:02d}", lambda k: f"{k[:4]}年{int(k[5:])}月"),
        by_standard=by_standard(facts),
        deadlines_by_step=step_rows,
        deadlines_by_region=deadlines(steps, lambda s: region_group(s.region, scope.region), region_title),
        deadline_totals=DeadlineRow(key="total", label="合计", met=sum(r.met for r in step_rows),
                                    missed=sum(r.missed for r in step_rows)),
        outcomes=outcomes(facts),
        agencies=agencies(facts),
        bulletin=bulletin(facts),
    )
