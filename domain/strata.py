"""Price ranges and enterprise size classes: the rows of the statistics by price and by size (opinion task 1:
流通端兼顾浙产外产、线上线下、不同价位、企业规模). Defined once here; reports read them.

- **Price ranges** (价格区间) are local policy: the opinion names 不同价位 but no bands. Unit price in CNY, as the
  order records it (`Product.price`), lower bound included. They are absolute: a plan's draw stratifies by a
  relative 价位 (low / mid / high among the same product's listings, the sampling frame's `price_band`), which
  is another measure.
- **Size classes** are those of 《统计上大中小微型企业划分办法（2017）》(国统字〔2017〕213号): large, medium, small,
  micro, by industry, employees and revenue (`domain.frame.EnterpriseSize`, one enum for the frame and the
  reports; the frame takes only those four).
  Spotcheck's records hold neither employees nor revenue, so a sample's class is the one its plan's draw
  recorded (the stratum `enterprise_size`) when there is one; otherwise only a 个体工商户 can be told, by its
  unified social credit code (GB 32100-2015: registration authority 9 工商, organisation type 2 个体工商户),
  and the rest is `unknown`."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from domain.frame import EnterpriseSize, PriceBand

__all__ = ["ENTERPRISE_SIZE_TITLES", "PRICE_LEVEL_TITLES", "EnterpriseSize", "PriceRange", "enterprise_size",
           "price_range"]


class PriceRange(StrEnum):
    UNDER_50 = "under_50"
    FROM_50 = "50_200"
    FROM_200 = "200_1000"
    FROM_1000 = "1000_5000"
    FROM_5000 = "5000_up"
    UNKNOWN = "unknown"  # the order gave no price


# (lower bound in CNY, range), ascending; local policy.
PRICE_RANGES: tuple[tuple[Decimal, PriceRange], ...] = (
    (Decimal(0), PriceRange.UNDER_50),
    (Decimal(50), PriceRange.FROM_50),
    (Decimal(200), PriceRange.FROM_200),
    (Decimal(1000), PriceRange.FROM_1000),
    (Decimal(5000), PriceRange.FROM_5000),
)

PRICE_RANGE_TITLES: dict[PriceRange, str] = {
    PriceRange.UNDER_50: "50元以下",
    PriceRange.FROM_50: "50–200元",
    PriceRange.FROM_200: "200–1000元",
    PriceRange.FROM_1000: "1000–5000元",
    PriceRange.FROM_5000: "5000元及以上",
    PriceRange.UNKNOWN: "未标价",
}


def price_range(price: Decimal | str | float | None) -> PriceRange:
    """The range of a unit price in CNY; UNKNOWN when there is none or it is not a number."""
    if price is None:
        return PriceRange.UNKNOWN
    try:
        value = Decimal(str(price))
    except ArithmeticError:
        return PriceRange.UNKNOWN
    if not value.is_finite() or value < 0:
        return PriceRange.UNKNOWN
    found = PriceRange.UNKNOWN
    for lower, name in PRICE_RANGES:
        if value >= lower:
            found = name
    return found


# The relative 价位 a plan's draw records in a sample's stratum (the sampling frame's `price_band`: the listing's
# price among the same product's on the market; 明显低价 is `low`, task 11), as the report titles it.
PRICE_LEVEL_TITLES: dict[str, str] = {PriceBand.LOW: "低价位", PriceBand.MID: "中价位", PriceBand.HIGH: "高价位"}


ENTERPRISE_SIZE_TITLES: dict[EnterpriseSize, str] = {
    EnterpriseSize.LARGE: "大型企业",
    EnterpriseSize.MEDIUM: "中型企业",
    EnterpriseSize.SMALL: "小型企业",
    EnterpriseSize.MICRO: "微型企业",
    EnterpriseSize.INDIVIDUAL: "个体工商户",
    EnterpriseSize.UNKNOWN: "规模未登记",
}


_SIZES = frozenset(s.value for s in EnterpriseSize)


def enterprise_size(credit_code: str | None, recorded: str | None = None) -> EnterpriseSize:
    """The size class recorded for the sample (a plan's stratum) when it names one, else what the credit
    code tells (个体工商户), else UNKNOWN."""
    if recorded in _SIZES:
        return EnterpriseSize(recorded)
    if credit_code and credit_code[:2] == "92":
        return EnterpriseSize.INDIVIDUAL
    return EnterpriseSize.UNKNOWN
