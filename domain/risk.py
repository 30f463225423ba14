"""Risk signals (the opinion's tasks 4 and 16) and the risk scores they give each product code and enterprise.

Every source the opinion names is imported the same way (`spotcheck signals import FILE`): product code, region,
enterprise when known, weight and date. Past fails and the leads samples found are signals too, read from the
samples' own records (`activities/planning.py`). A signal's weight halves every `half_life_days` (local policy,
`planning/policy.toml`): last month's complaint weighs more than one from three years ago. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.bounds import Choice, Code, Day, Text
from domain.models import ClassificationCode, CreditCode, RegionCode
from domain.pool import regions_overlap

MAX_WEIGHT = 100.0


class SignalSource(StrEnum):
    RISK_MONITORING = "risk_monitoring"  # 风险监测 (task 4)
    PUBLIC_OPINION = "public_opinion"  # 舆情监测 (task 4)
    ADVERTISING_MONITORING = "advertising_monitoring"  # 广告监测 (task 4)
    PLATFORM_MONITORING = "platform_monitoring"  # 平台监测 (task 4)
    SAMR_CIRCULAR = "samr_circular"  # 总局通报 (task 4)
    ASSOCIATION_REPORT = "association_report"  # 行业协会告知 (tasks 4, 16)
    CONSUMER_COMPLAINT = "consumer_complaint"  # 消费者投诉 (task 4)
    WHISTLEBLOWER = "whistleblower"  # 质量安全举报、内部吹哨人 (task 16)
    # Found by Spotcheck's own samples, never imported:
    SPOT_CHECK_FAIL = "spot_check_fail"  # 监督抽查不合格 (enterprise_fails)
    SAMPLING_LEAD = "sampling_lead"  # 检监联动线索 (leads, task 12)

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def derived(self) -> bool:
        return self in (SignalSource.SPOT_CHECK_FAIL, SignalSource.SAMPLING_LEAD)


_LABELS = {
    SignalSource.RISK_MONITORING: "风险监测", SignalSource.PUBLIC_OPINION: "舆情监测",
    SignalSource.ADVERTISING_MONITORING: "广告监测", SignalSource.PLATFORM_MONITORING: "平台监测",
    SignalSource.SAMR_CIRCULAR: "总局通报", SignalSource.ASSOCIATION_REPORT: "行业协会告知",
    SignalSource.CONSUMER_COMPLAINT: "消费者投诉", SignalSource.WHISTLEBLOWER: "举报线索",
    SignalSource.SPOT_CHECK_FAIL: "抽查不合格", SignalSource.SAMPLING_LEAD: "检监联动线索",
}


class RiskSignal(BaseModel):
    """One signal (one row of a signals CSV). (source, reference) is its identity: importing it again changes
    nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    source: Annotated[SignalSource, Choice]
    reference: Code = Field(description="the source's own id of the signal (complaint no, circular no, …)")
    product_code: ClassificationCode
    region: RegionCode = Field(description="where it was seen; 000000 for the whole country")
    credit_code: CreditCode | None = Field(default=None, description="the enterprise concerned, when known")
    weight: float = Field(gt=0, le=MAX_WEIGHT, description="how strongly it points at risk (1 = an ordinary signal)")
    observed_on: Day
    note: Text | None = None


def decayed(weight: float, observed_on: date, on: date, half_life_days: float) -> float:
    """The weight left on `on`: halved every `half_life_days`; a signal dated after `on` counts in full."""
    age = max(0, (on - observed_on).days)
    return weight * 0.5 ** (age / half_life_days)


class RiskScores(BaseModel):
    """Decayed weights summed per product code and per enterprise, with what each sum is made of."""

    by_code: dict[str, float]
    by_enterprise: dict[str, float]
    code_sources: dict[str, dict[str, float]] = Field(description="code → source → decayed weight")
    enterprise_sources: dict[str, dict[str, float]]

    def code(self, product_code: str) -> float:
        return self.by_code.get(product_code, 0.0)

    def enterprise(self, credit_code: str) -> float:
        return self.by_enterprise.get(credit_code, 0.0)

    def explain_code(self, product_code: str) -> str:
        return _explain(self.code_sources.get(product_code, {}))

    def explain_enterprise(self, credit_code: str) -> str:
        return _explain(self.enterprise_sources.get(credit_code, {}))


def _explain(parts: dict[str, float]) -> str:
    top = sorted(parts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return "、".join(f"{SignalSource(s).label} {w:.2f}" for s, w in top)


def risk_scores(signals: Iterable[RiskSignal], on: date, half_life_days: float, region: str) -> RiskScores:
    """Scores on `on` from the signals seen in `region`'s area (or nationwide)."""
    code_sources: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    enterprise_sources: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in signals:
        if not regions_overlap(s.region, region):
            continue
        w = decayed(s.weight, s.observed_on, on, half_life_days)
        code_sources[s.product_code][s.source.value] += w
        if s.credit_code:
            enterprise_sources[s.credit_code][s.source.value] += w
    return RiskScores(
        by_code={k: sum(v.values()) for k, v in code_sources.items()},
        by_enterprise={k: sum(v.values()) for k, v in enterprise_sources.items()},
        code_sources={k: dict(v) for k, v in code_sources.items()},
        enterprise_sources={k: dict(v) for k, v in enterprise_sources.items()},
    )


class ImportedSignal(RiskSignal):
    """A signal from outside (a CSV row): the sources Spotcheck finds itself are read from its records."""

    @model_validator(mode="after")
    def _not_derived(self) -> ImportedSignal:
        if self.source.derived:
            raise ValueError(f"source: {self.source.value} is read from Spotcheck's own records, not imported")
        return self
