"""The rule pack: the real file loads and holds every rule the workflows use; bad packs are refused with
a message naming file, rule and field; packs are chosen by effective date; rules stay configurable."""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path

import pytest

from activities.rule_packs import (
    RULE_OVERRIDES_ENV,
    RULES_DIR_ENV,
    load_rule_pack,
    load_rule_packs,
    rule_pack_for,
)
from domain.rules import (
    ExpiryAction,
    RulePack,
    RulePackError,
    Scope,
    Unit,
    ordered_packs,
    pack_in_force,
    parse_rule_pack,
)

REAL_PACK = Path(__file__).resolve().parent.parent / "rules" / "2025-10-11.toml"

REQUIRED_IDS = {
    # core lifecycle
    "sampling_record", "sample_transit", "sample_receipt", "lab_testing", "result_notice",
    "producer_confirmation", "objection_window", "objection_acceptance", "retest", "sample_retention",
    "disposal_decision",
    # consequences
    "rectification", "rectification_review", "credit_publicity", "credit_listing", "credit_repair_wait",
    "credit_repair_acceptance", "credit_repair_decision", "credit_repair_execution", "case_filing",
    "case_handling", "crime_decision", "crime_transfer", "recall_incident_report", "recall_plan",
    "recall_progress", "recall_summary", "certificate_action", "platform_delisting", "delist_confirmation",
    "merge_window", "clean_record",
    # result handling per Order 18 chapter 6
    "re_inspection", "provincial_announcement", "second_re_inspection_opens", "second_re_inspection",
    "suspension_order", "suspension_period", "post_suspension_re_inspection",
    # post-handling local policy
    "follow_up_sampling", "serious_dishonesty_review", "lead_outcome", "failed_sample_disposal",
}  # fmt: skip

# The bases DESIGN.md section 3 marks as checked against the official text.
CHECKED_IDS = {
    "result_notice", "objection_window", "sample_retention", "rectification",
    "credit_repair_wait", "credit_repair_acceptance", "credit_repair_execution", "case_filing",
    "case_handling", "crime_decision", "crime_transfer", "recall_incident_report",
    "re_inspection", "second_re_inspection_opens", "second_re_inspection",  # Order 18 Art. 47-48, read
}  # fmt: skip


def _pack_text(version: str, effective: str, rule_body: str, rule_id: str = "objection_window") -> str:
    return (
        f'version = "{version}"\neffective_from = {effective}\ntitle = "test pack"\n\n'
        f"[rules.{rule_id}]\n{rule_body}"
    )


GOOD_RULE = """title = "异议期 objection window"
length = 15
unit = "calendar_days"
trigger = "result received"
on_expiry = "expire"
reminder_before = 3
basis = "产品质量法 Art. 15"
basis_checked = true
scope = "national"
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the real pack --------------------------------------------------------------------------------------


def test_real_pack_loads_with_every_required_rule() -> None:
    pack = load_rule_pack(REAL_PACK)
    assert pack.version == "zj-2025-10-11"
    assert pack.effective_from == date(2025, 10, 11)
    assert set(pack.rules) == REQUIRED_IDS
    for rule_id, rule in pack.rules.items():
        assert rule.id == rule_id
        assert re.search(r"[\u4e00-\u9fff]", rule.title) and re.search(r"[A-Za-z]", rule.title), rule_id
        if not rule.basis_checked:
            assert rule.basis


def test_real_pack_checked_flags_follow_the_design() -> None:
    pack = load_rule_pack(REAL_PACK)
    assert {rid for rid, rule in pack.rules.items() if rule.basis_checked} == CHECKED_IDS


def test_real_pack_key_values() -> None:
    pack = load_rule_pack(REAL_PACK)
    window = pack.rule("objection_window")
    assert (window.length, window.unit, window.on_expiry) == (15, Unit.CALENDAR_DAYS, ExpiryAction.EXPIRE)
    assert "第十五条" in window.basis and "第二十一条" in window.basis

    # Order 18 ch. 6: 60 days to correct (Art. 46), no extension; 复查 within 75 days (Art. 47); the second
    # 复查 no earlier than 60 and no later than 90 days after the 公告 (Art. 48).
    rect = pack.rule("rectification")
    assert (rect.length, rect.unit, rect.on_expiry) == (60, Unit.CALENDAR_DAYS, ExpiryAction.EXPIRE)
    assert rect.extension_length is None and "第四十六条" in rect.basis
    assert (pack.rule("re_inspection").length, pack.rule("re_inspection").unit) == (75, Unit.CALENDAR_DAYS)
    assert "第四十七条" in pack.rule("re_inspection").basis and "第四十九条" in pack.rule("re_inspection").basis
    opens, closes = pack.rule("second_re_inspection_opens"), pack.rule("second_re_inspection")
    assert (opens.length, closes.length) == (60, 90) and "第四十八条" in opens.basis and "第四十八条" in closes.basis
    assert not opens.roll_to_working_day and not closes.roll_to_working_day

    assert pack.rule("sample_receipt").default_outcome == "accepted"
    assert pack.rule("producer_confirmation").default_outcome == "confirmed"
    assert pack.rule("producer_confirmation").on_expiry == ExpiryAction.DEFAULT
    assert (pack.rule("lab_testing").length, pack.rule("lab_testing").scope) == (20, Scope.PLAN)
    assert (pack.rule("crime_transfer").length, pack.rule("crime_transfer").unit) == (24, Unit.HOURS)
    assert (pack.rule("credit_listing").length, pack.rule("credit_listing").unit) == (12, Unit.MONTHS)
    assert (pack.rule("clean_record").length, pack.rule("clean_record").unit) == (36, Unit.MONTHS)
    assert pack.rule("objection_acceptance").scope == Scope.LOCAL
    assert pack.rule("case_filing").extension_length == 15
    assert pack.rule("case_handling").extension_length == 30
    # Only "take the default" rules carry a default outcome.
    for rule in pack.rules.values():
        assert (rule.default_outcome is not None) == (rule.on_expiry == ExpiryAction.DEFAULT)


def test_default_directory_holds_the_real_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RULES_DIR_ENV, raising=False)
    monkeypatch.delenv(RULE_OVERRIDES_ENV, raising=False)
    assert [p.version for p in load_rule_packs()] == ["zj-2025-10-11"]
    assert rule_pack_for(date(2026, 1, 1)).version == "zj-2025-10-11"


def test_unknown_rule_lists_known_ids() -> None:
    pack = load_rule_pack(REAL_PACK)
    with pytest.raises(KeyError, match="objection_window"):
        pack.rule("objection_windw")


# -- bad packs ------------------------------------------------------------------------------------------


def test_malformed_real_pack_names_file_rule_and_field(tmp_path: Path) -> None:
    text = REAL_PACK.read_text(encoding="utf-8")
    broken, count = re.subn(
        r"(\[rules\.objection_window\]\n(?:.*\n)*?)length = 15\n", r"\1length = 0\n", text
    )
    assert count == 1
    path = _write(tmp_path, "2025-10-11.toml", broken)
    with pytest.raises(RulePackError) as err:
        load_rule_pack(path)
    assert str(err.value) == f"{path}: rule objection_window: length: Input should be greater than 0"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GOOD_RULE + "lenght = 5\n", "rule objection_window: lenght: unknown field"),
        (GOOD_RULE.replace('"calendar_days"', '"weeks"'), "rule objection_window: unit: Input should be"),
        (GOOD_RULE.replace('"expire"', '"default"'), "rule objection_window: default_outcome: required when"),
        (GOOD_RULE + 'default_outcome = "x"\n', "rule objection_window: default_outcome: only allowed when"),
        (
            GOOD_RULE.replace("reminder_before = 3", "reminder_before = 15"),
            "reminder_before: must be less than",
        ),
        (GOOD_RULE + "extension_request_before = 5\n", "extension_request_before: needs extension_length"),
        (
            GOOD_RULE.replace("basis_checked = true\n", ""),
            "rule objection_window: basis_checked: Field required",
        ),
        (GOOD_RULE + 'id = "other"\n', "rule objection_window: id: must equal the table key"),
    ],
)
def test_bad_rule_refused(tmp_path: Path, body: str, expected: str) -> None:
    path = _write(tmp_path, "pack.toml", _pack_text("v1", "2025-10-11", body))
    with pytest.raises(RulePackError) as err:
        load_rule_pack(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_unknown_top_level_field_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "pack.toml", 'author = "me"\n' + _pack_text("v1", "2025-10-11", GOOD_RULE))
    with pytest.raises(RulePackError, match=re.escape(f"{path}: author: unknown field")):
        load_rule_pack(path)


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "pack.toml", _pack_text("v1", "2025-10-11", GOOD_RULE + "length = = 3\n"))
    with pytest.raises(RulePackError) as err:
        load_rule_pack(path)
    assert str(err.value).startswith(f"{path}: TOML syntax error")


def test_file_name_must_match_effective_date(tmp_path: Path) -> None:
    path = _write(tmp_path, "2026-01-01.toml", _pack_text("v1", "2025-10-11", GOOD_RULE))
    with pytest.raises(RulePackError, match="effective_from: 2025-10-11 does not match the file name"):
        load_rule_pack(path)


def test_duplicate_effective_date_refused(tmp_path: Path) -> None:
    _write(tmp_path, "a.toml", _pack_text("v1", "2025-10-11", GOOD_RULE))
    _write(tmp_path, "b.toml", _pack_text("v2", "2025-10-11", GOOD_RULE))
    with pytest.raises(RulePackError) as err:
        load_rule_packs(tmp_path)
    assert "b.toml: effective_from: 2025-10-11" in str(err.value) and "a.toml" in str(err.value)


def test_pure_parsing_and_ordering_need_no_files() -> None:
    data = tomllib.loads(_pack_text("v1", "2025-10-11", GOOD_RULE))
    v1 = parse_rule_pack(data, "memory")
    v2 = parse_rule_pack({**data, "version": "v2", "effective_from": date(2026, 7, 1)}, "memory")
    assert ordered_packs([("b", v2), ("a", v1)]) == [v1, v2]
    assert pack_in_force([v1, v2], date(2026, 6, 30)) == v1
    with pytest.raises(RulePackError, match="^b: version: v1 is also the version of a$"):
        ordered_packs([("a", v1), ("b", v1.model_copy(update={"effective_from": date(2026, 1, 1)}))])
    data["rules"]["objection_window"]["length"] = 0
    with pytest.raises(RulePackError, match="^memory: rule objection_window: length: "):
        parse_rule_pack(data, "memory")


def test_empty_directory_refused(tmp_path: Path) -> None:
    with pytest.raises(RulePackError, match="no rule packs"):
        load_rule_packs(tmp_path)


# -- selection by date ----------------------------------------------------------------------------------


def test_pack_in_force_by_date(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RULE_OVERRIDES_ENV, raising=False)
    _write(tmp_path, "2026-07-01.toml", _pack_text("v2", "2026-07-01", GOOD_RULE.replace("15", "20", 1)))
    _write(tmp_path, "2025-10-11.toml", _pack_text("v1", "2025-10-11", GOOD_RULE))
    assert [p.version for p in load_rule_packs(tmp_path)] == ["v1", "v2"]
    assert rule_pack_for(date(2025, 10, 11), tmp_path).version == "v1"
    assert rule_pack_for(date(2026, 6, 30), tmp_path).rule("objection_window").length == 15
    assert rule_pack_for(date(2026, 7, 1), tmp_path).rule("objection_window").length == 20
    with pytest.raises(RulePackError, match="no rule pack in force on 2025-10-10"):
        rule_pack_for(date(2025, 10, 10), tmp_path)
    # The directory can also come from the environment.
    monkeypatch.setenv(RULES_DIR_ENV, str(tmp_path))
    assert rule_pack_for(date(2027, 1, 1)).version == "v2"


# -- overrides ------------------------------------------------------------------------------------------


def test_with_overrides_returns_a_validated_copy() -> None:
    pack = load_rule_pack(REAL_PACK)
    changed = pack.with_overrides(
        {"objection_window": {"length": 20}, "lab_testing": {"unit": "calendar_days"}}
    )
    assert isinstance(changed, RulePack)
    assert changed.rule("objection_window").length == 20
    assert changed.rule("lab_testing").unit == Unit.CALENDAR_DAYS
    assert pack.rule("objection_window").length == 15  # the original is untouched
    assert changed.rule("result_notice") == pack.rule("result_notice")


def test_bad_overrides_refused() -> None:
    pack = load_rule_pack(REAL_PACK)
    with pytest.raises(
        RulePackError, match="overrides: rule objection_window: length: Input should be greater"
    ):
        pack.with_overrides({"objection_window": {"length": -1}})
    with pytest.raises(RulePackError, match="overrides: rule objection_window: lenght: unknown field"):
        pack.with_overrides({"objection_window": {"lenght": 20}})
    with pytest.raises(RulePackError, match="no rule 'nope'.*known: .*objection_window"):
        pack.with_overrides({"nope": {"length": 1}})


def test_env_overrides_applied_by_rule_pack_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RULES_DIR_ENV, raising=False)
    monkeypatch.setenv(RULE_OVERRIDES_ENV, '{"objection_window": {"length": 20}}')
    assert rule_pack_for(date(2026, 1, 1)).rule("objection_window").length == 20
    monkeypatch.setenv(RULE_OVERRIDES_ENV, "{not json")
    with pytest.raises(RulePackError, match=RULE_OVERRIDES_ENV):
        rule_pack_for(date(2026, 1, 1))
