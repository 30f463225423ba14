"""Reading the rule packs: the TOML files in `rules/` (or `SPOTCHECK_RULES_DIR`) and the overrides in
`SPOTCHECK_RULE_OVERRIDES`. The models and the pure choices (parse, order, pick the pack in force, apply
overrides) are in `domain/rules.py`; this module is the part that touches files and the environment, so only
activities and the starter use it.

`RulePackError` and `pack_in_force` are re-exported: an activity that picks packs itself gets everything it
needs about packs from here.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

from domain.rules import RulePack, RulePackError, ordered_packs, pack_in_force, parse_rule_pack

__all__ = [
    "RULES_DIR_ENV",
    "RULE_OVERRIDES_ENV",
    "RulePackError",
    "load_rule_pack",
    "load_rule_packs",
    "overrides_from_env",
    "pack_in_force",
    "rule_pack_for",
    "rules_dir",
]

RULES_DIR_ENV = "SPOTCHECK_RULES_DIR"
RULE_OVERRIDES_ENV = "SPOTCHECK_RULE_OVERRIDES"
_DATE_STEM = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def load_rule_pack(path: Path) -> RulePack:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RulePackError(f"{path}: TOML syntax error: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulePackError(f"{path}: cannot read: {exc}") from None
    pack = parse_rule_pack(data, str(path))
    stem = Path(path).stem
    # The file name is the effective date: a copied pack whose date was not updated is caught here.
    if _DATE_STEM.match(stem) and stem != pack.effective_from.isoformat():
        raise RulePackError(f"{path}: effective_from: {pack.effective_from} does not match the file name")
    return pack


_SHIPPED_RULES = Path(__file__).resolve().parent.parent / "rules"  # resolved once: every deadline asks


def rules_dir(directory: Path | None = None) -> Path:
    if directory is not None:
        return Path(directory)
    if os.environ.get(RULES_DIR_ENV):
        return Path(os.environ[RULES_DIR_ENV])
    return _SHIPPED_RULES


def load_rule_packs(directory: Path | None = None) -> list[RulePack]:
    """Every pack in the directory, oldest first; two packs of the same date or version are refused."""
    folder = rules_dir(directory)
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise RulePackError(f"{folder}: no rule packs (*.toml)")
    return ordered_packs((str(path), load_rule_pack(path)) for path in files)


def overrides_from_env() -> dict[str, dict[str, Any]]:
    raw = os.environ.get(RULE_OVERRIDES_ENV, "").strip()
    if not raw:
        return {}
    try:
        overrides = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RulePackError(f"{RULE_OVERRIDES_ENV}: not JSON: {exc}") from None
    if not isinstance(overrides, dict):
        raise RulePackError(f'{RULE_OVERRIDES_ENV}: expected {{"rule_id": {{"field": value}}}}')
    return overrides


def rule_pack_for(on: date, directory: Path | None = None) -> RulePack:
    """The pack in force on `on`, with `SPOTCHECK_RULE_OVERRIDES` applied."""
    return pack_in_force(load_rule_packs(directory), on).with_overrides(overrides_from_env())
