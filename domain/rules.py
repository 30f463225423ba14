"""The regulatory rule pack: every deadline as data, with its legal basis, versioned by effective date.

A pack is one TOML file in `rules/` (named after its `effective_from` date). The sample in force on a date
uses the newest pack that took effect on or before it, so a rule change never rewrites running history.
Inside a pack one rule may have several versions, each with its own `effective_from` / `effective_to`
(inclusive dates; in TOML an array of tables `[[rules.<id>]]`, while a plain `[rules.<id>]` table is one
version): a deadline uses the version in force on its start date, and versions of one rule never overlap.
A rule marked `basis_checked` cites an article (第…条 or Art.) in its basis.
Every rule stays configurable: `SPOTCHECK_RULE_OVERRIDES` (JSON) or `RulePack.with_overrides`.

Pure: no Temporal imports, no files, no environment, so workflows may import the models. Reading the
files and the environment is done by `activities/rule_packs.py` (only activities and the starter read files).
"""

from __future__ import annotations

import re
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
# An article cited in a basis: 第十五条, 第6条, Art. 15.
ARTICLE = re.compile(r"第[〇零一二三四五六七八九十百千0-9]+条|\bArt\.\s*\d")


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
    length: int = Field(ge=0, description="0 only for a period that simply ends (on_expiry = expire): none")
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
    effective_from: date | None = Field(default=None, description="first day this version applies (inclusive)")
    effective_to: date | None = Field(default=None, description="last day this version applies (inclusive)")

    def in_force(self, on: date) -> bool:
        return (self.effective_from is None or self.effective_from <= on) and (
            self.effective_to is None or on <= self.effective_to)

    @model_validator(mode="after")
    def _whole(self) -> Rule:
        if self.length == 0 and self.on_expiry != ExpiryAction.EXPIRE:
            raise ValueError(f"length: 0 is only allowed with on_expiry = expire (here: {self.on_expiry})")
        if self.effective_from and self.effective_to and self.effective_to < self.effective_from:
            raise ValueError(f"effective_to: {self.effective_to} is before effective_from {self.effective_from}")
        if self.basis_checked and not ARTICLE.search(self.basis):
            raise ValueError("basis_checked: a checked basis must cite an article (第…条 or Art. N); "
                             "cite it or set basis_checked = false")
        return self

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
        if value and length is not None and value >= length:
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
    # The versions of each rule, oldest first (a plain TOML table is one version).
    rules: dict[str, tuple[Rule, ...]] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _ids_from_keys(cls, data: Any) -> Any:
        # In TOML the id is the table key ([rules.objection_window] or [[rules.x]]); fill it in so each Rule
        # knows it, and make a single table a list of one version.
        if isinstance(data, dict) and isinstance(data.get("rules"), dict):
            rules = {
                key: [({"id": key, **v} if isinstance(v, dict) else v)
                      for v in (value if isinstance(value, list | tuple) else [value])]
                for key, value in data["rules"].items()
            }
            data = {**data, "rules": rules}
        return data

    @model_validator(mode="after")
    def _versions_fit(self) -> RulePack:
        ordered = {}
        for key, versions in self.rules.items():
            if not versions:
                raise ValueError(f"rule {key}: no version")
            for rule in versions:
                if rule.id != key:
                    raise ValueError(f"rule {key}: id: must equal the table key, not {rule.id!r}")
            versions = tuple(sorted(versions, key=lambda r: r.effective_from or date.min))
            for earlier, later in zip(versions, versions[1:], strict=False):
                if earlier.effective_to is None or later.effective_from is None \
                        or later.effective_from <= earlier.effective_to:
                    raise ValueError(
                        f"rule {key}: effective_from: the version from {later.effective_from or 'the start'} "
                        f"overlaps the version {_span(earlier)}; give each version its effective_from and "
                        "effective_to"
                    )
            ordered[key] = versions
        object.__setattr__(self, "rules", ordered)
        return self

    def versions(self, rule_id: str) -> tuple[Rule, ...]:
        try:
            return self.rules[rule_id]
        except KeyError:
            raise KeyError(
                f"no rule {rule_id!r} in rule pack {self.version}; known: {', '.join(sorted(self.rules))}"
            ) from None

    def rule(self, rule_id: str, on: date | None = None) -> Rule:
        """The version of the rule in force on `on`; without a date, the rule's only version."""
        versions = self.versions(rule_id)
        if on is None:
            if len(versions) == 1:
                return versions[0]
            raise KeyError(f"rule {rule_id} has {len(versions)} versions in rule pack {self.version}: "
                           "name the date")
        for rule in versions:
            if rule.in_force(on):
                return rule
        raise KeyError(f"no version of rule {rule_id!r} in force on {on} in rule pack {self.version} "
                       f"(versions: {', '.join(_span(r) for r in versions)})")

    def rules_on(self, on: date) -> dict[str, Rule]:
        """Every rule in force on `on`, one version each, by id."""
        return {key: rule for key, versions in sorted(self.rules.items())
                for rule in versions if rule.in_force(on)}

    def with_overrides(self, overrides: dict[str, dict[str, Any]]) -> RulePack:
        """A validated copy with some rules' fields replaced, e.g. {"objection_window": {"length": 20}}
        (every version of the rule)."""
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
            for version in data["rules"][rule_id]:
                version.update(changes)
        try:
            return RulePack.model_validate(data)
        except ValidationError as exc:
            raise RulePackError(_describe(exc, "overrides")) from None


def _span(rule: Rule) -> str:
    return f"{rule.effective_from or 'the start'} to {rule.effective_to or 'open end'}"


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
    # The rule version applied (in force on the start date); None: the version has no such bound. Absent
    # from deadlines recorded before rules had versions.
    effective_from: date | None = None
    effective_to: date | None = None


# -- parsing and choosing -----------------------------------------------------------------------------


def _describe(exc: ValidationError, where: str) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        if len(loc) >= 2 and loc[0] == "rules":
            rest = loc[2:]
            version = ""
            if rest and rest[0].isdigit():  # the index of the version in [[rules.<id>]]
                version = f" (version {int(rest[0]) + 1})" if rest[0] != "0" else ""
                rest = rest[1:]
            field = ".".join(rest)
            lines.append(f"{where}: rule {loc[1]}{version}: {field + ': ' if field else ''}{message}")
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
