"""Credit listings by dishonesty tier, before and after the rules change (《信用修复管理办法》, 国家发展改革委令
第36号, in force 2026-04-01), on the time-skipping server with the mocked activities. The server's clock starts
today, after 2026-04-01: so the pack under test is the real one with the change moved 20 days ahead, and a
listing published now is "before" it, one published after skipping 25 days "after" it. Each tier: repair
applied for too early is refused with the first allowed day (and audited), allowed after the shortest period;
the listing ends by itself at the end of its publicity."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.calendar import CHINA, add_months
from activities.rule_packs import RULE_OVERRIDES_ENV, RULES_DIR_ENV
from domain.branches import BranchInput, BranchReport, branch_workflow_id
from domain.credit import (
    DishonestyTier,
    heavy_penalty,
    publicity_end,
    repair_measures,
    repair_opens,
    repair_too_early,
    tier_of,
)
from domain.decisions import CaseOutcomeData
from domain.rules import Deadline
from starter.client import DecisionRejected, SpotcheckClient
from tests.test_branch_credit import apply_, listed, new_input, until
from tests.workflow_env import mocked_worker
from workflows.credit import CreditWorkflow

REAL_PACK = Path(__file__).resolve().parent.parent / "rules" / "2025-10-11.toml"

# (tier, era) → (shortest months, rule ending the publicity, its months)
EXPECTED: dict[tuple[str, str], tuple[int, str, int]] = {
    ("minor", "before"): (6, "credit_listing", 12),
    ("general", "before"): (6, "credit_listing", 12),
    ("serious", "before"): (6, "credit_listing", 12),
    ("minor", "after"): (0, "credit_publicity_max_minor", 3),
    ("general", "after"): (3, "credit_listing", 12),  # the opinion's year ties with the longest
    ("serious", "after"): (12, "credit_publicity_max_serious", 36),  # the opinion's year overridden: see below
}


async def _pack_changing_in(ts_env: WorkflowEnvironment, tmp_path: Path, days: int) -> date:
    """The real pack with its 2026-04-01 rule versions taking effect `days` after the server's today."""
    switch = (await ts_env.get_current_time()).astimezone(CHINA).date() + timedelta(days=days)
    text = REAL_PACK.read_text(encoding="utf-8")
    text = text.replace("2026-03-31", (switch - timedelta(days=1)).isoformat()).replace("2026-04-01", switch.isoformat())
    (tmp_path / REAL_PACK.name).write_text(text, encoding="utf-8")
    return switch


async def _start(client: SpotcheckClient, tier: str) -> tuple[WorkflowHandle[Any, Any], BranchInput]:
    inp = new_input().model_copy(update={"context": {"dishonesty_tier": tier}})
    handle = await client.client.start_workflow(
        CreditWorkflow.run, inp, id=branch_workflow_id(inp.sample_workflow_id, "credit"), task_queue=client.task_queue,
    )
    return handle, inp


@pytest.mark.parametrize(("tier", "era"), list(EXPECTED))
async def test_each_tier_before_and_after_the_change(
    ts_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tier: str, era: str
) -> None:
    shortest_months, end_rule, end_months = EXPECTED[(tier, era)]
    monkeypatch.setenv(RULES_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(RULE_OVERRIDES_ENV, raising=False)
    if (tier, era) == ("serious", "after"):
        # Where the opinion's year does not apply, a serious listing runs to its longest period (3 years).
        monkeypatch.setenv(RULE_OVERRIDES_ENV, '{"credit_listing": {"length": 48}}')
    switch = await _pack_changing_in(ts_env, tmp_path, 20)
    if era == "after":
        await ts_env.sleep(timedelta(days=25))
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        handle, inp = await _start(client, tier)
        no = inp.order.sample_no
        s = await until(handle, listed)
        rules = {d.rule_id: d for d in s.deadlines}
        shortest, end = rules[f"credit_repair_wait_{tier}"], rules[end_rule]
        published = shortest.start.astimezone(CHINA).date()
        assert s.data["dishonesty_tier"] == tier
        # The rule versions in force on the publication day, and the deadlines say which.
        assert shortest.length == shortest_months and end.length == end_months
        if era == "before":
            assert (shortest.effective_from, shortest.effective_to) == (None, switch - timedelta(days=1))
            assert "2021" in shortest.basis
        else:
            assert (shortest.effective_from, shortest.effective_to) == (switch, None)
            assert "国家发展改革委令第36号" in shortest.basis
        assert s.data["listed_until"] == str(end.due_date)
        assert end.due_date >= add_months(published, end_months)
        row = store.find("credit_listings", workflow_id=handle.id)
        assert row is not None and (row["dishonesty_tier"], row["listed_until"]) == (tier, end.due)

        if shortest_months:
            # Too early: refused with the first allowed day, audited.
            first = repair_opens(shortest)
            assert first > published + timedelta(days=28 * shortest_months - 1)
            await ts_env.sleep(timedelta(days=20))
            with pytest.raises(DecisionRejected) as err:
                await client.decide(no, apply_(), workflow_id=handle.id)
            assert f"credit repair may be applied for from {first}" in err.value.reason
            await until(handle, lambda s: any(e.event == "rejected" for e in s.timeline))
            await until(handle, lambda _: bool(store.audit_trail(handle.id)))  # written after the answer
            assert [(r["kind"], r["accepted"]) for r in store.audit_trail(handle.id)] == [
                ("credit_repair_application", False)]
            await ts_env.sleep(shortest.due - await ts_env.get_current_time() + timedelta(hours=1))
        # After the shortest period (at once for a minor listing from the change): the application is taken.
        if end.due > await ts_env.get_current_time() + timedelta(days=1):
            receipt = await client.decide(no, apply_(), workflow_id=handle.id)
            assert receipt.accepted
            await until(handle, lambda s: s.stage == "repair_acceptance")
        # Nobody decides: the publicity ends by itself at its end.
        result = BranchReport.model_validate(await handle.result())
    assert (result.outcome, result.data["removal_reason"]) == ("expired", "expired")
    row = store.find("credit_listings", workflow_id=handle.id)
    assert row is not None and row["removal_reason"] == "expired" and row["removed_at"] >= end.due
    assert [m["payload"]["action"] for m in store.outbox_for(handle.id) if m["channel"] == "credit_publicity"] == [
        "publish_listing", "remove_listing"]


async def test_an_unknown_tier_takes_the_default_and_says_so(ts_env: WorkflowEnvironment, task_queue: str) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, _):
        handle, _ = await _start(client, "catastrophic")
        s = await until(handle, listed)
        assert s.data["dishonesty_tier"] == "general"
        [event] = [e for e in s.timeline if e.event == "tier"]
        assert "default for a spot-check fail (the given tier was not one of minor, general, serious)" in event.text
        await handle.terminate()


async def test_the_plan_sets_the_tier_in_the_order(ts_env: WorkflowEnvironment, task_queue: str) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        inp = new_input()
        inp = inp.model_copy(update={"order": inp.order.model_copy(update={"dishonesty_tier": "minor"})})
        handle = await client.client.start_workflow(
            CreditWorkflow.run, inp, id=branch_workflow_id(inp.sample_workflow_id, "credit"),
            task_queue=client.task_queue)
        s = await until(handle, listed)
        assert s.data["dishonesty_tier"] == "minor"
        [event] = [e for e in s.timeline if e.event == "tier"]
        assert "set by the plan in the order" in event.text
        # A minor listing: repair at once (no shortest period), publicity at most three months.
        receipt = await client.decide(inp.order.sample_no, apply_(), workflow_id=handle.id)
        assert receipt.accepted
        [notice] = store.notices_for(handle.id)
        assert "失信信息类别：轻微失信信息" in notice["body"] and "公示期为三个月" in notice["body"]
        assert "当事人履行法定责任后，即可依照《信用修复管理办法》申请信用修复" in notice["body"]
        await handle.terminate()


def _deadline(rule_id: str, length: int, due_date: str, **extra: Any) -> Deadline:
    return Deadline.model_validate({
        "rule_id": rule_id, "title": "t", "start": "2026-05-01T02:00:00Z", "due": f"{due_date}T15:59:59Z",
        "remind_at": None, "unit": "months", "length": length, "on_expiry": "expire", "default_outcome": None,
        "basis": "《信用修复管理办法》(国家发展改革委令第36号)", "basis_checked": False, "pack_version": "v",
        "beyond_schedule": False, "due_date": due_date, **extra,
    })


def test_pure_rules_of_the_tiers() -> None:
    minor = _deadline("credit_repair_wait_minor", 0, "2026-05-01", effective_from="2026-04-01")
    general = _deadline("credit_repair_wait_general", 3, "2026-08-01", effective_from="2026-04-01")
    at = datetime(2026, 5, 1, 3, tzinfo=UTC)
    # A minor listing has no shortest period: repair from the publication day, never too early.
    assert (repair_opens(minor), repair_too_early(minor, at)) == (date(2026, 5, 1), None)
    assert repair_opens(general) == date(2026, 8, 2)
    assert repair_too_early(general, at) == (
        "credit repair may be applied for from 2026-08-02: 3 months after publication "
        "(《信用修复管理办法》(国家发展改革委令第36号), rule version from 2026-04-01)")
    assert repair_too_early(general, datetime(2026, 8, 1, 16, tzinfo=UTC)) is None
    assert repair_measures(general) == "《信用修复管理办法》"
    # The listing ends at the earlier of the tier's longest and the opinion's year; a tie keeps the opinion's.
    opinion = _deadline("credit_listing", 12, "2027-05-01")
    longest_minor = _deadline("credit_publicity_max_minor", 3, "2026-08-01")
    longest_general = _deadline("credit_publicity_max_general", 12, "2027-05-01")
    assert publicity_end(longest_minor, opinion) is longest_minor
    assert publicity_end(longest_general, opinion) is opinion
    assert tier_of({"dishonesty_tier": "serious"}, DishonestyTier.MINOR) == (DishonestyTier.SERIOUS, "given with the fail")
    assert tier_of({}, DishonestyTier.MINOR) == (DishonestyTier.MINOR, "set by the plan in the order")
    assert tier_of({}, None) == (DishonestyTier.GENERAL, "default for a spot-check fail")
    assert tier_of({"dishonesty_tier": 3}, DishonestyTier.MINOR) == (
        DishonestyTier.MINOR, "set by the plan in the order (the given tier was not one of minor, general, serious)")


def test_only_a_heavier_penalty_counts_for_order_44() -> None:
    assert heavy_penalty({"heavy": False, "fine_amount": "5000"})[0] is False
    assert heavy_penalty({"heavy": "true"})[0] is False
    assert heavy_penalty({"heavy": True, "heavy_kind": "licence_revoked"}) == (
        True, "较重行政处罚 (市场监管总局令第44号 第二条): 吊销许可证件、营业执照")
    assert heavy_penalty({"heavy": True, "heavy_kind": {"x": 1}})[1].endswith("kind not stated")
    assert CaseOutcomeData.model_validate({"heavy": True, "heavy_kind": "aggravated_fine"}).heavy_kind
    with pytest.raises(ValidationError, match="heavy_kind: only with heavy = true"):
        CaseOutcomeData.model_validate({"heavy_kind": "aggravated_fine"})
