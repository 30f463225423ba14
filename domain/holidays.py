"""The State Council's holiday schedule of one year (放假 days and 调休 make-up working days) as data, and the
working-day calendar made of the years known.

One year is one TOML file (`calendar/<year>.toml`, or a year loaded later, docs/design.md §5) citing its
notice. A year without a file is not guessed silently: Monday to Friday is assumed there and whoever asks is
told the day is not known (`Calendar.is_working_day`), so the deadline is marked estimated.

Pure: the files are read by `activities/holiday_files.py`. Errors name the field, never the input."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from domain.bounds import MAX_CODE, MAX_NAME, MAX_URL, error_lines, text, within

FIRST_YEAR, LAST_YEAR = 2000, 2100
MAX_HOLIDAYS = 20  # a year has seven festivals; room for a special one-off
MAX_HOLIDAY_DAYS = 16  # the longest break so far is nine days
MAX_MAKE_UP_DAYS = 5  # per holiday


class HolidayYearError(ValueError):
    """A year file that cannot be used; the message names the file and the field, never the content."""


class Notice(BaseModel):
    """The notice a year's schedule is taken from, e.g. 国办发明电〔2025〕7号 of 2025-11-04."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Annotated[str, text(MAX_NAME, min_length=1)]
    number: Annotated[str, text(MAX_CODE, min_length=1)] = Field(description="document number, e.g. 国办发明电〔2025〕7号")
    issued: date
    url: Annotated[str, text(MAX_URL, pattern=r"^https?://\S+$")] | None = None


class Holiday(BaseModel):
    """One break: the days off from `first` to `last`, and the weekend days worked for it (调休)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, text(MAX_NAME, min_length=1)]
    first: date
    last: date
    make_up_days: list[date] = Field(default_factory=list, max_length=MAX_MAKE_UP_DAYS)

    @model_validator(mode="after")
    def _a_short_range_of_days(self) -> Holiday:
        if self.last < self.first:
            raise ValueError("last: must not come before first")
        if (self.last - self.first).days + 1 > MAX_HOLIDAY_DAYS:
            raise ValueError(f"last: a break of more than {MAX_HOLIDAY_DAYS} days")
        for day in self.make_up_days:
            if day.weekday() < 5:
                raise ValueError(f"make_up_days: {day} is a weekday already")
        return self

    def days_off(self) -> list[date]:
        return [date.fromordinal(n) for n in range(self.first.toordinal(), self.last.toordinal() + 1)]


class HolidayYear(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    year: int = Field(ge=FIRST_YEAR, le=LAST_YEAR)
    notice: Notice
    # A test's invented year: never an official schedule, and shown as such wherever years are listed.
    fixture: bool = False
    holidays: list[Holiday] = Field(min_length=1, max_length=MAX_HOLIDAYS)

    @model_validator(mode="after")
    def _dates_of_its_year(self) -> HolidayYear:
        if not self.year - 1 <= self.notice.issued.year <= self.year:
            raise ValueError(f"notice.issued: must lie in {self.year - 1} or {self.year}")
        off: set[date] = set()
        for i, h in enumerate(self.holidays):
            for day in (h.first, h.last, *h.make_up_days):
                if day.year != self.year:
                    raise ValueError(f"holidays.{i}: {day} lies outside {self.year}")
            days = set(h.days_off())
            if days & off:
                raise ValueError(f"holidays.{i}: overlaps an earlier holiday")
            off |= days
        both = off & self.make_up_days
        if both:
            raise ValueError(f"holidays: {min(both)} is both a day off and a make-up working day")
        return self

    @property
    def days_off(self) -> frozenset[date]:
        return frozenset(d for h in self.holidays for d in h.days_off())

    @property
    def make_up_days(self) -> frozenset[date]:
        return frozenset(d for h in self.holidays for d in h.make_up_days)

    def citation(self) -> str:
        n = self.notice
        return f"《{n.title}》({n.number}, {n.issued})" + (" — test fixture, not an official schedule" if self.fixture else "")


def parse_holiday_year(data: Any, where: str) -> HolidayYear:
    """A year from its already-read data (a parsed TOML file); errors name `where` and the field."""
    try:
        return HolidayYear.model_validate(data)
    except ValidationError as err:
        raise HolidayYearError("; ".join(within(error_lines(err, f"{where}: ")))) from None


class Calendar:
    """The working-day calendar of the years known; outside them Monday to Friday, flagged as unknown."""

    def __init__(self, years: Iterable[HolidayYear]) -> None:
        self.years = {y.year: y for y in years}
        self._off = frozenset(d for y in self.years.values() for d in y.days_off)
        self._worked = frozenset(d for y in self.years.values() for d in y.make_up_days)

    def is_working_day(self, day: date) -> tuple[bool, bool]:
        """(a working day, the year's schedule is known)."""
        if day.year not in self.years:
            return day.weekday() < 5, False
        if day in self._off:
            return False, True
        return day in self._worked or day.weekday() < 5, True


def estimate_note(due: date) -> str:
    """How an estimated date is marked for people (CLI, Web UI details); notices say it in Chinese
    (`activities/notices.py` `cn_due`)."""
    return f"estimated: the {due.year} holiday schedule is not published yet"
