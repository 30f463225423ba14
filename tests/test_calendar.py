"""Working-day arithmetic on the real PRC schedule (the cited year files in calendar/), and deadlines
computed from the real rule pack. Expected dates were read off the schedule itself (see the comments)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities import calendar as cal
from activities.calendar import (
    CHINA,
    add_months,
    add_working_days,
    compute_deadline,
    compute_deadline_for,
    is_working_day,
)
from activities.rule_packs import RULE_OVERRIDES_ENV, RULES_DIR_ENV, load_rule_pack
from domain.rules import Deadline, DeadlineRequest, Rule, RulePack

REAL_PACK = load_rule_pack(Path(__file__).resolve().parent.parent / "rules" / "2025-10-11.toml")
VERSION = REAL_PACK.version


def _deadline(rule_id: str, start: datetime, **kwargs: Any) -> Deadline:
    req = DeadlineRequest(rule_id=rule_id, start=start, **kwargs)
    return compute_deadline_for(REAL_PACK.rule(rule_id, start.astimezone(CHINA).date()), VERSION, req)


def _china(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=CHINA)


def _end_of_day_utc(d: date) -> datetime:
    return datetime.combine(d, time(23, 59, 59), tzinfo=CHINA).astimezone(UTC)


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RULES_DIR_ENV, raising=False)
    monkeypatch.delenv(RULE_OVERRIDES_ENV, raising=False)


# -- the schedule ---------------------------------------------------------------------------------------


def test_schedule_make_up_days_and_holidays_2025() -> None:
    # National Day + Mid-Autumn 2025: Oct 1-8 off; Sunday Sep 28 and Saturday Oct 11 are worked (调休).
    assert is_working_day(date(2025, 9, 27)) == (False, True)
    assert is_working_day(date(2025, 9, 28)) == (True, True)
    for day in range(1, 9):
        assert is_working_day(date(2025, 10, day)) == (False, True)
    assert is_working_day(date(2025, 10, 11)) == (True, True)
    assert is_working_day(date(2025, 10, 12)) == (False, True)


def test_schedule_unknown_year_falls_back_to_weekdays() -> None:
    assert is_working_day(date(2027, 1, 1)) == (True, False)  # a Friday (really New Year's Day)
    assert is_working_day(date(2027, 1, 2)) == (False, False)  # a Saturday


# -- working days ---------------------------------------------------------------------------------------


def test_working_days_across_national_day_2025() -> None:
    # From Tue Sep 30: Oct 1-8 off, Oct 9 (1), Oct 10 (2), Sat Oct 11 make-up (3), Oct 13 (4), Oct 14 (5).
    assert add_working_days(date(2025, 9, 30), 3) == (date(2025, 10, 11), False)
    assert add_working_days(date(2025, 9, 30), 5) == (date(2025, 10, 14), False)
    # From Fri Sep 26: Sat Sep 27 off, Sun Sep 28 make-up (1), Mon Sep 29 (2).
    assert add_working_days(date(2025, 9, 26), 2) == (date(2025, 9, 29), False)
    assert add_working_days(date(2025, 9, 30), 0) == (date(2025, 9, 30), False)


def test_working_days_across_spring_festival_2026() -> None:
    # Sat Feb 14 is a make-up day, Feb 15-23 are off, Sat Feb 28 is a make-up day.
    assert add_working_days(date(2026, 2, 12), 2) == (date(2026, 2, 14), False)
    assert add_working_days(date(2026, 2, 12), 3) == (date(2026, 2, 24), False)
    assert add_working_days(date(2026, 2, 24), 4) == (date(2026, 2, 28), False)


def test_working_days_beyond_the_schedule_are_flagged() -> None:
    # Dec 31 2026 is known; from Jan 1 2027 on, Monday to Friday are assumed.
    assert add_working_days(date(2026, 12, 30), 1) == (date(2026, 12, 31), False)
    assert add_working_days(date(2026, 12, 30), 5) == (date(2027, 1, 6), True)


def test_result_notice_across_national_day() -> None:
    d = _deadline("result_notice", _china(2025, 9, 30, 16))
    assert d.due_date == date(2025, 10, 14)
    assert d.due == datetime(2025, 10, 14, 15, 59, 59, tzinfo=UTC)
    assert d.due.astimezone(CHINA).time() == time(23, 59, 59)
    assert d.remind_at == _end_of_day_utc(date(2025, 10, 11))  # 5 - 2 = 3 working days
    assert (d.unit, d.length, d.on_expiry, d.pack_version) == ("working_days", 5, "escalate", VERSION)
    assert not d.estimated


def test_lab_testing_beyond_schedule() -> None:
    d = _deadline("lab_testing", _china(2026, 12, 21))
    assert d.estimated
    # Dec 22-31 2026: 8 working days known; then 12 weekdays of 2027: Jan 1 .. Jan 18.
    assert d.due_date == date(2027, 1, 18)


def test_length_override_from_the_plan() -> None:
    d = _deadline("lab_testing", _china(2025, 9, 30), length=3)
    assert (d.length, d.due_date) == (3, date(2025, 10, 11))
    assert d.remind_at is None  # 3 days leave no room for a 5-day reminder


# -- calendar days and months ---------------------------------------------------------------------------


def test_calendar_days_ending_on_a_holiday_roll_to_the_next_working_day() -> None:
    # Sep 17 + 15 = Oct 2 (National Day) -> Oct 9, the first working day after the holiday.
    d = _deadline("objection_window", _china(2025, 9, 17))
    assert d.due_date == date(2025, 10, 9)
    assert d.due == _end_of_day_utc(date(2025, 10, 9))
    assert d.remind_at == _end_of_day_utc(date(2025, 9, 29))  # Sep 17 + 12, a Monday
    assert d.on_expiry == "expire" and d.default_outcome is None


def test_calendar_days_ending_on_a_weekend_roll_but_make_up_days_do_not() -> None:
    assert _deadline("objection_window", _china(2025, 11, 7)).due_date == date(2025, 11, 24)  # Sat -> Mon
    # Sep 26 + 15 = Sat Oct 11, a make-up working day: no roll.
    assert _deadline("objection_window", _china(2025, 9, 26)).due_date == date(2025, 10, 11)


def test_reminder_rolled_onto_the_due_date_stays_before_it() -> None:
    # Sep 19 + 12 = Oct 1 and Sep 19 + 15 = Oct 4 both roll to Oct 9: remind on Oct 1 instead.
    d = _deadline("objection_window", _china(2025, 9, 19))
    assert d.due_date == date(2025, 10, 9)
    assert d.remind_at == _end_of_day_utc(date(2025, 10, 1))


def test_no_roll_when_the_rule_says_so() -> None:
    d = _deadline("merge_window", _china(2025, 8, 24))
    assert d.due_date == date(2025, 11, 22)  # a Saturday, kept
    assert d.remind_at is None


def test_rectification_rolls_over_new_year_2026() -> None:
    # Order 18 Art. 46: Nov 3 + 60 = Jan 2 2026 (holiday), Jan 3 off, Sun Jan 4 is a make-up working day.
    d = _deadline("rectification", _china(2025, 11, 3))
    assert (d.length, d.due_date) == (60, date(2026, 1, 4))
    with pytest.raises(ValueError, match="no extension"):
        _deadline("rectification", _china(2025, 11, 3), extended=True)


def test_add_months_clamps_the_day() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert add_months(date(2025, 11, 30), 3) == date(2026, 2, 28)
    assert add_months(date(2025, 12, 15), 1) == date(2026, 1, 15)
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)
    assert add_months(date(2025, 10, 11), 36) == date(2028, 10, 11)


def test_months_rule_clamps_then_rolls() -> None:
    # Aug 31 + 6 months = Feb 28 2026, a Saturday but a make-up working day: kept.
    assert _deadline("credit_repair_wait_general", _china(2025, 8, 31)).due_date == date(2026, 2, 28)
    # Nov 15 + 3 months = Feb 15 2026 (Spring Festival) -> Feb 24.
    assert _deadline("sample_retention", _china(2025, 11, 15)).due_date == date(2026, 2, 24)


def test_months_rule_clamp_with_a_plain_rule() -> None:
    rule = Rule(
        id="monthly", title="月 monthly", length=1, unit="months", trigger="t", on_expiry="expire",
        basis="b", basis_checked=False, scope="local",
    )  # fmt: skip
    req = DeadlineRequest(rule_id="monthly", start=_china(2025, 1, 31))
    assert compute_deadline_for(rule, "v", req).due_date == date(2025, 2, 28)


# -- hours and time zones -------------------------------------------------------------------------------


def test_hours_rule_is_exact_even_on_a_holiday() -> None:
    start = datetime(2025, 10, 1, 14, 30, tzinfo=UTC)  # 22:30 China time, National Day
    d = _deadline("crime_transfer", start)
    assert d.due == datetime(2025, 10, 2, 14, 30, tzinfo=UTC)
    assert d.due_date == date(2025, 10, 2)
    assert d.remind_at == datetime(2025, 10, 2, 10, 30, tzinfo=UTC)  # 4 hours before
    assert d.unit == "hours" and not d.estimated


def test_days_are_counted_in_china_time() -> None:
    # 17:30 UTC on Nov 2 is 01:30 on Mon Nov 3 in China: counting starts after Nov 3.
    d = _deadline("sample_receipt", datetime(2025, 11, 2, 17, 30, tzinfo=UTC))
    assert d.due_date == date(2025, 11, 5)
    assert d.due == datetime(2025, 11, 5, 15, 59, 59, tzinfo=UTC)
    assert d.due.astimezone(CHINA).time() == time(23, 59, 59)
    assert d.remind_at == datetime(2025, 11, 4, 15, 59, 59, tzinfo=UTC)
    assert (d.on_expiry, d.default_outcome) == ("default", "accepted")


def test_naive_start_refused() -> None:
    with pytest.raises(ValueError):
        DeadlineRequest(rule_id="result_notice", start=datetime(2025, 11, 3, 10))


# -- the activity ---------------------------------------------------------------------------------------


async def test_activity_uses_the_pack_in_force() -> None:
    d = await compute_deadline(DeadlineRequest(rule_id="objection_window", start=_china(2025, 11, 7)))
    assert (d.pack_version, d.due_date, d.basis_checked) == (VERSION, date(2025, 11, 24), True)
    assert "产品质量法" in d.basis


async def test_activity_uses_the_rule_version_in_force_on_the_start_date() -> None:
    """The deadline says which version applied; a version's last day still takes it, the next day the next."""
    old = await compute_deadline(DeadlineRequest(rule_id="credit_repair_wait_general", start=_china(2026, 3, 31, 23)))
    new = await compute_deadline(DeadlineRequest(rule_id="credit_repair_wait_general", start=_china(2026, 4, 1, 0, 30)))
    assert (old.length, old.effective_from, old.effective_to) == (6, None, date(2026, 3, 31))
    assert (new.length, new.effective_from, new.effective_to) == (3, date(2026, 4, 1), None)
    assert "2021" in old.basis and "第36号" in new.basis
    # The start date is the China date: 2026-03-31 20:00 UTC is already 2026-04-01 in China.
    utc = await compute_deadline(DeadlineRequest(rule_id="credit_repair_wait_general",
                                                 start=datetime(2026, 3, 31, 20, tzinfo=UTC)))
    assert utc.effective_from == date(2026, 4, 1)


def test_deadlines_recorded_before_versions_still_decode() -> None:
    recorded = _deadline("objection_window", _china(2025, 11, 7)).model_dump(mode="json")
    del recorded["effective_from"], recorded["effective_to"]
    assert Deadline.model_validate(recorded).effective_from is None


async def test_activity_caches_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    await compute_deadline(DeadlineRequest(rule_id="result_notice", start=_china(2025, 11, 3)))

    def _no_reload(directory: Path | None = None) -> list[object]:
        raise AssertionError("the pack was read again")

    monkeypatch.setattr(cal, "load_rule_packs", _no_reload)
    d = await compute_deadline(DeadlineRequest(rule_id="result_notice", start=_china(2025, 11, 3)))
    assert d.due_date == date(2025, 11, 10)


async def test_activity_applies_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RULE_OVERRIDES_ENV, '{"result_notice": {"length": 10}}')
    d = await compute_deadline(DeadlineRequest(rule_id="result_notice", start=_china(2025, 11, 3)))
    assert (d.length, d.due_date) == (10, date(2025, 11, 17))


async def test_overrides_are_validated_once_per_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pack with overrides is validated once per setting, not on every deadline; a new setting counts."""
    calls = []
    original = RulePack.with_overrides
    monkeypatch.setattr(RulePack, "with_overrides", lambda self, o: calls.append(o) or original(self, o))
    monkeypatch.setenv(RULE_OVERRIDES_ENV, '{"result_notice": {"length": 11}}')
    for _ in range(5):
        d = await compute_deadline(DeadlineRequest(rule_id="result_notice", start=_china(2025, 11, 3)))
    assert d.length == 11 and len(calls) == 1
    monkeypatch.setenv(RULE_OVERRIDES_ENV, '{"result_notice": {"length": 12}}')
    d = await compute_deadline(DeadlineRequest(rule_id="result_notice", start=_china(2025, 11, 3)))
    assert d.length == 12 and len(calls) == 2


async def test_activity_refuses_what_can_never_succeed() -> None:
    with pytest.raises(ApplicationError) as err:
        await compute_deadline(DeadlineRequest(rule_id="nope", start=_china(2025, 11, 3)))
    assert err.value.type == "UnknownRule" and err.value.non_retryable
    assert "objection_window" in str(err.value)

    with pytest.raises(ApplicationError) as err:
        await compute_deadline(DeadlineRequest(rule_id="result_notice", start=_china(2025, 10, 10)))
    assert err.value.type == "NoRulePack" and err.value.non_retryable

    with pytest.raises(ApplicationError) as err:
        await compute_deadline(
            DeadlineRequest(rule_id="objection_window", start=_china(2025, 11, 3), extended=True)
        )
    assert err.value.type == "InvalidDeadline" and err.value.non_retryable
