"""Decisions as people send them: who may decide what (the role matrix), why a decision is refused, and
how malformed ones are named. Plain unit tests of domain.decisions; no Temporal server needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from domain.decisions import (
    PAYLOADS,
    REASON_REQUIRED,
    ROLE_MATRIX,
    Decision,
    DecisionKind,
    LabReportData,
    LeadOutcomeData,
    RecallDecisionData,
    Role,
    decision_problem,
    first_error,
    parse_decision,
    parse_payload,
    roles_for,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "decisions"
DECISION_FILES = sorted(EXAMPLES.glob("*.json"))
FAILED_ITEMS = [{"item": "输出电压", "standard": "GB 4943.1-2022", "requirement": "5V±5%", "result": "5.6V"}]
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def raw_decision(kind: str, outcome: str, role: str, *, reason: str | None = None,
                 data: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "outcome": outcome, "actor": {"id": "tester", "role": role},
            "request_id": "rq-1", "reason": reason, "data": data or {}, **extra}


def make(kind: str, outcome: str, role: str, **kw: Any) -> Decision:
    decision, error = parse_decision(raw_decision(kind, outcome, role, **kw))
    assert error is None, error
    assert decision is not None
    return decision


def problem(decision: Decision, *awaiting: DecisionKind, **kw: Any) -> str | None:
    return decision_problem(decision, awaiting or (decision.kind,), **kw)


def valid_data(kind: DecisionKind, outcome: str) -> dict[str, Any]:
    if kind in (DecisionKind.LAB_REPORT, DecisionKind.RETEST_REPORT):
        return {"report_no": "R-1", "failed_items": FAILED_ITEMS if outcome == "fail" else []}
    if kind is DecisionKind.RECTIFICATION_EXTENSION and outcome == "granted":
        return {"days": 30}
    if kind is DecisionKind.SUSPENSION_ORDER:  # the 整顿 period is set in the order
        return {"days": 30}
    return {}


# --- the role matrix -------------------------------------------------------------------------------


def test_every_kind_is_in_the_matrix() -> None:
    assert set(ROLE_MATRIX) == set(DecisionKind)


@pytest.mark.parametrize(("kind", "outcome"),
                         [(k, o) for k, outcomes in ROLE_MATRIX.items() for o in outcomes],
                         ids=lambda v: str(v))
def test_every_outcome_has_a_role_who_may_choose_it(kind: DecisionKind, outcome: str) -> None:
    roles = ROLE_MATRIX[kind][outcome]
    assert roles, f"nobody may decide {kind.value}={outcome}"
    assert roles <= roles_for(kind)
    # And a decision by each such role, with a reason and proper data, is valid.
    for role in roles:
        decision = make(kind.value, outcome, role.value, reason="因为", data=valid_data(kind, outcome))
        assert problem(decision) is None, (kind, outcome, role)


def test_every_kind_has_an_outcome() -> None:
    for kind, outcomes in ROLE_MATRIX.items():
        assert outcomes, kind
    assert list(ROLE_MATRIX[DecisionKind.RESULT_DELIVERY]) == ["delivered"]


def test_reason_required_pairs_are_in_the_matrix() -> None:
    for kind, outcome in REASON_REQUIRED:
        assert outcome in ROLE_MATRIX[kind], (kind, outcome)


def test_roles_for() -> None:
    assert roles_for(DecisionKind.LAB_REPORT) == {Role.LAB}
    assert roles_for(DecisionKind.SAMPLING_RECORD) == {Role.SAMPLER}
    assert roles_for(DecisionKind.OBJECTION) == {Role.ENTERPRISE, Role.CASE_OFFICER}
    assert roles_for(DecisionKind.DISPOSAL) == {Role.LAB, Role.CASE_OFFICER}


def test_lab_reports_are_the_labs_alone() -> None:
    for kind in (DecisionKind.LAB_REPORT, DecisionKind.RETEST_REPORT, DecisionKind.SAMPLE_RECEIPT):
        assert roles_for(kind) == {Role.LAB}


# --- decision_problem ------------------------------------------------------------------------------


def test_good_decision_returns_none() -> None:
    decision = make("lab_report", "fail", "lab", data={"report_no": "R-1", "failed_items": FAILED_ITEMS})
    assert problem(decision, DecisionKind.LAB_REPORT, DecisionKind.OBJECTION) is None


def test_not_awaited_lists_what_is_awaited() -> None:
    decision = make("objection", "filed", "enterprise", reason="异议")
    message = problem(decision, DecisionKind.SAMPLE_RECEIPT, DecisionKind.LAB_REPORT)
    assert message == "not awaited: the sample waits for lab_report, sample_receipt, not objection"


def test_not_awaited_when_nothing_is_awaited() -> None:
    decision = make("disposal", "disposed", "lab")
    message = decision_problem(decision, [])
    assert message == "not awaited: the sample waits for no decision, not disposal"


def test_expired_kind_gives_its_closed_reason() -> None:
    decision = make("objection", "filed", "enterprise", reason="异议")
    closed = {DecisionKind.OBJECTION: "the objection window closed on 2025-11-20"}
    message = decision_problem(decision, [DecisionKind.DISPOSAL], closed_reason=closed)
    assert message == "the objection window closed on 2025-11-20"


def test_closed_reason_of_another_kind_is_not_used() -> None:
    decision = make("objection", "filed", "enterprise", reason="异议")
    closed = {DecisionKind.LAB_REPORT: "the report is in"}
    message = decision_problem(decision, [DecisionKind.DISPOSAL], closed_reason=closed)
    assert message is not None and message.startswith("not awaited:")


def test_closed_reason_does_not_block_an_awaited_kind() -> None:
    decision = make("objection", "filed", "enterprise", reason="异议")
    closed = {DecisionKind.OBJECTION: "closed"}
    assert decision_problem(decision, [DecisionKind.OBJECTION], closed_reason=closed) is None


def test_unknown_outcome_lists_the_allowed_ones() -> None:
    decision = make("lab_report", "inconclusive", "lab", data={"report_no": "R-1"})
    message = problem(decision)
    assert message == "unknown outcome 'inconclusive' for lab_report; allowed: pass, fail"


@pytest.mark.parametrize(("kind", "outcome", "role", "allowed"), [
    ("lab_report", "pass", "enterprise", "lab"),
    ("sampling_record", "sealed", "lab", "sampler"),
    ("result_delivery", "delivered", "lab", "case_officer"),
    ("objection_review", "accepted", "enterprise", "case_officer"),
    ("disposal", "disposed", "sampler", "case_officer, lab"),
    ("objection", "filed", "lab", "case_officer, enterprise"),
])
def test_wrong_role_lists_the_allowed_roles(kind: str, outcome: str, role: str, allowed: str) -> None:
    decision = make(kind, outcome, role, reason="因为", data=valid_data(DecisionKind(kind), outcome))
    message = problem(decision)
    assert message == f"role {role} may not decide {kind}={outcome}; allowed: {allowed}"


@pytest.mark.parametrize(("kind", "outcome"), sorted(REASON_REQUIRED), ids=lambda v: str(v))
@pytest.mark.parametrize("reason", [None, "", "   "], ids=["none", "empty", "blank"])
def test_reason_required_for_refusals_and_rejections(kind: DecisionKind, outcome: str, reason: str | None) -> None:
    role = sorted(ROLE_MATRIX[kind][outcome])[0]
    decision = make(kind.value, outcome, role.value, reason=reason)
    assert problem(decision) == f"reason: required for {kind.value}={outcome}"
    with_reason = make(kind.value, outcome, role.value, reason="理由")
    assert problem(with_reason) is None


def test_refusal_and_rejections_need_a_reason() -> None:
    for pair in [("sampling_record", "refused"), ("sample_receipt", "rejected"), ("objection_review", "rejected")]:
        assert (DecisionKind(pair[0]), pair[1]) in REASON_REQUIRED


def test_outcomes_without_reason_rule_pass_without_reason() -> None:
    assert problem(make("sampling_record", "sealed", "sampler")) is None
    assert problem(make("sample_receipt", "accepted", "lab")) is None
    assert problem(make("objection", "waived", "enterprise")) is None


@pytest.mark.parametrize("kind", ["lab_report", "retest_report"])
def test_fail_without_failed_items(kind: str) -> None:
    decision = make(kind, "fail", "lab", data={"report_no": "R-1"})
    message = problem(decision)
    assert message is not None
    assert message.startswith("data.failed_items: a fail must name at least one failed item")


@pytest.mark.parametrize("kind", ["lab_report", "retest_report"])
def test_pass_with_failed_items(kind: str) -> None:
    decision = make(kind, "pass", "lab", data={"report_no": "R-1", "failed_items": FAILED_ITEMS})
    assert problem(decision) == "data.failed_items: a pass cannot list failed items"


@pytest.mark.parametrize(("kind", "outcome", "role", "data", "field"), [
    ("lab_report", "pass", "lab", {}, "data.report_no: Field required"),
    ("lab_report", "fail", "lab", {"report_no": "R-1", "failed_items": [{"item": "电压"}]},
     "data.failed_items.0.standard: Field required"),
    ("lab_report", "fail", "lab",
     {"report_no": "R-1", "failed_items": [{**FAILED_ITEMS[0], "severity": "fatal"}]},
     "data.failed_items.0.severity:"),
    ("retest_report", "pass", "lab", {"report_no": ""}, "data.report_no:"),
    ("sample_receipt", "accepted", "lab", {"seal_intact": "maybe"}, "data.seal_intact:"),
    ("sampling_record", "sealed", "sampler", {"recrod_no": "CY-1"}, "data.recrod_no: Extra inputs"),
    ("result_delivery", "delivered", "case_officer", {"delivered_on": "last tuesday"}, "data.delivered_on:"),
    ("objection", "waived", "enterprise", {"contested_items": "输出电压"}, "data.contested_items:"),
])
def test_malformed_data_names_the_field_with_data_prefix(
    kind: str, outcome: str, role: str, data: dict[str, Any], field: str
) -> None:
    decision = make(kind, outcome, role, data=data)
    message = problem(decision)
    assert message is not None
    assert message.startswith(f"malformed data for {kind}: ")
    assert field in message


def test_purchased_sample_cannot_be_returned() -> None:
    decision = make("disposal", "returned", "lab")
    message = problem(decision, purchased=True)
    assert message is not None
    assert "purchased" in message and "disposed" in message
    assert problem(decision, purchased=False) is None
    assert problem(make("disposal", "disposed", "lab"), purchased=True) is None


def test_checks_run_in_order_awaited_first() -> None:
    # not awaited wins over a wrong role and a missing reason
    decision = make("objection_review", "rejected", "lab")
    assert problem(decision, DecisionKind.LAB_REPORT).startswith("not awaited:")  # type: ignore[union-attr]
    # the role is checked before the reason
    assert problem(decision).startswith("role lab may not decide")  # type: ignore[union-attr]


def test_parse_payload() -> None:
    decision = make("lab_report", "fail", "lab", data={"report_no": "R-1", "failed_items": FAILED_ITEMS})
    payload = parse_payload(decision)
    assert isinstance(payload, LabReportData)
    assert payload.failed_items[0].standard == "GB 4943.1-2022"
    assert parse_payload(make("disposal", "disposed", "lab")) is None
    assert DecisionKind.DISPOSAL not in PAYLOADS


# --- parse_decision --------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "lab_report pass", 42, ["lab_report"]], ids=repr)
def test_parse_non_dict(raw: Any) -> None:
    decision, error = parse_decision(raw)
    assert decision is None
    assert error is not None and error.startswith("malformed decision: ")


def test_parse_passes_a_model_through() -> None:
    decision = make("disposal", "disposed", "lab")
    assert parse_decision(decision) == (decision, None)


def test_parse_missing_actor() -> None:
    raw = raw_decision("disposal", "disposed", "lab")
    del raw["actor"]
    decision, error = parse_decision(raw)
    assert decision is None
    assert error == "malformed decision: actor: Field required"


def test_parse_unknown_role() -> None:
    decision, error = parse_decision(raw_decision("disposal", "disposed", "janitor"))
    assert decision is None
    assert error is not None and "actor.role:" in error


def test_parse_unknown_kind() -> None:
    decision, error = parse_decision(raw_decision("coffee_break", "taken", "lab"))
    assert decision is None
    assert error is not None and "kind:" in error


@pytest.mark.parametrize("field", ["request_id", "outcome", "kind"])
def test_parse_missing_required_field(field: str) -> None:
    raw = raw_decision("disposal", "disposed", "lab")
    del raw[field]
    decision, error = parse_decision(raw)
    assert decision is None
    assert error == f"malformed decision: {field}: Field required"


def test_parse_empty_outcome_and_long_request_id() -> None:
    _, error = parse_decision(raw_decision("disposal", "", "lab"))
    assert error is not None and "outcome:" in error
    _, error = parse_decision({**raw_decision("disposal", "disposed", "lab"), "request_id": "r" * 129})
    assert error is not None and "request_id:" in error


def test_parse_unknown_top_level_field() -> None:
    _, error = parse_decision({**raw_decision("disposal", "disposed", "lab"), "reasn": "typo"})
    assert error is not None and "reasn: Extra inputs are not permitted" in error


@pytest.mark.parametrize("sha", [
    SHA.upper(),
    SHA[:-1],
    SHA + "0",
    "g" * 64,
    "",
], ids=["uppercase", "63-chars", "65-chars", "non-hex", "empty"])
def test_parse_bad_evidence_sha256(sha: str) -> None:
    raw = raw_decision("sampling_record", "sealed", "sampler", evidence=[{"name": "unboxing.mp4", "sha256": sha}])
    decision, error = parse_decision(raw)
    assert decision is None
    assert error is not None and "evidence.0.sha256:" in error


def test_parse_good_evidence() -> None:
    raw = raw_decision("sampling_record", "sealed", "sampler", evidence=[{"name": "unboxing.mp4", "sha256": SHA}])
    decision, error = parse_decision(raw)
    assert error is None and decision is not None
    assert decision.evidence[0].sha256 == SHA


def test_parse_actor_region_must_be_six_digits() -> None:
    raw = raw_decision("disposal", "disposed", "lab")
    raw["actor"]["region"] = "3301"
    _, error = parse_decision(raw)
    assert error is not None and "actor.region:" in error


def test_parse_reports_at_most_three_problems() -> None:
    _, error = parse_decision({"evidence": "none", "data": [], "x": 1, "y": 2})
    assert error is not None
    assert error.count(";") <= 2


# --- the examples ----------------------------------------------------------------------------------


def test_there_is_an_example_for_most_kinds() -> None:
    kinds = {json.loads(p.read_text(encoding="utf-8"))["kind"] for p in DECISION_FILES}
    assert len(DECISION_FILES) >= 8
    assert kinds <= {k.value for k in DecisionKind}


@pytest.mark.parametrize("path", DECISION_FILES, ids=lambda p: p.stem)
def test_example_decision_parses_and_is_valid_when_awaited(path: Path) -> None:
    decision, error = parse_decision(json.loads(path.read_text(encoding="utf-8")))
    assert error is None, error
    assert decision is not None
    assert decision_problem(decision, [decision.kind], purchased=False) is None
    # ...and it is refused when something else is awaited
    other = next(k for k in DecisionKind if k is not decision.kind)
    refused = decision_problem(decision, [other], purchased=False)
    assert refused is not None and refused.startswith("not awaited:")


def test_a_broken_seal_cannot_be_accepted() -> None:
    d = Decision.model_validate(
        {"kind": "sample_receipt", "outcome": "accepted", "actor": {"id": "l", "role": "lab"},
         "request_id": "r1", "data": {"seal_intact": False}}
    )
    problem = decision_problem(d, [DecisionKind.SAMPLE_RECEIPT])
    assert problem is not None and problem.startswith("data.seal_intact:")


# --- bounds: every accepted decision can be stored (domain/bounds.py) -------------------------------------


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def parse_error(**changes: Any) -> str:
    decision, error = parse_decision({**raw_decision("disposal", "disposed", "lab"), **changes})
    assert decision is None and error is not None
    return error


@pytest.mark.parametrize(("data", "words"), [
    (nested(9), "data: nested deeper than 8 levels at data.a.a.a.a.a.a.a.a"),
    ({"x": "\x00"}, "data: must not contain NUL characters at data.x"),
    ({"x": ["\ud800"]}, "data: must not contain lone surrogates (U+D800–U+DFFF) at data.x.0"),
    ({"k" * 65: 1}, "data: key longer than 64 characters"),
    ({"x": {"a\x00": 1}}, "data: key must not contain NUL characters at data.x"),
    ({"x": list(range(201))}, "data: list longer than 200 items at data.x"),
    ({"x": "s" * 2001}, "data: string longer than 2000 characters at data.x"),
    ({"x": ["s" * 2000] * 40}, "data: larger than 64 KiB as JSON"),
    ({"x": 10**12 + 1}, "data: number beyond ±1e+12 at data.x"),
    ({"x": -(10**400)}, "data: number beyond ±1e+12 at data.x"),
    ({"x": float("nan")}, "data: number not finite at data.x"),
    ({"x": float("-inf")}, "data: number not finite at data.x"),
    ({"x": {1: 2}}, "data: key not a string at data.x"),
    ({"x": {1, 2}}, "data: not a JSON value (set) at data.x"),
], ids=["depth", "nul", "surrogate", "long-key", "nul-key", "long-list", "long-string", "size", "big-int",
        "huge-int", "nan", "inf", "int-key", "set"])
def test_data_is_bounded(data: dict[str, Any], words: str) -> None:
    assert parse_error(data=data) == f"malformed decision: {words}"


def test_data_within_bounds_is_taken() -> None:
    data = {"a": nested(7), "list": list(range(200)), "n": 10**12, "f": -1e12, "s": "字" * 2000, "k" * 64: None}
    decision, error = parse_decision(raw_decision("disposal", "disposed", "lab", data=data))
    assert error is None and decision is not None
    json.dumps(decision.model_dump(mode="json"), ensure_ascii=False).encode()


def test_a_huge_shared_structure_is_refused_quickly() -> None:
    level: Any = "x"
    for _ in range(7):
        level = [level] * 200  # 200**7 leaves, all the same object
    assert parse_error(data={"x": level}) == "malformed decision: data: larger than 64 KiB as JSON"


@pytest.mark.parametrize(("changes", "words"), [
    ({"reason": "因为\x00"}, "reason: must not contain NUL characters"),
    ({"reason": "r" * 2001}, "reason: String should have at most 2000 characters"),
    ({"outcome": "o" * 65}, "outcome: String should have at most 64 characters"),
    ({"request_id": " "}, "request_id: String should have at least 1 character"),
    ({"actor": {"id": "a", "role": "lab", "name": "n" * 201}}, "actor.name: String should have at most 200"),
    ({"actor": {"id": "a", "role": "lab", "organisation": "\x00"}}, "actor.organisation: must not contain NUL"),
    ({"actor": {"id": "\ud800", "role": "lab"}}, "actor.id: Input should be a valid string"),
    ({"evidence": [{"name": "a.png", "sha256": SHA}] * 51}, "evidence: List should have at most 50 items"),
    ({"evidence": [{"name": "a.png", "sha256": SHA, "uri": "u" * 2001}]}, "evidence.0.uri: String should have"),
], ids=["nul-reason", "long-reason", "long-outcome", "blank-request-id", "long-actor-name", "nul-organisation",
        "surrogate-actor-id", "too-much-evidence", "long-uri"])
def test_decision_text_and_lists_are_bounded(changes: dict[str, Any], words: str) -> None:
    assert words in parse_error(**changes)


def test_text_is_stripped() -> None:
    decision = make("disposal", " disposed ", "lab", reason="  理由 ")
    assert decision.outcome == "disposed" and decision.reason == "理由"


@pytest.mark.parametrize(("kind", "outcome", "role", "data", "words"), [
    ("case_outcome", "penalty", "enforcement", {"fine_amount": "10000000000.01"},
     "data.fine_amount: Input should be less than or equal to 10000000000"),
    ("case_outcome", "penalty", "enforcement", {"fine_amount": "1.005"},
     "data.fine_amount: Decimal input should have no more than 2 decimal places"),
    ("case_outcome", "penalty", "enforcement", {"fine_amount": "-1"}, "data.fine_amount: Input should be greater"),
    ("result_delivery", "delivered", "case_officer", {"delivered_on": "9999-12-31"},
     "data.delivered_on: must lie between 2000-01-01 and 2100-12-31"),
    ("certificate_action", "suspended", "certification_body", {"effective_on": "1999-01-01"},
     "data.effective_on: must lie between"),
    ("sampling_record", "sealed", "sampler", {"sealed_at": "2150-01-01T00:00:00Z"}, "data.sealed_at: must lie"),
    ("lab_report", "fail", "lab", {"report_no": "R", "failed_items": FAILED_ITEMS * 101},
     "data.failed_items: List should have at most 100 items"),
    ("sampling_record", "sealed", "sampler",
     {"leads": [{"type": "illegal_ad", "description": "广告"}] * 21}, "data.leads: List should have at most 20"),
    ("objection", "filed", "enterprise", {"contested_items": ["电压"] * 101}, "data.contested_items: List should"),
], ids=["fine-too-large", "fine-places", "fine-negative", "delivered-9999", "effective-1999", "sealed-2150",
        "failed-items", "leads", "contested"])
def test_payloads_are_bounded(kind: str, outcome: str, role: str, data: dict[str, Any], words: str) -> None:
    message = problem(make(kind, outcome, role, reason="理由", data=data))
    assert message is not None and message.startswith(f"malformed data for {kind}: ")
    assert words in message, message


@pytest.mark.parametrize(("model", "data", "words"), [
    (RecallDecisionData, {"units": 10**12 + 1}, "units: Input should be less than or equal to 1000000000000"),
    (LabReportData, {"report_no": "R", "failed_items": [{**FAILED_ITEMS[0], "result": "\x00"}]},
     "failed_items.0.result: must not contain NUL characters"),
    (LeadOutcomeData, {"measures": "m" * 2001}, "measures: String should have at most 2000 characters"),
], ids=["units", "nul-result", "long-measures"])
def test_payload_models_are_bounded_on_their_own(model: type[BaseModel], data: dict[str, Any], words: str) -> None:
    """A payload that reaches its model without the `data` bounds (a branch validating its own) keeps them too."""
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    assert words in first_error(info.value)


def test_money_and_dates_within_bounds_are_taken() -> None:
    d = make("case_outcome", "penalty", "enforcement", data={"fine_amount": "10000000000.00"})
    assert problem(d) is None
    d = make("result_delivery", "delivered", "case_officer", data={"delivered_on": "2100-12-31"})
    assert problem(d) is None


def test_errors_never_echo_the_input() -> None:
    secret = "13800138000-" * 1000
    for changes in ({"reason": secret}, {secret: 1}, {"data": {"x": secret}}, {"outcome": secret},
                    {"actor": {"id": secret, "role": "lab"}}, {"evidence": [{"name": secret, "sha256": SHA}]}):
        error = parse_error(**changes)
        assert "13800138000-13800138000" not in error, error
        assert len(error) <= 300


def test_first_error_is_bounded_and_printable() -> None:
    _, error = parse_decision({"k\n" * 100: 1, "x" * 300: 2, "\x1b[31m": 3, "y": 4})
    assert error is not None and len(error) <= 300 and error.isprintable()
    assert error.count(";") <= 2


def test_an_unknown_outcome_is_quoted_short() -> None:
    message = problem(make("lab_report", "z" * 64, "lab", data={"report_no": "R"}))
    assert message is not None
    assert message.startswith("unknown outcome 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz…' for lab_report")


def test_a_re_inspection_sample_is_provided_free_by_the_party() -> None:
    """Order 18 Art. 49: a 复查 on a sample the party did not provide free is refused, naming the article."""
    decision = make("re_inspection", "pass", "case_officer", data={"sample_provided_free": False})
    assert problem(decision) == ("data.sample_provided_free: the 复查 sample is provided free by the party "
                                 "(产品质量监督抽查管理暂行办法 第四十九条)")
    assert problem(make("re_inspection", "pass", "case_officer")) is None
    no_period = problem(make("suspension_order", "ordered", "enforcement"))
    assert no_period is not None and "data.days: Field required" in no_period

