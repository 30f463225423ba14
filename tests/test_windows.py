"""The rectification extension's window, pure: the last day to decide an extension, the refusal of one
decided too late, and of one longer than the rule allows."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from domain.rules import Deadline
from domain.windows import CHINA, extension_refusal, extension_window, last_extension_day, too_late

BEFORE, MAX_DAYS = 5, 30
ORDERED = datetime(2025, 11, 3, 10, 0, tzinfo=CHINA)
DUE_DATE = date(2025, 12, 3)  # 30 calendar days after the order, a Wednesday
LAST_DAY = date(2025, 11, 28)  # 5 days before
# The rectification deadline as the calendar activity computes it (real rule pack, 2025-10-11).
DUE = Deadline(
    rule_id="rectification", title="责令整改 rectification", start=ORDERED,
    due=datetime(2025, 12, 3, 15, 59, 59, tzinfo=UTC), remind_at=datetime(2025, 11, 26, 15, 59, 59, tzinfo=UTC),
    unit="calendar_days", length=30, on_expiry="enforcement_lead", default_outcome=None,
    basis="原《产品质量监督抽查管理办法》(国家质检总局令第133号)", basis_checked=True, pack_version="zj-2025-10-11",
    estimated=False, due_date=DUE_DATE,
)


def refusal(today: date, outcome: str = "granted", days: int = 10, note: str | None = None) -> str | None:
    return extension_refusal(DUE, today=today, outcome=outcome, days=days, before_days=BEFORE, max_days=MAX_DAYS,
                             note=note)


# --- the window --------------------------------------------------------------------------------------


def test_the_window_ends_before_days_before_the_due_date_at_the_end_of_the_china_day() -> None:
    window = extension_window(DUE, BEFORE)
    assert last_extension_day(DUE, BEFORE) == LAST_DAY
    assert window.due_date == LAST_DAY
    assert window.due.astimezone(CHINA) == datetime.combine(LAST_DAY, time(23, 59, 59), tzinfo=CHINA)
    assert window.due == datetime(2025, 11, 28, 15, 59, 59, tzinfo=UTC)
    assert window.due.utcoffset() == timedelta(0)


def test_the_window_has_no_reminder_expires_and_is_shorter() -> None:
    window = extension_window(DUE, BEFORE)
    assert window.remind_at is None
    assert window.on_expiry == "expire"
    assert window.length == 30 - BEFORE
    assert "extension" in window.title
    # Everything else is the rectification deadline's own; the deadline itself is left as it was.
    same = {"rule_id", "start", "unit", "default_outcome", "basis", "basis_checked", "pack_version",
            "estimated"}
    assert window.model_dump(include=same) == DUE.model_dump(include=same)
    assert DUE.due_date == DUE_DATE and DUE.remind_at is not None and DUE.on_expiry == "enforcement_lead"


def test_with_no_days_before_the_window_is_the_due_date() -> None:
    window = extension_window(DUE, 0)
    assert (window.due_date, window.due, window.length) == (DUE_DATE, DUE.due, 30)


# --- too late ------------------------------------------------------------------------------------------


def test_too_late_names_the_last_allowed_date() -> None:
    text = too_late(DUE, BEFORE)
    assert text.startswith("too late")
    assert str(LAST_DAY) in text and str(DUE_DATE) in text and f"{BEFORE} days" in text


@pytest.mark.parametrize("outcome", ["granted", "refused"])
def test_an_extension_after_the_last_day_is_refused_as_too_late(outcome: str) -> None:
    assert refusal(LAST_DAY + timedelta(days=1), outcome) == too_late(DUE, BEFORE)
    assert refusal(DUE_DATE, outcome) == too_late(DUE, BEFORE)


@pytest.mark.parametrize("today", [ORDERED.date(), LAST_DAY - timedelta(days=1), LAST_DAY], ids=str)
def test_up_to_and_on_the_last_day_an_extension_is_allowed(today: date) -> None:
    assert refusal(today) is None
    assert refusal(today, days=MAX_DAYS) is None
    assert refusal(today, "refused", days=0) is None


# --- how long ----------------------------------------------------------------------------------------


def test_more_days_than_the_maximum_are_refused_naming_data_days() -> None:
    text = refusal(LAST_DAY, days=MAX_DAYS + 1)
    assert text is not None and text.startswith("data.days")
    assert f"at most {MAX_DAYS} days" in text and str(MAX_DAYS + 1) in text
    assert "rule rectification" in text  # no note: the rule is named
    noted = refusal(LAST_DAY, days=45, note="one extension of up to 30 days")
    assert noted is not None and "one extension of up to 30 days" in noted


def test_a_refusal_is_not_held_to_the_maximum() -> None:
    assert refusal(LAST_DAY, "refused", days=MAX_DAYS + 1) is None


def test_too_late_comes_before_too_long() -> None:
    assert refusal(LAST_DAY + timedelta(days=1), days=MAX_DAYS + 1) == too_late(DUE, BEFORE)
