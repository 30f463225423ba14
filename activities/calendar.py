"""Deadlines: the rule pack applied to the PRC working-day calendar.

An activity, not workflow code: the holiday schedule grows every year (a year file, `domain/holidays.py`),
so a replayed workflow must read the deadline it got from history, never recompute it.

Counting follows the usual rules for periods: the start day is not counted; a period in days or months ends
at the end of its last day, China time; a period in calendar days or months whose last day is a holiday or
rest day ends on the next working day (unless the rule says `roll_to_working_day = false`). Working days
follow the published schedule including make-up working days (调休); in a year whose schedule is not known,
Monday to Friday are assumed and the deadline says so (`estimated`), until the year is loaded and the
waiting workflow computes it again.
"""

from __future__ import annotations

import calendar as _stdlib_calendar
import os
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.holiday_files import current_calendar
from activities.rule_packs import RULE_OVERRIDES_ENV, load_rule_packs, overrides_from_env, rules_dir
from domain.holidays import Calendar
from domain.rules import Deadline, DeadlineRequest, Rule, RulePack, RulePackError, Unit, pack_in_force

CHINA = ZoneInfo("Asia/Shanghai")
END_OF_DAY = time(23, 59, 59)


def is_working_day(d: date, cal: Calendar | None = None) -> tuple[bool, bool]:
    """(is a working day, the schedule knows the year). Outside the schedule's years: Monday to Friday."""
    return (cal or current_calendar()).is_working_day(d)


def add_working_days(start: date, n: int, cal: Calendar | None = None) -> tuple[date, bool]:
    """The n-th working day after `start` (which is not counted), and whether any day examined lay
    in a year whose schedule is not known (the date is then an estimate)."""
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    cal = cal or current_calendar()
    day, counted, estimated = start, 0, False
    while counted < n:
        day += timedelta(days=1)
        working, known = cal.is_working_day(day)
        estimated = estimated or not known
        counted += working
    return day, estimated


def add_months(d: date, n: int) -> date:
    """Same day n months later; a day the target month lacks becomes its last day (Jan 31 + 1 = Feb 28/29)."""
    months = d.month - 1 + n
    year, month = d.year + months // 12, months % 12 + 1
    return date(year, month, min(d.day, _stdlib_calendar.monthrange(year, month)[1]))


def _roll_to_working_day(d: date, cal: Calendar) -> tuple[date, bool]:
    estimated = False
    while True:
        working, known = cal.is_working_day(d)
        estimated = estimated or not known
        if working:
            return d, estimated
        d += timedelta(days=1)


def _last_day(rule: Rule, start: date, length: int, cal: Calendar) -> tuple[date, bool]:
    if rule.unit == Unit.WORKING_DAYS:
        return add_working_days(start, length, cal)
    last = start + timedelta(days=length) if rule.unit == Unit.CALENDAR_DAYS else add_months(start, length)
    if rule.roll_to_working_day:
        return _roll_to_working_day(last, cal)
    return last, False


def _end_of(d: date) -> datetime:
    return datetime.combine(d, END_OF_DAY, tzinfo=CHINA).astimezone(UTC)


def compute_deadline_for(rule: Rule, pack_version: str, req: DeadlineRequest, cal: Calendar | None = None) -> Deadline:
    cal = cal or current_calendar()
    if req.start.tzinfo is None or req.start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    length = req.length if req.length is not None else rule.length
    if req.extended:
        if rule.extension_length is None:
            raise ValueError(f"rule {rule.id} has no extension")
        length += rule.extension_length
    remind_length = length - rule.reminder_before if rule.reminder_before else 0

    remind_at: datetime | None = None
    if rule.unit == Unit.HOURS:
        due = (req.start + timedelta(hours=length)).astimezone(UTC)
        due_date, estimated = due.astimezone(CHINA).date(), False
        if remind_length > 0:
            remind_at = (req.start + timedelta(hours=remind_length)).astimezone(UTC)
    else:
        start_day = req.start.astimezone(CHINA).date()
        due_date, estimated = _last_day(rule, start_day, length, cal)
        due = _end_of(due_date)
        # A length override shorter than the reminder lead leaves no room for a reminder.
        if remind_length > 0:
            remind_day, remind_estimated = _last_day(rule, start_day, remind_length, cal)
            if remind_day >= due_date:
                # Both rolled past the same holiday: remind on the unrolled day rather than not at all.
                remind_day = (
                    start_day + timedelta(days=remind_length)
                    if rule.unit == Unit.CALENDAR_DAYS
                    else add_months(start_day, remind_length)
                )
            remind_at = _end_of(remind_day)
            estimated = estimated or remind_estimated

    return Deadline(
        rule_id=rule.id,
        title=rule.title,
        start=req.start,
        due=due,
        remind_at=remind_at,
        unit=rule.unit.value,
        length=length,
        on_expiry=rule.on_expiry.value,
        default_outcome=rule.default_outcome,
        basis=rule.basis,
        basis_checked=rule.basis_checked,
        pack_version=pack_version,
        estimated=estimated,
        due_date=due_date,
        effective_from=rule.effective_from,
        effective_to=rule.effective_to,
    )


# Loaded packs per directory: the files are read once per worker process, not on every deadline.
_PACKS: dict[Path, list[RulePack]] = {}


def _packs(directory: Path) -> list[RulePack]:
    # Keyed by the path as configured (resolving it costs file-system calls on every deadline).
    if directory not in _PACKS:
        _PACKS[directory] = load_rule_packs(directory)
    return _PACKS[directory]


# Packs with SPOTCHECK_RULE_OVERRIDES applied, by (the loaded pack, the variable's text): validated once per
# pack and setting, not on every deadline; a changed setting is read again. The loaded pack is kept beside
# its copy, so an id is never mistaken for another pack's.
_OVERRIDDEN: dict[tuple[int, str], tuple[RulePack, RulePack]] = {}


def _overridden(pack: RulePack, overrides: str) -> RulePack:
    cached = _OVERRIDDEN.get((id(pack), overrides))
    if cached is None or cached[0] is not pack:
        cached = _OVERRIDDEN[(id(pack), overrides)] = (pack, pack.with_overrides(overrides_from_env()))
    return cached[1]


@activity.defn
async def compute_deadline(req: DeadlineRequest) -> Deadline:
    """The deadline of one rule: the version in force on the start date (China time) of the pack in force
    on that date."""
    # A broken pack file or override stays retryable: fix it and restart the worker, the activity
    # recovers. A request that can never succeed with the pack in force fails at once.
    packs = _packs(rules_dir())
    on = req.start.astimezone(CHINA).date()
    try:
        pack = pack_in_force(packs, on)
    except RulePackError as exc:
        raise ApplicationError(str(exc), type="NoRulePack", non_retryable=True) from exc
    pack = _overridden(pack, os.environ.get(RULE_OVERRIDES_ENV, ""))
    try:
        rule = pack.rule(req.rule_id, on)
    except KeyError as exc:
        raise ApplicationError(str(exc.args[0]), type="UnknownRule", non_retryable=True) from exc
    try:
        return compute_deadline_for(rule, pack.version, req)
    except ValueError as exc:
        raise ApplicationError(str(exc), type="InvalidDeadline", non_retryable=True) from exc
