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
    "rectification", "rectification_review", "credit_publicity", "credit_listing",
    *(f"credit_{rule}_{tier}" for rule in ("repair_wait", "publicity_max") for tier in ("minor", "general", "serious")),
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

# The bases checked against the official text, each citing its article (on 2026-03-31: the 2021 repair
# rule's versions are in force then).
CHECKED_IDS = {
    "objection_window", "credit_repair_wait_minor", "credit_repair_wait_general", "credit_repair_wait_serious",
    "case_filing", "case_handling", "crime_decision", "crime_transfer",
    "rectification", "re_inspection", "second_re_inspection_opens", "second_re_inspection",  # Order 18 Art. 46-48
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
    for rule_id, versions in pack.rules.items():
        [rule] = {r.id for r in versions}
        assert rule == rule_id
    for rule_id, rule in pack.rules_on(date(2026, 4, 1)).items():
        assert re.search(r"[\u4e00-\u9fff]", rule.title) and re.search(r"[A-Za-z]", rule.title), rule_id
        if not rule.basis_checked:
            assert rule.basis


def test_real_pack_checked_flags_follow_the_design() -> None:
    pack = load_rule_pack(REAL_PACK)
    assert {rid for rid, rule in pack.rules_on(date(2026, 3, 31)).items() if rule.basis_checked} == CHECKED_IDS
    assert {rid for rid, rule in pack.rules_on(date(2026, 4, 1)).items() if rule.basis_checked} == (
        CHECKED_IDS - {f"credit_repair_wait_{tier}" for tier in ("minor", "general", "serious")})


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
    for rule in (r for versions in pack.rules.values() for r in versions):
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
        r"(\[rules\.objection_window\]\n(?:.*\n)*?)length = 15\n", r"\1length = -1\n", text
    )
    assert count == 1
    path = _write(tmp_path, "2025-10-11.toml", broken)
    with pytest.raises(RulePackError) as err:
        load_rule_pack(path)
    assert str(err.value) == f"{path}: rule objection_window: length: Input should be greater than or equal to 0"


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
    data["rules"]["objection_window"]["length"] = -1
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


# -- rule versions and citations ----------------------------------------------------------------------------


def _version(body: str, **dates: str) -> str:
    return body + "".join(f"{key} = {value}\n" for key, value in dates.items())


def _versions_text(*bodies: str) -> str:
    return 'version = "v1"\neffective_from = 2025-10-11\ntitle = "test pack"\n\n' + "".join(
        f"[[rules.objection_window]]\n{body}\n" for body in bodies)


def test_versions_of_one_rule_chosen_by_date(tmp_path: Path) -> None:
    text = _versions_text(
        _version(GOOD_RULE, effective_to="2026-03-31"),
        _version(GOOD_RULE.replace("length = 15", "length = 20"), effective_from="2026-04-01"),
    ) + "[rules.result_notice]\n" + GOOD_RULE  # a plain table beside them stays one version
    pack = load_rule_pack(_write(tmp_path, "pack.toml", text))
    assert [r.length for r in pack.versions("objection_window")] == [15, 20]
    assert pack.rule("objection_window", date(2026, 3, 31)).length == 15
    assert pack.rule("objection_window", date(2026, 4, 1)).length == 20
    assert pack.rule("result_notice").length == 15 and pack.rule("result_notice", date(2030, 1, 1)).length == 15
    assert {k: r.length for k, r in pack.rules_on(date(2026, 4, 1)).items()} == {
        "objection_window": 20, "result_notice": 15}
    with pytest.raises(KeyError, match="has 2 versions"):
        pack.rule("objection_window")
    # Overrides change every version.
    assert {r.reminder_before for r in pack.with_overrides({"objection_window": {"reminder_before": 1}})
            .versions("objection_window")} == {1}


def test_a_gap_between_versions_is_no_rule_in_force(tmp_path: Path) -> None:
    text = _versions_text(_version(GOOD_RULE, effective_to="2026-03-31"),
                          _version(GOOD_RULE, effective_from="2026-05-01"))
    pack = load_rule_pack(_write(tmp_path, "pack.toml", text))
    with pytest.raises(KeyError, match="no version of rule 'objection_window' in force on 2026-04-15"):
        pack.rule("objection_window", date(2026, 4, 15))
    assert "objection_window" not in pack.rules_on(date(2026, 4, 15))


@pytest.mark.parametrize(
    ("bodies", "expected"),
    [
        ((_version(GOOD_RULE), _version(GOOD_RULE, effective_from="2026-04-01")),
         "rule objection_window: effective_from: the version from 2026-04-01 overlaps the version "
         "the start to open end"),
        ((_version(GOOD_RULE, effective_to="2026-04-01"), _version(GOOD_RULE, effective_from="2026-04-01")),
         "overlaps the version the start to 2026-04-01"),
        ((_version(GOOD_RULE, effective_to="2026-03-31"), _version(GOOD_RULE)),
         "the version from the start overlaps"),
        ((_version(GOOD_RULE, effective_from="2026-04-01", effective_to="2026-03-01"),),
         "rule objection_window: effective_to: 2026-03-01 is before effective_from 2026-04-01"),
        ((_version(GOOD_RULE, effective_to="2026-03-31"),
          _version(GOOD_RULE.replace("reminder_before = 3", "reminder_before = 30"), effective_from="2026-04-01")),
         "rule objection_window (version 2): reminder_before: must be less than length (15)"),
        ((_version(GOOD_RULE.replace("length = 15", "length = 0").replace("reminder_before = 3", "reminder_before = 0")
                   .replace('"expire"', '"escalate"')),),
         "rule objection_window: length: 0 is only allowed with on_expiry = expire"),
    ],
)
def test_bad_versions_refused(tmp_path: Path, bodies: tuple[str, ...], expected: str) -> None:
    path = _write(tmp_path, "pack.toml", _versions_text(*bodies))
    with pytest.raises(RulePackError) as err:
        load_rule_pack(path)
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value), str(err.value)


@pytest.mark.parametrize("basis", ["产品质量法", "令第18号", "the opinion, task 10", "Art 15"])
def test_a_checked_basis_must_cite_an_article(tmp_path: Path, basis: str) -> None:
    path = _write(tmp_path, "pack.toml", _pack_text("v1", "2025-10-11", GOOD_RULE.replace("产品质量法 Art. 15", basis)))
    with pytest.raises(RulePackError, match="rule objection_window: basis_checked: a checked basis must cite an "
                                            r"article \(第…条 or Art. N\)"):
        load_rule_pack(path)
    unchecked = GOOD_RULE.replace("产品质量法 Art. 15", basis).replace("basis_checked = true", "basis_checked = false")
    assert load_rule_pack(_write(tmp_path, "ok.toml", _pack_text("v1", "2025-10-11", unchecked)))


@pytest.mark.parametrize("basis", ["产品质量法 第十五条", "《信用修复管理办法》第6条", "产品质量法 Art. 15"])
def test_articles_that_count_as_cited(tmp_path: Path, basis: str) -> None:
    path = _write(tmp_path, "pack.toml", _pack_text("v1", "2025-10-11", GOOD_RULE.replace("产品质量法 Art. 15", basis)))
    assert load_rule_pack(path).rule("objection_window").basis_checked


def test_real_pack_credit_tiers_before_and_after_2026_04_01() -> None:
    pack = load_rule_pack(REAL_PACK)
    before, after = date(2026, 3, 31), date(2026, 4, 1)
    for tier in ("minor", "general", "serious"):
        old = pack.rule(f"credit_repair_wait_{tier}", before)
        assert (old.length, old.unit, old.basis_checked) == (6, Unit.MONTHS, True) and "2021" in old.basis
        assert pack.rule(f"credit_publicity_max_{tier}", before).length == 12
    shortest = {t: pack.rule(f"credit_repair_wait_{t}", after).length for t in ("minor", "general", "serious")}
    longest = {t: pack.rule(f"credit_publicity_max_{t}", after).length for t in ("minor", "general", "serious")}
    assert shortest == {"minor": 0, "general": 3, "serious": 12}
    assert longest == {"minor": 3, "general": 12, "serious": 36}
    for tier in ("minor", "general", "serious"):
        assert "国家发展改革委令第36号" in pack.rule(f"credit_publicity_max_{tier}", after).basis
    assert "第二条" in pack.rule("serious_dishonesty_review").basis
