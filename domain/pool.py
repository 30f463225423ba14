"""The product cycle pool (产品循环池, the opinion's task 1): the products the spot checks rotate through, keyed by
the classification code, each with its cycle (how long it may go unsampled in a region), and whether it is
overdue there.

Pure. The pool is data (`planning/pool.csv`, imported with `spotcheck pool import`); when a code was last
sampled in a region is read from the samples themselves (`activities/planning.py`)."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.bounds import Code, Name, Text
from domain.jurisdiction import area_prefix
from domain.models import ClassificationCode, RegionCode

MAX_CYCLE_MONTHS = 120
MAX_STANDARDS = 20
# Signals and sampling of the whole country (a SAMR circular) carry this region; GB/T 2260 has no such code.
NATIONWIDE = "000000"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class PoolEntry(_Strict):
    """One product of the pool (one row of `planning/pool.csv`)."""

    product_code: ClassificationCode
    name: Name = Field(description="产品名称, e.g. 电热水壶")
    category: Name = Field(description="产品类别, e.g. 家用电器")
    standards: list[Code] = Field(default_factory=list, max_length=MAX_STANDARDS,
                                  description="applicable standards, e.g. GB 4706.19 (semicolons in the CSV)")
    cycle_months: int = Field(ge=1, le=MAX_CYCLE_MONTHS, description="sampled at least once this often per region")
    note: Text | None = Field(default=None, description="where the row comes from; local policy when not cited")

    @field_validator("standards", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.split(";") if part.strip()]
        return value


class Sampled(_Strict):
    """How often and when last a product was sampled by the bureau of a region."""

    product_code: ClassificationCode
    region: RegionCode
    last_sampled_on: date
    count: int = Field(ge=0)


class PoolStatus(_Strict):
    entry: PoolEntry
    last_sampled_on: date | None = Field(description="the latest sampling in the area; None: never sampled")
    count: int
    due_by: date | None = Field(description="last day of the cycle; None: never sampled, due now")
    overdue: bool


def regions_overlap(a: str, b: str) -> bool:
    """Whether one region's area holds the other (a province and one of its counties; a county and itself).
    A nationwide region overlaps every region."""
    if NATIONWIDE in (a, b):
        return True
    return a.startswith(area_prefix(b)) or b.startswith(area_prefix(a))


def month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def add_months(day: date, months: int) -> date:
    """Same day `months` later; a day the month lacks becomes its last (Jan 31 + 1 month = Feb 28/29)."""
    index = month_index(day) + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def due_by(last_sampled_on: date, cycle_months: int) -> date:
    """The last day a product sampled on `last_sampled_on` may be sampled again within its cycle: the end of the
    month `cycle_months` later (a product sampled in March 2026 on a 12-month cycle is due by 31 March 2027)."""
    end = add_months(last_sampled_on.replace(day=1), cycle_months)
    return end.replace(day=calendar.monthrange(end.year, end.month)[1])


def sampled_in_area(sampled: Iterable[Sampled], region: str) -> dict[str, tuple[date, int]]:
    """Per product code: the latest sampling and the number of samplings by any bureau whose area overlaps
    `region`'s (a county's product sampled by its province counts for the county, and the other way round)."""
    out: dict[str, tuple[date, int]] = {}
    for s in sampled:
        if not regions_overlap(s.region, region):
            continue
        last, count = out.get(s.product_code, (s.last_sampled_on, 0))
        out[s.product_code] = (max(last, s.last_sampled_on), count + s.count)
    return out


def pool_status(pool: Sequence[PoolEntry], sampled: Mapping[str, tuple[date, int]], on: date) -> list[PoolStatus]:
    """Each product with its last sampling and due date; overdue when never sampled or past its cycle on `on`."""
    out = []
    for entry in pool:
        last, count = sampled.get(entry.product_code, (None, 0))
        due = due_by(last, entry.cycle_months) if last else None
        out.append(PoolStatus(entry=entry, last_sampled_on=last, count=count, due_by=due,
                              overdue=due is None or due < on))
    return out
