"""Windows inside a deadline: the rules of a rectification extension (延期整改), pure and sandbox-safe.

An extension is decided at least `before_days` days before the rectification due date: the last allowed
day ends at 23:59:59 China time. One extension adds at most `max_days` days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

from domain.rules import Deadline

# Legal dates are China dates; China keeps UTC+8 all year, so no zoneinfo lookup in the sandbox.
CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
END_OF_DAY = time(23, 59, 59)

EXTENSION_WINDOW_TITLE = "延期整改决定 last day to decide a rectification extension"


def last_extension_day(due: Deadline, before_days: int) -> date:
    """The last China date on which an extension of `due` may still be decided."""
    return due.due_date - timedelta(days=before_days)


def extension_window(due: Deadline, before_days: int) -> Deadline:
    """The extension's own wait: `due` cut short to end `before_days` days before its due date."""
    last = last_extension_day(due, before_days)
    return due.model_copy(update={
        "title": EXTENSION_WINDOW_TITLE,
        "due": datetime.combine(last, END_OF_DAY, tzinfo=CHINA).astimezone(UTC),
        "due_date": last,
        "remind_at": None,
        "length": due.length - before_days,
        "on_expiry": "expire",
    })


def too_late(due: Deadline, before_days: int) -> str:
    """The refusal of an extension of `due` decided after its last allowed day."""
    return (f"too late: an extension must be decided at least {before_days} days before the rectification "
            f"deadline {due.due_date}; the last allowed date was {last_extension_day(due, before_days)}")


def extension_refusal(
    due: Deadline, *, today: date, outcome: str, days: int, before_days: int, max_days: int,
    note: str | None = None,
) -> str | None:
    """Why an extension decision (`outcome`, granting `days`) on China date `today` cannot be taken for the
    rectification deadline `due`, or None. `note` words the rule in the refusal (default: its rule id)."""
    if today > last_extension_day(due, before_days):
        return too_late(due, before_days)
    if outcome == "granted" and days > max_days:
        return (f"data.days: one extension adds at most {max_days} days "
                f"({note or 'rule ' + due.rule_id}), not {days}")
    return None
