"""The regulatory rule pack: every deadline as data, with its legal basis, versioned by effective date.

A pack is one TOML file in `rules/` (named after its `effective_from` date). The sample in force on a date
uses the newest pack that took effect on or before it, so a rule change never rewrites running history.
Every rule stays configurable: `SPOTCHECK_RULE_OVERRIDES` (JSON) or `RulePack.with_overrides`.

Pure: no Temporal imports, no files, no environment, so workflows may import the models. Reading the
files and the environment is done by `activities/rule_packs.py` (only activities and the starter read files).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

RULE_ID_PATTERN = r"^[a-z][a-z0-9_]*$"


class Unit(StrEnum):
    CALENDAR_DAYS = "calendar_days"
    WORKING_DAYS = "working_days"  # PRC schedule, 调休 make-up days included
    MONTHS = "months"
    HOURS = "hours"  # exact: no end-of-day, no roll-over


class ExpiryAction(StrEnum):
    ESCALATE = "escalate"  # tell the supervisor and keep waiting
    DEFAULT = "default"  # take `default_outcome` as if it had been decided
    ENFORCEMENT_LEAD = "enforcement_lead"  # the party missed a legal duty: open an enforcement lead
    EXPIRE = "expire"  # a period that simply ends (objection window, publicity, retention)


class Scope(StrEnum):
    NATIONAL = "national"
    PROVINCIAL = "provincial"
    LOCAL = "local"  # a city rule or our own local policy
    PLAN = "plan"  # set by the spot-check plan; the pack holds the default


class Rule(BaseModel):
    # Unknown keys are refused: a misspelt `lenght` must not silently leave the old value in force.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: str = Field(pattern=RULE_ID_PATTERN)
    title: str = Field(min_length=1, description="Chinese and English")
    length: int = Field(gt=0)
    unit: Unit
    trigger: str = Field(min_length=1, description="what starts the clock")
    on_expiry: ExpiryAction
    # validate_default: the "required iff on_expiry = default" check must also run when the key is absent.
    default_outcome: str | None = Field(default=None, validate_default=True)
    reminder_before: int = Field(default=0, ge=0, description="in the rule's unit; 0 = no reminder")
    extension_length: int | None = Field(default=None, gt=0, description="one extension, same unit")
    extension_note: str | None = None
    extension_request_before: int | None = Field(
        default=None, ge=0, description="the extension must be asked at least this long before expiry"
    )
    # 期间届满日为节假日的，以节假日后的第一日为期间届满日: on by default for calendar days and months.
    roll_to_working_day: bool = True
    basis: str = Field(min_length=1)
    basis_checked: bool = Field(description="checked against the official text")
    scope: Scope
    note: str | None = None

    @field_validator("default_outcome")
    @classmethod
    def _default_outcome_iff_default(cls, value: str | None, info: ValidationInfo) -> str | None:
        action = info.data.get("on_expiry")
        if action is None:  # on_expiry itself is invalid: that error is reported on its own
            return value
        if action == ExpiryAction.DEFAULT and not value:
            raise ValueError("required when on_expiry = default")
        if action != ExpiryAction.DEFAULT and value is not None:
            raise ValueError(f"only allowed when on_expiry = default (here: {action})")
        return value

    @field_validator("reminder_before")
    @classmethod
    def _reminder_inside_period(cls, value: int, info: ValidationInfo) -> int:
        length = info.data.get("length")
        if length is not None and value >= length:
            raise ValueError(f"must be less than length ({length})")
        return value

    @field_validator("extension_request_before")
    @classmethod
    def _request_inside_period(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return value
        if "extension_length" in info.data and info.data["extension_length"] is None:
            raise ValueError("needs extension_length")
        length = info.data.get("length")
        if length is not None and value >= length:
            raise ValueError(f"must be less than length ({length})")
        return value


class RulePack(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    version: str = Field(min_length=1)
    effective_from: date
    title: str = Field(min_length=1)
    rules: dict[str, Rule] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _ids_from_keys(cls, data: Any) -> Any:
        # In TOML the id is the table key ([rules.objection_window]); fill it in so each Rule knows it.
        if isinstance(data, dict) and isinstance(data.get("rules"), dict):
            rules = {
                key: ({"id": key, **value} if isinstance(value, dict) else value)
                for key, value in data["rules"].items()
            }
            data = {**data, "rules": rules}
        return data

    @model_validator(mode="after")
    def _ids_match_keys(self) -> RulePack:
        for key, rule in self.rules.items():
            if rule.id != key:
                raise ValueError(f"rule {key}: id: must equal the table key, not {rule.id!r}")
        return self

    def rule(self, rule_id: str) -> Rule:
        try:
            return self.rules[rule_id]
        except KeyError:
            raise KeyError(
                f"no rule {rule_id!r} in rule pack {self.version}; known: {', '.join(sorted(self.rules))}"
            ) from None

    def with_overrides(self, overrides: dict[str, dict[str, Any]]) -> RulePack:
        """A validated copy with some rules' fields replaced, e.g. {"objection_window": {"length": 20}}."""
        if not overrides:
            return self
        data = self.model_dump()
        for rule_id, changes in overrides.items():
            if rule_id not in data["rules"]:
                raise RulePackError(
                    f"overrides: no rule {rule_id!r} in rule pack {self.version}; "
                    f"known: {', '.join(sorted(self.rules))}"
                )
            if not isinstance(changes, dict):
                raise RulePackError(f"overrides: rule {rule_id}: expected a table of fields")
            data["rules"][rule_id].update(changes)
        try:
            return RulePack.model_validate(data)
        except ValidationError as exc:
            raise RulePackError(_describe(exc, "overrides")) from None


class RulePackError(ValueError):
    """A rule pack that cannot be used; the message names the file, the rule and the field."""


# -- wire models of the deadline activity -------------------------------------------------------------


class DeadlineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule_id: str
    start: AwareDatetime  # a naive time would be read in the worker's zone: refused
    length: int | None = Field(default=None, gt=0, description="override, e.g. the plan's testing days")
    extended: bool = Field(default=False, description="add the rule's extension_length")


class Deadline(BaseModel):
    rule_id: str
    title: str
    start: AwareDatetime
    due: AwareDatetime = Field(description="UTC; 23:59:59 China time of due_date for day and month units")
    remind_at: AwareDatetime | None
    unit: str
    length: int = Field(description="as applied: override and extension included")
    on_expiry: str
    default_outcome: str | None
    basis: str
    basis_checked: bool
    pack_version: str
    # Days in a year whose holiday schedule is not known were assumed Monday to Friday. Histories recorded
    # before the calendar files call it `beyond_schedule`: still read.
    estimated: bool = Field(validation_alias=AliasChoices("estimated", "beyond_schedule"),
                            description="counted over a year whose holiday schedule is not known")
    due_date: date = Field(description="the legal due date in China time")


# -- parsing and choosing -----------------------------------------------------------------------------


def _describe(exc: ValidationError, where: str) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        if len(loc) >= 2 and loc[0] == "rules":
            field = ".".join(loc[2:])
            lines.append(f"{where}: rule {loc[1]}: {field + ': ' if field else ''}{message}")
        elif loc:
            lines.append(f"{where}: {'.'.join(loc)}: {message}")
        else:
            lines.append(f"{where}: {message}")
    return "\n".join(lines)


def parse_rule_pack(data: Any, where: str) -> RulePack:
    """A pack from its already-read data (e.g. a parsed TOML file); errors name `where`, the rule and the field."""
    try:
        return RulePack.model_validate(data)
    except ValidationError as exc:
        raise RulePackError(_describe(exc, where)) from None


def ordered_packs(named: Iterable[tuple[str, RulePack]]) -> list[RulePack]:
    """(where, pack) pairs as packs sorted oldest first. Two packs taking effect the same day, or with the
    same version, are refused: which one governs a sample must never depend on file order."""
    seen_dates: dict[date, str] = {}
    seen_versions: dict[str, str] = {}
    packs = []
    for where, pack in named:
        if pack.effective_from in seen_dates:
            raise RulePackError(
                f"{where}: effective_from: {pack.effective_from} is also the date of {seen_dates[pack.effective_from]}"
            )
        if pack.version in seen_versions:
            raise RulePackError(
                f"{where}: version: {pack.version} is also the version of {seen_versions[pack.version]}"
            )
        seen_dates[pack.effective_from] = where
        seen_versions[pack.version] = where
        packs.append(pack)
    return sorted(packs, key=lambda p: p.effective_from)


def pack_in_force(packs: Sequence[RulePack], on: date) -> RulePack:
    """The newest pack that took effect on or before `on` (packs sorted oldest first)."""
    in_force = [p for p in packs if p.effective_from <= on]
    if not in_force:
        earliest = min(packs, key=lambda p: p.effective_from) if packs else None
        hint = (
            f"; the earliest, {earliest.version}, takes effect {earliest.effective_from}" if earliest else ""
        )
        raise RulePackError(f"no rule pack in force on {on}{hint}")
    return max(in_force, key=lambda p: p.effective_from)
