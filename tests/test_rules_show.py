"""`spotcheck rules show`: the rules in force on a date as a table, JSON or the generated docs/rules.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from activities.rule_packs import RULE_OVERRIDES_ENV, RULES_DIR_ENV, load_rule_packs
from starter.cli import main, rules_markdown

DOC = Path(__file__).resolve().parent.parent / "docs" / "rules.md"


@pytest.fixture(autouse=True)
def _real_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RULES_DIR_ENV, raising=False)
    monkeypatch.delenv(RULE_OVERRIDES_ENV, raising=False)


def _show(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["rules", "show", *args]) == 0
    return capsys.readouterr().out


def test_docs_rules_md_is_generated_from_the_pack() -> None:
    assert DOC.read_text(encoding="utf-8") == rules_markdown(load_rule_packs()), (
        "docs/rules.md is stale: regenerate it with `make rules-doc` "
        "(.venv/bin/spotcheck rules show --markdown > docs/rules.md)")


def test_show_at_a_date_lists_the_versions_in_force(capsys: pytest.CaptureFixture[str]) -> None:
    before = _show(capsys, "--at", "2026-03-31")
    after = _show(capsys, "--at", "2026-04-01")
    assert before.splitlines()[0] == "rule pack zj-2025-10-11, rules in force on 2026-03-31"
    line = {out: next(x for x in out.splitlines() if x.startswith("credit_repair_wait_general "))
            for out in (before, after)}
    assert "6 months" in line[before] and "… – 2026-03-31" in line[before] and "第六条" in line[before]
    assert " yes " in line[before]
    assert "3 months" in line[after] and "2026-04-01 – …" in line[after] and "第36号" in line[after]
    assert " no " in line[after]
    objection = next(x for x in after.splitlines() if x.startswith("objection_window "))
    assert "15 calendar_days" in objection and "always" in objection and "第十五条" in objection


def test_show_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RULE_OVERRIDES_ENV, '{"objection_window": {"length": 20}}')
    data = json.loads(_show(capsys, "--at", "2026-04-01", "--json"))
    assert (data["on"], data["pack_version"]) == ("2026-04-01", "zj-2025-10-11")
    rows = {r["rule"]: r for r in data["rules"]}
    assert rows["objection_window"]["length"] == 20  # what is in force, overrides included
    assert rows["objection_window"]["articles"] == ["第十五条", "第二十一条"]
    serious = rows["credit_publicity_max_serious"]
    assert (serious["length"], serious["unit"], serious["basis_checked"], serious["effective_from"],
            serious["effective_to"]) == (36, "months", False, "2026-04-01", None)
    assert all(not r["basis_checked"] or r["articles"] for r in data["rules"])
    every = json.loads(_show(capsys, "--all", "--json"))
    assert len(every["rules"]) == len(data["rules"]) + 6  # the 2021 versions of the six tier rules


def test_show_refuses_a_bad_date(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["rules", "show", "--at", "2026-02-30"])
    assert "not a date" in capsys.readouterr().err
    assert main(["rules", "show", "--at", "2020-01-01"]) == 1
    assert "no rule pack in force on 2020-01-01" in capsys.readouterr().err


def test_show_defaults_to_today_in_china(capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import datetime

    from activities.calendar import CHINA

    today = datetime.now(CHINA).date()
    first = _show(capsys).splitlines()[0]
    assert first in {f"rule pack zj-2025-10-11, rules in force on {d}" for d in (today, today.fromordinal(today.toordinal() + 1))}
    every = _show(capsys, "--all").splitlines()
    assert every[0] == "rule pack zj-2025-10-11, every rule version"
    assert sum(line.startswith("credit_repair_wait_general ") for line in every) == 2
