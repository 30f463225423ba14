"""The decision desk without a Temporal server: what it waits for, and how it answers each arriving
decision (accepted into the inbox, rejected naming the reason, or a repeat answered with its first receipt)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from domain.decisions import Decision, DecisionKind
from domain.rules import Deadline
from tests import factories as f
from workflows.desk import DecisionDesk, Intake

NOW = datetime(2025, 11, 3, 2, 0, tzinfo=UTC)
LAB_REPORT = DecisionKind.LAB_REPORT
RECEIPT = DecisionKind.SAMPLE_RECEIPT
OBJECTION = DecisionKind.OBJECTION


def deadline(rule_id: str = "lab_testing", due_date: date = date(2025, 11, 20), **overrides: Any) -> Deadline:
    fields: dict[str, Any] = {
        "rule_id": rule_id,
        "title": f"title of {rule_id}",
        "start": NOW,
        "due": datetime(due_date.year, due_date.month, due_date.day, 15, 59, 59, tzinfo=UTC),
        "remind_at": None,
        "unit": "calendar_days",
        "length": 17,
        "on_expiry": "escalate",
        "default_outcome": None,
        "basis": f"basis of {rule_id}",
        "basis_checked": True,
        "pack_version": "test-pack",
        "estimated": False,
        "due_date": due_date,
    }
    return Deadline(**{**fields, **overrides})


def desk(*kinds: DecisionKind, purchased: bool = False) -> DecisionDesk:
    d = DecisionDesk(purchased=purchased, new_id=lambda: "fixed-id")
    for kind in kinds:
        d.open(kind, deadline(kind.value), NOW + timedelta(days=17))
    return d


def take(d: DecisionDesk, raw: Any) -> Intake:
    return d.take(raw, stage="testing", now=NOW)


def rejected_reason(d: DecisionDesk, raw: Any) -> str:
    """The reason `raw` is rejected; a rejection leaves the inbox and the remembered receipts as they were."""
    inbox, receipts = dict(d.inbox), dict(d.receipts)
    intake = take(d, raw)
    assert not intake.receipt.accepted and intake.receipt.reason
    assert (d.inbox, d.receipts) == (inbox, receipts)
    return intake.receipt.reason


# --- accepted ----------------------------------------------------------------------------------------


def test_a_valid_decision_goes_to_the_inbox_with_a_receipt() -> None:
    d = desk(LAB_REPORT)
    raw = f.report("fail")
    intake = take(d, raw)
    assert intake.receipt.accepted and intake.receipt.reason is None and not intake.duplicate
    assert intake.receipt.request_id == raw["request_id"]
    assert (intake.receipt.kind, intake.receipt.outcome) == ("lab_report", "fail")
    assert (intake.receipt.stage, intake.receipt.recorded_at) == ("testing", NOW)
    assert isinstance(intake.decision, Decision)
    assert d.inbox == {LAB_REPORT: intake.decision}
    assert d.receipts == {raw["request_id"]: intake.receipt}
    assert d.arrived(RECEIPT, LAB_REPORT) and not d.arrived(RECEIPT)


def test_a_decision_already_parsed_is_taken_as_is() -> None:
    d = desk(LAB_REPORT)
    decision = Decision.model_validate(f.report("pass"))
    assert take(d, decision).decision is decision
    assert d.inbox[LAB_REPORT] is decision


# --- rejected, naming why ----------------------------------------------------------------------------


def test_a_kind_not_awaited_is_rejected_naming_the_awaited_kinds() -> None:
    reason = rejected_reason(desk(LAB_REPORT, RECEIPT), f.objection())
    assert "not awaited" in reason
    assert "lab_report" in reason and "sample_receipt" in reason and "objection" in reason


def test_a_closed_kind_is_answered_with_why_it_closed() -> None:
    d = desk(OBJECTION)
    d.shut(OBJECTION, "objection window ended on 2025-11-18")
    assert OBJECTION not in d.waits
    assert rejected_reason(d, f.objection()) == "objection window ended on 2025-11-18"


def test_shut_without_why_is_plain_not_awaited() -> None:
    d = desk(OBJECTION)
    d.shut(OBJECTION)
    assert OBJECTION not in d.closed
    assert "not awaited" in rejected_reason(d, f.objection())


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        pytest.param(f.decision("lab_report", "fail", "enterprise"), "role", id="wrong-role"),
        pytest.param(f.decision("lab_report", "inconclusive", "lab"), "outcome", id="unknown-outcome"),
        pytest.param(f.decision("sample_receipt", "rejected", "lab"), "reason", id="missing-reason"),
        pytest.param(f.decision("sample_receipt", "rejected", "lab", reason="   "), "reason", id="blank-reason"),
        pytest.param(f.decision("lab_report", "pass", "lab", data={}), "data.report_no", id="payload-missing"),
        pytest.param(f.decision("lab_report", "pass", "lab", data={"report_no": "R", "colour": "red"}),
                     "data.colour", id="payload-unknown-field"),
        pytest.param(f.decision("lab_report", "fail", "lab", data={"report_no": "R"}), "data.failed_items",
                     id="payload-rule"),
    ],
)
def test_a_bad_decision_is_rejected_naming_the_field(raw: dict[str, Any], named: str) -> None:
    reason = rejected_reason(desk(LAB_REPORT, RECEIPT), raw)
    assert named in reason


def test_a_purchased_sample_is_not_returned() -> None:
    raw = f.disposal("returned")
    assert take(desk(DecisionKind.DISPOSAL), raw).receipt.accepted
    assert "disposed" in rejected_reason(desk(DecisionKind.DISPOSAL, purchased=True), f.copy_of(raw))


# --- request ids ---------------------------------------------------------------------------------------


def test_a_repeated_request_id_gets_the_first_receipt_and_changes_nothing() -> None:
    d = desk(LAB_REPORT)
    raw = f.report("fail")
    first = take(d, raw)
    # The same id again, even with another outcome and a later time: the first receipt, nothing changed.
    repeat = f.report("pass")
    repeat["request_id"] = raw["request_id"]
    again = d.take(repeat, stage="elsewhere", now=NOW + timedelta(hours=1))
    assert again.duplicate
    assert again.receipt == first.receipt
    assert d.inbox == {LAB_REPORT: first.decision}
    assert d.receipts == {raw["request_id"]: first.receipt}
    # Still a repeat once the workflow has consumed the decision and stopped waiting.
    d.pop(LAB_REPORT)
    late = take(d, raw)
    assert late.duplicate and late.receipt == first.receipt
    assert not d.inbox


def test_a_rejected_request_id_is_not_remembered() -> None:
    d = desk(LAB_REPORT)
    wrong = f.decision("lab_report", "fail", "enterprise", data={"report_no": "R-1", "failed_items": f.FAILED_ITEMS})
    assert not take(d, wrong).receipt.accepted
    corrected = {**wrong, "actor": {"id": "LAB-01", "role": "lab"}}
    intake = take(d, corrected)
    assert intake.receipt.accepted and not intake.duplicate
    assert d.inbox[LAB_REPORT].actor.id == "LAB-01"


# --- a process's own check ---------------------------------------------------------------------------


def test_extra_check_runs_only_after_the_common_checks() -> None:
    seen: list[Decision] = []

    def extra(decision: Decision) -> str | None:
        seen.append(decision)
        return "too late: the process's own rule"

    d = desk(LAB_REPORT)
    d.extra_check = extra
    for raw in (f.objection(), f.decision("lab_report", "fail", "enterprise"), None):
        assert take(d, raw).receipt.reason != "too late: the process's own rule"
    assert seen == []
    assert rejected_reason(d, f.report("pass")) == "too late: the process's own rule"
    assert len(seen) == 1


def test_extra_check_passing_lets_the_decision_in() -> None:
    d = desk(LAB_REPORT)
    d.extra_check = lambda decision: None
    assert take(d, f.report("pass")).receipt.accepted


# --- malformed input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(None, id="none"),
        pytest.param([f.report("pass")], id="list"),
        pytest.param("lab_report pass", id="string"),
        pytest.param({}, id="empty"),
        pytest.param({**f.report("pass"), "kind": "k" * 10_240}, id="huge-kind"),
        pytest.param({**f.report("pass"), "outcome": "o" * 10_240, "kind": "nope"}, id="huge-outcome"),
        pytest.param({**f.report("pass"), "request_id": "r" * 10_240}, id="huge-request-id"),
        pytest.param({**f.report("pass"), "actor": "LAB-01"}, id="actor-not-an-object"),
    ],
)
def test_malformed_input_is_rejected_with_a_bounded_receipt(raw: Any) -> None:
    d = desk(LAB_REPORT)
    intake = take(d, raw)
    receipt = intake.receipt
    assert intake.decision is None and not intake.duplicate
    assert not receipt.accepted and receipt.reason and "malformed" in receipt.reason
    assert 0 < len(receipt.kind) <= 64 and 0 < len(receipt.outcome) <= 64
    assert 0 < len(receipt.request_id) <= 128
    assert not d.inbox and not d.receipts


def test_a_malformed_decision_without_an_id_gets_a_new_one() -> None:
    receipt = take(desk(LAB_REPORT), {"kind": "lab_report"}).receipt
    assert receipt.request_id == "fixed-id"
    assert (receipt.kind, receipt.outcome) == ("lab_report", "?")


def test_a_malformed_decision_keeps_its_own_request_id() -> None:
    raw = {**f.report("pass"), "actor": None}
    assert take(desk(LAB_REPORT), raw).receipt.request_id == raw["request_id"]


# --- waits ---------------------------------------------------------------------------------------------


def test_open_replaces_a_wait_and_clears_its_closed_reason() -> None:
    d = desk(OBJECTION)
    d.shut(OBJECTION, "window ended")
    later = deadline("objection_window", due_date=date(2025, 12, 1))
    wait = d.open(OBJECTION, later, NOW + timedelta(days=28))
    assert d.waits == {OBJECTION: wait}
    assert wait.deadline is later and not wait.overdue
    assert OBJECTION not in d.closed
    assert take(d, f.objection()).receipt.accepted

    first = d.open(LAB_REPORT, deadline(), NOW)
    extended = d.open(LAB_REPORT, deadline(due_date=date(2025, 12, 24)), NOW + timedelta(days=51))
    assert d.waits[LAB_REPORT] is extended and extended is not first
    assert extended.deadline.due_date == date(2025, 12, 24)
    assert list(d.waits) == [OBJECTION, LAB_REPORT]


def test_an_answered_kind_is_no_longer_open() -> None:
    d = desk(LAB_REPORT, RECEIPT)
    first = take(d, f.report("fail"))
    assert d.open_kinds() == [RECEIPT]
    assert LAB_REPORT in d.waits  # still waited for until the process takes it
    assert "not awaited" in rejected_reason(d, f.report("pass"))
    assert d.inbox == {LAB_REPORT: first.decision}


def test_pop_hands_over_the_decision_and_ends_the_wait() -> None:
    d = desk(LAB_REPORT, RECEIPT)
    intake = take(d, f.report("pass"))
    assert d.pop(LAB_REPORT) is intake.decision
    assert LAB_REPORT not in d.waits and not d.inbox
    assert d.open_kinds() == [RECEIPT]
    assert not d.arrived(LAB_REPORT)
    with pytest.raises(KeyError):
        d.pop(LAB_REPORT)


def test_to_awaiting_carries_the_deadline() -> None:
    dl = deadline("sample_receipt", estimated=True, basis="市场监管总局令第18号 Art. 20")
    d = DecisionDesk(purchased=False, new_id=lambda: "fixed-id")
    wait = d.open(RECEIPT, dl, NOW + timedelta(days=3))
    wait.overdue = True
    awaiting = wait.to_awaiting()
    assert awaiting.kind == "sample_receipt"
    assert awaiting.roles == ["lab"]
    assert (awaiting.rule_id, awaiting.title, awaiting.basis) == (dl.rule_id, dl.title, dl.basis)
    assert awaiting.due == dl.due
    assert awaiting.due_at == NOW + timedelta(days=3)
    assert awaiting.overdue and awaiting.estimated
    assert d.awaiting() == [awaiting]


def test_roles_are_everyone_who_may_decide_the_kind() -> None:
    assert desk(OBJECTION).waits[OBJECTION].roles == ["case_officer", "enterprise"]
