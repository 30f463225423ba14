"""Which bureau's area a place is in, from 6-digit administrative region codes (pure).

Order 18 Art. 44 ¶2: a bureau organising a local spot check that finds a failed product made by a producer
outside its own area tells (通报) the producer's local bureau at the same level. A region code names its
level by its trailing zeros: 330000 a province, 330100 a city, 330102 a county."""

from __future__ import annotations


def area_prefix(region: str) -> str:
    """The part of the code that a bureau's area shares: 33 for 330000, 3301 for 330100, 330102 itself."""
    if region.endswith("0000"):
        return region[:2]
    if region.endswith("00"):
        return region[:4]
    return region


def outside_area(bureau_region: str, place_region: str) -> bool:
    """Whether `place_region` lies outside the area of the bureau of `bureau_region`."""
    return not place_region.startswith(area_prefix(bureau_region))


def same_level_bureau(bureau_region: str, place_region: str) -> str:
    """The region code of the bureau at `place_region` at the same level as the bureau of `bureau_region`
    (生产者所在地同级市场监督管理部门)."""
    width = len(area_prefix(bureau_region))
    return place_region[:width].ljust(6, "0")
