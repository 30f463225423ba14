"""The holiday schedules as data: every shipped year cites its notice and agrees with chinese_calendar (a
cross-check, not the source); the model refuses what cannot be a schedule, naming the field and never the
input; loading a year changes the count and ends the estimate."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar
import pytest

from activities import holiday_files
from activities.calendar import add_working_days, compute_deadline_for, is_working_day
from activities.holiday_files import (
    CALENDAR_DIR_ENV,
    SHIPPED_DIR,
    current_calendar,
    known_years,
    read_year,
    save_year,
)
from activities.notices import environment
from domain.holidays import Calendar, HolidayYearError, estimate_note, parse_holiday_year
from domain.rules import DeadlineRequest
from tests.test_calendar import REAL_PACK, VERSION, _china

FIXTURE_2027 = Path(__file__).resolve().parent / "fixtures" / "calendar-2027.toml"
SHIPPED = sorted(SHIPPED_DIR.glob("*.toml"))
NOTICE_NUMBER = re.compile(r"^国办发明电〔\d{4}〕\d+号$")


@pytest.fixture
def calendar_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "calendar"
    monkeypatch.setenv(CALENDAR_DIR_ENV, str(folder))
    return folder


# -- the shipped years ----------------------------------------------------------------------------------


def test_years_are_shipped() -> None:
    assert [p.stem for p in SHIPPED][:2] == ["2025", "2026"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_year_cites_its_notice(path: Path) -> None:
    year = read_year(path)
    assert not year.fixture, "a fixture year must never ship"
    assert year.notice.title == f"国务院办公厅关于{year.year}年部分节假日安排的通知"
    assert NOTICE_NUMBER.match(year.notice.number)
    assert year.notice.url and year.notice.url.startswith("https://www.gov.cn/")
    assert year.notice.issued < date(year.year, 1, 1)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_year_agrees_with_chinese_calendar(path: Path) -> None:
    year = read_year(path)
    cal = Calendar([year])
    day = date(year.year, 1, 1)
    while day.year == year.year:
        assert cal.is_working_day(day) == (chinese_calendar.is_workday(day), True), day
        day += timedelta(days=1)
    assert year.days_off == {d for d in chinese_calendar.constants.holidays if d.year == year.year}
    assert year.make_up_days == {d for d in chinese_calendar.constants.workdays if d.year == year.year}


def test_citations() -> None:
    cited = {k.year.year: k.year.citation() for k in known_years()}
    assert cited[2025] == "《国务院办公厅关于2025年部分节假日安排的通知》(国办发明电〔2024〕12号, 2024-11-12)"
    assert cited[2026] == "《国务院办公厅关于2026年部分节假日安排的通知》(国办发明电〔2025〕7号, 2025-11-04)"


# -- counting on the files ------------------------------------------------------------------------------


def test_national_day_2025_and_spring_festival_2026_from_the_files() -> None:
    # Oct 1-8 2025 off, Sat Oct 11 worked; Feb 15-23 2026 off, Sat Feb 14 and Feb 28 worked.
    assert add_working_days(date(2025, 9, 30), 3) == (date(2025, 10, 11), False)
    assert add_working_days(date(2026, 2, 12), 3) == (date(2026, 2, 24), False)
    # Calendar days: Feb 1 + 15 = Feb 16 2026 (Spring Festival) rolls to Tue Feb 24.
    d = compute_deadline_for(REAL_PACK.rule("objection_window"), VERSION,
                             DeadlineRequest(rule_id="objection_window", start=_china(2026, 2, 1)))
    assert (d.due_date, d.estimated) == (date(2026, 2, 24), False)


def test_a_deadline_in_2027_is_estimated_until_the_year_is_loaded(calendar_dir: Path) -> None:
    req = DeadlineRequest(rule_id="objection_window", start=_china(2027, 1, 25))
    rule = REAL_PACK.rule("objection_window")
    before = compute_deadline_for(rule, VERSION, req)
    # Jan 25 + 15 = Wed Feb 9 2027, counted as a working day: nothing is known about 2027.
    assert (before.due_date, before.estimated) == (date(2027, 2, 9), True)
    assert is_working_day(date(2027, 2, 9)) == (True, False)

    save_year(read_year(FIXTURE_2027), FIXTURE_2027.read_text(encoding="utf-8"))
    after = compute_deadline_for(rule, VERSION, req)
    # The fixture's Spring Festival is Feb 5-13: the window ends on the next working day, Mon Feb 15.
    assert (after.due_date, after.estimated) == (date(2027, 2, 15), False)
    assert is_working_day(date(2027, 1, 31)) == (True, True)  # a Sunday made a working day


def test_the_calendar_is_read_again_when_a_year_is_added(calendar_dir: Path) -> None:
    first = current_calendar()
    assert current_calendar() is first  # nothing changed: not read again
    save_year(read_year(FIXTURE_2027), FIXTURE_2027.read_text(encoding="utf-8"))
    assert 2027 in current_calendar().years
    assert [(k.year.year, k.source) for k in known_years()][-1] == (2027, "loaded")


def test_a_shipped_year_cannot_be_replaced(calendar_dir: Path) -> None:
    path = SHIPPED_DIR / "2026.toml"
    with pytest.raises(HolidayYearError, match="year: 2026 ships with Spotcheck"):
        save_year(read_year(path), path.read_text(encoding="utf-8"))


# -- what cannot be a schedule --------------------------------------------------------------------------


def _year(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "year": 2027,
        "notice": {"title": "t", "number": "n", "issued": date(2026, 11, 1)},
        "holidays": [{"name": "春节", "first": date(2027, 2, 5), "last": date(2027, 2, 13),
                      "make_up_days": [date(2027, 2, 20)]}],
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(("changes", "message"), [
    ({"year": 1999}, "file: year: Input should be greater than or equal to 2000"),
    ({"colour": "red"}, "file: colour: Extra inputs are not permitted"),
    ({"holidays": []}, "file: holidays: List should have at least 1 item after validation, not 0"),
    ({"holidays": [{"name": "x", "first": date(2027, 2, 5), "last": date(2027, 2, 1)}]},
     "file: holidays.0: last: must not come before first"),
    ({"holidays": [{"name": "x", "first": date(2027, 1, 1), "last": date(2027, 3, 1)}]},
     "file: holidays.0: last: a break of more than 16 days"),
    ({"holidays": [{"name": "x", "first": date(2027, 2, 5), "last": date(2027, 2, 6),
                    "make_up_days": [date(2027, 2, 3)]}]},
     "file: holidays.0: make_up_days: 2027-02-03 is a weekday already"),
    ({"holidays": [{"name": "x", "first": date(2026, 12, 31), "last": date(2027, 1, 1)}]},
     "file: holidays.0: 2026-12-31 lies outside 2027"),
    ({"holidays": [{"name": "a", "first": date(2027, 2, 5), "last": date(2027, 2, 8)},
                   {"name": "b", "first": date(2027, 2, 8), "last": date(2027, 2, 9)}]},
     "file: holidays.1: overlaps an earlier holiday"),
    ({"holidays": [{"name": "a", "first": date(2027, 2, 5), "last": date(2027, 2, 7)},
                   {"name": "b", "first": date(2027, 2, 8), "last": date(2027, 2, 9),
                    "make_up_days": [date(2027, 2, 6)]}]},
     "file: holidays: 2027-02-06 is both a day off and a make-up working day"),
    ({"notice": {"title": "t", "number": "n", "issued": date(2020, 1, 1)}},
     "file: notice.issued: must lie in 2026 or 2027"),
    ({"notice": {"title": "t\x00secret", "number": "n", "issued": date(2026, 11, 1)}},
     "file: notice.title: must not contain NUL characters"),
])
def test_bad_years_are_refused_naming_the_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(HolidayYearError) as err:
        parse_holiday_year(_year(**changes), "file")
    assert str(err.value) == message
    assert "secret" not in str(err.value) and "red" not in str(err.value)


def test_unreadable_files_never_echo_the_content(tmp_path: Path) -> None:
    bad = tmp_path / "2027.toml"
    bad.write_text('year = "2027 secret"\n[notice\n', encoding="utf-8")
    with pytest.raises(HolidayYearError, match=r"^f: not valid TOML$"):
        read_year(bad, "f")
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(HolidayYearError, match="not valid UTF-8 at byte 0"):
        read_year(bad, "f")
    other = tmp_path / "2028.toml"
    other.write_text(FIXTURE_2027.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(HolidayYearError, match="year: 2027 does not match the file name"):
        read_year(other, "f")
    assert holiday_files.MAX_FILE_BYTES < 100_000


# -- how an estimate reads ------------------------------------------------------------------------------


def test_an_estimated_date_is_marked_in_notices_and_for_people() -> None:
    tpl = environment().from_string("{{ due | cn_due }}")
    assert tpl.render(due="2027-02-09", estimated_dates=["2027-02-09"]) == "2027年2月9日（预计，2027年节假日安排尚未公布）"
    assert tpl.render(due="2026-02-24", estimated_dates=["2027-02-09"]) == "2026年2月24日"
    assert tpl.render(due="2026-02-24") == "2026年2月24日"
    assert estimate_note(date(2027, 2, 9)) == "estimated: the 2027 holiday schedule is not published yet"
