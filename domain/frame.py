"""The sampling frame (抽样框): who can be sampled for a product code — a producer on site, a shop, an online
listing — with what a plan stratifies on (Zhejiang-made or not, online or offline, price band, enterprise size)
and everything a `SampleOrder` needs. Imported with `spotcheck frame import FILE`. Pure."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.bounds import Choice, Code, MaybeCode, MaybeName, Money, Name, Text, Url
from domain.models import Channel, ClassificationCode, CreditCode, Party, PlatformListing, Product, RegionCode


class EnterpriseSize(StrEnum):
    """统计上大中小微型企业划分办法 (国统字〔2017〕213号), and what a report says of a party without one of those
    classes (domain/strata.py). The frame takes the four classes only (`REGISTERED_SIZES`)."""

    LARGE = "large"
    MEDIUM = "medium"
    SMALL = "small"
    MICRO = "micro"
    INDIVIDUAL = "individual"  # 个体工商户, told by the credit code
    UNKNOWN = "unknown"


REGISTERED_SIZES = frozenset({EnterpriseSize.LARGE, EnterpriseSize.MEDIUM, EnterpriseSize.SMALL, EnterpriseSize.MICRO})


class PriceBand(StrEnum):
    """The listing's price among the same product's on the market (明显低价 is `low`; task 11)."""

    LOW = "low"
    MID = "mid"
    HIGH = "high"


# The strata of task 1 (流通端兼顾浙产外产、线上线下、不同价位、企业规模), in the order a stratum is shown.
STRATA = ("zhejiang_made", "channel", "price_band", "enterprise_size")


class Candidate(BaseModel):
    """One row of the frame: one thing that can be sampled. `candidate_id` is its identity across imports."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    candidate_id: Code
    product_code: ClassificationCode
    product_name: Name
    brand: Code
    model: Code
    enterprise_name: Name = Field(description="the sampled party: producer (on site), shop or online seller")
    credit_code: CreditCode
    region: RegionCode
    address: Text | None = None
    zhejiang_made: bool = Field(description="made in Zhejiang (浙产) or elsewhere (外产)")
    enterprise_size: Annotated[EnterpriseSize, Choice] = Field(description="one of the four registered classes")
    channel: Annotated[Channel, Choice]
    price_band: Annotated[PriceBand, Choice]
    price: Money | None = None
    platform: MaybeName | None = None
    shop_name: MaybeName | None = None
    shop_id: MaybeCode | None = None
    listing_id: MaybeCode | None = None
    listing_url: Url | None = None
    livestream_room: MaybeName | None = None
    producer_name: MaybeName | None = Field(default=None, description="标称生产者 when the sampled party sells")
    producer_credit_code: CreditCode | None = None
    producer_region: RegionCode | None = None

    @field_validator("enterprise_size")
    @classmethod
    def _registered(cls, size: EnterpriseSize) -> EnterpriseSize:
        if size not in REGISTERED_SIZES:
            raise ValueError("must be a registered size class: large, medium, small or micro")
        return size

    @model_validator(mode="after")
    def _channel_needs(self) -> Candidate:
        if self.channel.purchased and not (self.platform and self.shop_name and self.listing_id):
            raise ValueError(f"platform: platform, shop_name and listing_id are required for channel "
                             f"{self.channel.value}")
        if self.channel is Channel.LIVESTREAM and not self.livestream_room:
            raise ValueError("livestream_room: required for channel livestream")
        producer = (self.producer_name, self.producer_credit_code, self.producer_region)
        if any(producer) and not all(producer):
            raise ValueError("producer_name: give producer_name, producer_credit_code and producer_region together")
        return self

    @property
    def online(self) -> bool:
        return self.channel.purchased

    @property
    def stratum(self) -> dict[str, str]:
        return {
            "zhejiang_made": "zhejiang" if self.zhejiang_made else "other",
            "channel": "online" if self.online else "offline",
            "price_band": self.price_band.value,
            "enterprise_size": self.enterprise_size.value,
        }

    @property
    def shop_key(self) -> tuple[str, str] | None:
        """(platform, shop id or shop name) as the key list keeps it (activities/registers.shop_key)."""
        if not self.online or not self.platform:
            return None
        return self.platform, self.shop_id or self.shop_name or ""

    def product(self) -> Product:
        return Product(name=self.product_name, classification_code=self.product_code, brand=self.brand,
                       model=self.model, price=self.price)

    def sampled_party(self) -> Party:
        return Party(name=self.enterprise_name, credit_code=self.credit_code, region=self.region,
                     address=self.address)

    def labelled_producer(self) -> Party | None:
        if not (self.producer_name and self.producer_credit_code and self.producer_region):
            return None
        return Party(name=self.producer_name, credit_code=self.producer_credit_code, region=self.producer_region)

    def listing(self) -> PlatformListing | None:
        if not (self.online and self.platform and self.shop_name and self.listing_id):
            return None
        return PlatformListing(platform=self.platform, shop_name=self.shop_name, shop_id=self.shop_id,
                               listing_id=self.listing_id, listing_url=self.listing_url,
                               livestream_room=self.livestream_room)
