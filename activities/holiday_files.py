"""Reading the holiday schedule files: the years shipped in `calendar/` (each citing its State Council notice)
and the years loaded later with `spotcheck calendar load` into the calendar folder (`SPOTCHECK_CALENDAR_DIR`,
default `.spotcheck/calendar`, the embedded stack's state folder). Every worker that shares the folder sees a
loaded year at its next deadline: the folder is looked at again whenever a file in it changes.

The model and its checks are pure (`domain/holidays.py`); this module is the part that touches files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from activities.toml_files import read_toml
from domain.holidays import Calendar, HolidayYear, HolidayYearError, parse_holiday_year

CALENDAR_DIR_ENV = "SPOTCHECK_CALENDAR_DIR"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "calendar"
MAX_FILE_BYTES = 64 * 1024  # a year is about 1 KiB


@dataclass(frozen=True)
class KnownYear:
    year: HolidayYear
    source: str  # "shipped" or "loaded"
    path: Path


def loaded_dir() -> Path:
    return Path(os.environ.get(CALENDAR_DIR_ENV) or Path(".spotcheck") / "calendar")


def read_year(path: Path, where: str | None = None) -> HolidayYear:
    """One year file, validated; a file named `<year>.toml` must hold that year."""
    where = where or str(path)
    data = read_toml(path, where, MAX_FILE_BYTES, HolidayYearError)
    year = parse_holiday_year(data, where)
    stem = Path(path).stem
    if stem.isdigit() and int(stem) != year.year:
        raise HolidayYearError(f"{where}: year: {year.year} does not match the file name")
    return year


def known_years(folder: Path | None = None) -> list[KnownYear]:
    """The shipped years, then the loaded ones; a loaded year never replaces a shipped one."""
    years = [KnownYear(read_year(p), "shipped", p) for p in sorted(SHIPPED_DIR.glob("*.toml"))]
    shipped = {k.year.year for k in years}
    folder = folder or loaded_dir()
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
        year = read_year(path)
        if year.year not in shipped:
            years.append(KnownYear(year, "loaded", path))
    return years


def save_year(year: HolidayYear, text: str, folder: Path | None = None) -> Path:
    """Add a validated year to the calendar folder (written whole, then renamed: a worker never reads half)."""
    if year.year in {read_year(p).year for p in SHIPPED_DIR.glob("*.toml")}:
        raise HolidayYearError(f"year: {year.year} ships with Spotcheck and cannot be replaced")
    folder = folder or loaded_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{year.year}.toml"
    partial = folder / f".{year.year}.toml.partial"
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
    return target


# The calendar of one folder, kept until a file in it (or the folder) changes.
_CACHE: dict[Path, tuple[tuple[tuple[str, int], ...], Calendar]] = {}


def _stamp(folder: Path) -> tuple[tuple[str, int], ...]:
    files = [*SHIPPED_DIR.glob("*.toml"), *(folder.glob("*.toml") if folder.is_dir() else [])]
    return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in files))


def current_calendar(folder: Path | None = None) -> Calendar:
    folder = (folder or loaded_dir()).resolve()
    stamp = _stamp(folder)
    cached = _CACHE.get(folder)
    if cached is None or cached[0] != stamp:
        cached = (stamp, Calendar(k.year for k in known_years(folder)))
        _CACHE[folder] = cached
    return cached[1]
