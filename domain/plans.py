"""A sampling plan (抽查计划): what a plan workflow is started with, and what its draw produces.

The draw itself (pool, risk signals, strata) lives in `domain/planning.py`; the plan workflow
(`workflows/plan.py`, id `plan-<plan_id>`) stores the draw in PostgreSQL (`plan_samples`) and starts the samples
from there, because a draw of 10,000 orders is far larger than one Temporal payload (2 MB)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.bounds import Choice, Code, MaybeCode, Text
from domain.models import MAX_TIME_SCALE, InspectionAgency, RegionCode, SampleOrder

PLAN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
# 2026 (a year), 2026H1, 2026Q4, 2026M03: plans of one period are compared for duplicate sampling.
PERIOD_PATTERN = r"^(20[0-9]{2})(H[12]|Q[1-4]|M(0[1-9]|1[0-2]))?$"
MAX_PLAN_BATCHES = 100_000


class OrganiserLevel(StrEnum):
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"

    @property
    def rank(self) -> int:
        """Higher level, lower rank: 产品质量法 Art. 15 ¶2 forbids a lower level re-sampling a higher one's product."""
        return {"province": 0, "city": 1, "county": 2}[self.value]


class PlanTaskType(StrEnum):
    ROUTINE = "routine"  # 监督抽查
    SPECIAL = "special"  # 专项抽查 (a campaign; may schedule follow-up sampling of failed enterprises)
    EVALUATIVE = "evaluative"  # 评价性抽查
    LINKED = "linked"  # 省市县联动: the province samples circulation, the city/county production


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlanSpec(_Strict):
    """A plan as its organiser writes it (`spotcheck plan draft|start PLAN.json`)."""

    plan_id: str = Field(pattern=PLAN_ID_PATTERN, description="the workflow id is plan-<plan_id>")
    name: Code = Field(description="the plan's title, e.g. 2026年第四季度浙江省产品质量监督抽查")
    period: str = Field(pattern=PERIOD_PATTERN, description="2026, 2026H1, 2026Q4 or 2026M03")
    level: Annotated[OrganiserLevel, Choice]
    region: RegionCode = Field(description="the organiser's region (GB/T 2260)")
    task_type: Annotated[PlanTaskType, Choice]
    budget_batches: int = Field(ge=1, le=MAX_PLAN_BATCHES, strict=True, description="samples (批次) to draw")
    seed: int = Field(default=0, ge=0, le=2**63 - 1, strict=True, description="same seed, same draw")
    product_codes: list[Code] | None = Field(
        default=None, max_length=2000, description="restrict the draw to these classification codes (campaigns)"
    )
    inspection_agencies: list[InspectionAgency] = Field(min_length=1, max_length=200)
    testing_working_days: int = Field(default=20, ge=1, le=120, strict=True)
    start_rate_per_second: float = Field(default=20.0, gt=0, le=10_000, description="samples started per second")
    batch_size: int = Field(default=100, ge=1, le=1000, strict=True, description="samples started per activity")
    time_scale: float = Field(default=1.0, ge=1.0, le=MAX_TIME_SCALE, description="passed to every sample's order")
    follow_up_of: MaybeCode | None = Field(default=None, description="plan id whose failed enterprises are re-sampled")
    note: Text | None = None

    @model_validator(mode="after")
    def _period_and_region(self) -> PlanSpec:
        if self.level is OrganiserLevel.PROVINCE and not self.region.endswith("0000"):
            raise ValueError("region: a province-level plan is organised by a province code (ends 0000)")
        if self.level is OrganiserLevel.CITY and (self.region.endswith("0000") or not self.region.endswith("00")):
            raise ValueError("region: a city-level plan is organised by a city code (ends 00, not 0000)")
        if self.level is OrganiserLevel.COUNTY and self.region.endswith("00"):
            raise ValueError("region: a county-level plan is organised by a county code (does not end 00)")
        return self


def period_year(period: str) -> int:
    match = re.match(PERIOD_PATTERN, period)
    if not match:
        raise ValueError("period: not a period")
    return int(match.group(1))


class DrawnSample(_Strict):
    """One drawn sample: the order the plan will start, where it sits in the strata, and why it was chosen."""

    seq: int = Field(ge=0, le=MAX_PLAN_BATCHES)
    order: SampleOrder
    stratum: dict[str, str] = Field(description="zhejiang_made, channel, price_band, enterprise_size → value")
    risk_score: float = Field(ge=0)
    reasons: list[Text] = Field(min_length=1, max_length=20, description="why this sample was chosen, in Chinese")


class Exclusion(_Strict):
    """A product or enterprise the draw left out, and why (e.g. already in a higher-level plan of the period)."""

    product_code: Code
    credit_code: MaybeCode | None = None
    reason: Text


class PlanDraw(_Strict):
    plan: PlanSpec
    samples: list[DrawnSample]
    excluded: list[Exclusion] = []
