"""The sample order: what an integrator or a plan sends to start one sample's workflow."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from domain.bounds import MAX_CODE, Choice, Code, Day, MaybeCode, MaybeName, Money, Name, Text, Url, text
from domain.credit import DishonestyTier
from domain.credit_code import credit_code_problem

SAMPLE_NO_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
REGION_PATTERN = r"^[0-9]{6}$"  # 行政区划代码, e.g. 330100 for Hangzhou
MAX_TIME_SCALE = 864000.0  # ten days a second: the most a demo may compress a sample's clock
CLASSIFICATION_CODE_PATTERN = r"^[0-9]{2}(\.?[0-9]{2}){0,4}$"  # SAMR product classification code, e.g. 01.02.03


class TaskType(StrEnum):
    ROUTINE = "routine"  # 监督抽查
    SPECIAL = "special"  # 专项抽查
    EVALUATIVE = "evaluative"  # 评价性抽查 / 风险速筛: quick verdict, no backup sample, no objection
    FOLLOW_UP = "follow_up"  # 跟踪抽查 after rectification


class Channel(StrEnum):
    OFFLINE_PRODUCTION = "offline_production"  # on site at the producer
    OFFLINE_CIRCULATION = "offline_circulation"  # on site at a shop or market
    ONLINE = "online"  # bought on an e-commerce platform as an anonymous buyer
    LIVESTREAM = "livestream"  # bought in a livestream

    @property
    def purchased(self) -> bool:
        """Online samples are bought, so they are never returned to the seller."""
        return self in (Channel.ONLINE, Channel.LIVESTREAM)


def _credit_code(value: str) -> str:
    problem = credit_code_problem(value)
    if problem:
        raise ValueError(f"not a unified social credit code: {problem}")
    return value


CreditCode = Annotated[str, text(64), AfterValidator(_credit_code)]
RegionCode = Annotated[str, Field(pattern=REGION_PATTERN, description="6-digit administrative region code")]
ClassificationCode = Annotated[str, Field(pattern=CLASSIFICATION_CODE_PATTERN, description="产品分类代码")]


class _Strict(BaseModel):
    # Unknown fields are refused: a typo in an integrator's order must not vanish silently.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Party(_Strict):
    name: Name
    credit_code: CreditCode = Field(description="统一社会信用代码 (18 characters, check character verified)")
    region: RegionCode
    address: Text | None = None
    contact: MaybeName | None = None


class Product(_Strict):
    name: Name
    classification_code: str = Field(
        pattern=CLASSIFICATION_CODE_PATTERN, description="SAMR product classification code (产品分类代码)"
    )
    brand: Annotated[str, text(MAX_CODE, min_length=1)]
    model: Annotated[str, text(MAX_CODE, min_length=1)]
    batch: MaybeCode | None = Field(default=None, description="batch number or production date (批号/生产日期)")
    price: Money | None = Field(default=None, description="unit price in CNY")
    ccc_certificate: MaybeCode | None = Field(default=None, description="CCC certificate number when certified")
    production_licence: MaybeCode | None = Field(default=None, description="生产许可证 number when licensed")


class PlatformListing(_Strict):
    platform: Name
    shop_name: Name
    shop_id: MaybeCode | None = None
    listing_id: Code
    listing_url: Url | None = None
    livestream_room: MaybeName | None = None


class InspectionAgency(_Strict):
    name: Name
    code: Code


class SampleOrder(_Strict):
    sample_no: str = Field(pattern=SAMPLE_NO_PATTERN, description="抽样单编号; the workflow id is sample-<sample_no>")
    plan_id: Code
    task_type: Annotated[TaskType, Choice]
    channel: Annotated[Channel, Choice]
    region: RegionCode = Field(description="region of the organising regulator (抽查组织地)")
    product: Product
    sampled_party: Party = Field(description="被抽样单位 (producer on site, shop, or online seller)")
    labelled_producer: Party | None = Field(
        default=None, description="标称生产者 when the sampled party is a seller; may deny the product"
    )
    platform: PlatformListing | None = Field(default=None, description="required for online and livestream")
    inspection_agency: InspectionAgency
    ordered_on: Day | None = None
    testing_working_days: int = Field(default=20, ge=1, le=120, strict=True, description="lab deadline set by the plan")
    time_scale: float = Field(
        default=1.0, ge=1.0, le=MAX_TIME_SCALE,
        description="compresses every deadline for demos: 86400 runs a day per second; recorded with the order",
    )
    follows_sample_no: MaybeCode | None = Field(default=None, description="for follow-up sampling: the earlier sample")
    dishonesty_tier: Annotated[DishonestyTier, Choice] | None = Field(
        default=None, description="失信信息类别 a fail of this plan is published with (轻微 minor / 一般 general / "
        "严重 serious, 国家发展改革委令第36号); none: general")

    @property
    def workflow_id(self) -> str:
        return workflow_id_for(self.sample_no)

    @property
    def purchased(self) -> bool:
        return self.channel.purchased

    @property
    def summary(self) -> str:
        """One line naming the sample, for the Web UI's static summary."""
        place = self.platform.shop_name if self.platform else self.sampled_party.name
        return (
            f"{self.sample_no} · {self.product.name} {self.product.brand} {self.product.model} · "
            f"{place} ({self.sampled_party.region}) · {self.channel.value} · {self.task_type.value}"
        )

    @model_validator(mode="after")
    def _channel_needs(self) -> SampleOrder:
        if self.channel.purchased and self.platform is None:
            raise ValueError(f"platform: required for channel {self.channel.value} (shop and listing bought from)")
        if self.channel is Channel.LIVESTREAM and self.platform and not self.platform.livestream_room:
            raise ValueError("platform.livestream_room: required for channel livestream")
        if self.task_type is TaskType.FOLLOW_UP and not self.follows_sample_no:
            raise ValueError("follows_sample_no: required for task type follow_up")
        return self


def workflow_id_for(sample_no: str) -> str:
    return f"sample-{sample_no}"


def sample_no_from_workflow_id(workflow_id: str) -> str:
    return re.sub(r"^sample-", "", workflow_id)
