"""The credit branch (信用约束与修复) on the time-skipping server, started on its own (its sample does not exist,
which the branch tolerates): publication, the year-long listing, credit repair, the serious-dishonesty
check, with real records. The contracts every branch keeps (bad decisions, a worker restart, a missed
deadline): tests/test_branch_contracts.py."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.credit_records import credit_listing_row
from activities.records import audit_trail, notices_for, outbox_for
from domain.branches import BranchInput, BranchStatus, branch_workflow_id
from domain.credit_code import ALPHABET, with_check_character
from starter.client import DecisionRejected, SpotcheckClient
from tests import factories as f
from tests.test_branch_contracts import refused
from tests.workflow_env import running_worker, terminate_when_idle
from workflows.credit import CreditWorkflow

# --- helpers --------------------------------------------------------------------------------------


def new_credit_code() -> str:
    """A valid code no other test uses: the fail history is shared by every test in the session."""
    return with_check_character("91330100" + "".join(random.choices(ALPHABET, k=9)))


def new_input() -> BranchInput:
    party = {"name": f"测试电器有限公司{uuid.uuid4().hex[:4]}", "credit_code": new_credit_code(), "region": "330100"}
    return BranchInput.model_validate(f.branch_input("credit", "online", sampled_party=party))


async def start(client: SpotcheckClient, inp: BranchInput | None = None
                ) -> tuple[WorkflowHandle[Any, Any], BranchInput]:
    inp = inp or new_input()
    handle = await client.client.start_workflow(
        CreditWorkflow.run, inp, id=branch_workflow_id(inp.sample_workflow_id, "credit"), task_queue=client.task_queue,
    )
    return handle, inp


async def status(handle: WorkflowHandle[Any, Any]) -> BranchStatus:
    return await handle.query(CreditWorkflow.status)


async def until(handle: WorkflowHandle[Any, Any], check: Callable[[BranchStatus], bool],
                within: float = 30.0) -> BranchStatus:
    """Poll the branch's status until `check` holds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        s = await status(handle)
        if check(s):
            return s
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out; stage={s.stage} awaiting={[a.kind for a in s.awaiting]}")
        await asyncio.sleep(0.1)


def awaiting(kind: str) -> Callable[[BranchStatus], bool]:
    return lambda s: any(a.kind == kind for a in s.awaiting)


def listed(s: BranchStatus) -> bool:
    return s.stage == "listed" and awaiting("credit_repair_application")(s)


def repair_from(s: BranchStatus) -> date:
    return date.fromisoformat(s.data["repair_from"])


async def past_repair_wait(ts_env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> BranchStatus:
    """Skip to the first day a repair application is taken (the shortest publicity period after publication)."""
    s = await until(handle, listed)
    wait = next(d for d in s.deadlines if d.rule_id.startswith("credit_repair_wait"))
    await ts_env.sleep(wait.due - await ts_env.get_current_time() + timedelta(hours=1))
    return s


async def add_fail(pool: asyncpg.Pool, inp: BranchInput, sample_no: str, failed_on: date) -> None:
    await pool.execute(
        "INSERT INTO enterprise_fails (sample_no, credit_code, role, region, product_code, brand, model, failed_on)"
        " VALUES ($1, $2, 'sampled_party', '330100', '1303', 'b', 'm', $3)",
        sample_no, inp.order.sampled_party.credit_code, failed_on,
    )


def apply_() -> dict[str, Any]:
    return f.decision("credit_repair_application", "filed", "enterprise", reason="已完成整改, 申请信用修复")


def accept() -> dict[str, Any]:
    return f.decision("credit_repair_acceptance", "accepted", "credit_officer")


def review(outcome: str, reason: str = "整改到位, 符合信用修复条件") -> dict[str, Any]:
    return f.decision("credit_repair_review", outcome, "credit_officer", reason=reason)


def templates(notices: list[dict[str, Any]]) -> list[str]:
    return [n["template"] for n in notices]


def actions(outbox: list[dict[str, Any]]) -> list[str]:
    return [m["payload"]["action"] for m in outbox if m["channel"] == "credit_publicity"]


# --- publication and the year-long listing --------------------------------------------------------


async def test_published_listed_for_a_year_then_removed(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        inp = new_input()
        party = inp.order.sampled_party
        handle, _ = await start(client, inp)
        s = await until(handle, listed)
        assert "fails_in_three_years" not in s.data  # no criterion of Order 44
        # No tier given: a general listing, under the rule versions of 《信用修复管理办法》 (in force 2026-04-01).
        assert s.data["dishonesty_tier"] == "general"
        rules = {d.rule_id: d for d in s.deadlines}
        assert rules["credit_publicity"].length == 20 and rules["credit_publicity"].unit == "working_days"
        assert (rules["credit_repair_wait_general"].length, rules["credit_publicity_max_general"].length) == (3, 12)
        assert rules["credit_repair_wait_general"].effective_from == date(2026, 4, 1)
        row = await credit_listing_row(pool, handle.id)
        assert row is not None
        assert (row["credit_code"], row["enterprise_name"], row["sample_no"]) == (
            party.credit_code, party.name, inp.order.sample_no)
        assert row["publicity_due"] == rules["credit_publicity"].due
        assert row["listed_until"] == rules["credit_listing"].due  # the opinion's year ties with the longest
        assert (row["dishonesty_tier"], row["repair_from"]) == ("general", rules["credit_repair_wait_general"].due)
        assert 365 <= (row["listed_until"] - row["published_at"]).days <= 366
        assert row["removed_at"] is None and row["serious_dishonesty"] is None
        outbox = await outbox_for(pool, handle.id)
        assert actions(outbox) == ["publish_listing"]
        assert outbox[0]["payload"]["credit_code"] == party.credit_code
        [notice] = await notices_for(pool, handle.id)
        assert notice["title"] == "信用公示信息"
        for text in (party.name, party.credit_code, "输出电压", "GB 4943.1-2022", "杭州市市场监督管理局", "公示期为十二个月",
                     "失信信息类别：一般失信信息", "满三个月后，可以依照《信用修复管理办法》申请信用修复"):
            assert text in notice["body"], text
        result = await handle.result()
    assert (result.stage, result.outcome, result.data["removal_reason"]) == ("closed", "expired", "expired")
    row = await credit_listing_row(pool, handle.id)
    assert row is not None and row["removal_reason"] == "expired" and row["serious_dishonesty"] is None
    assert row["removed_at"] >= row["listed_until"]
    assert actions(await outbox_for(pool, handle.id)) == ["publish_listing", "remove_listing"]
    assert templates(await notices_for(pool, handle.id)) == ["credit_publicity"]


# --- credit repair ---------------------------------------------------------------------------------


async def test_repair_application_before_the_shortest_period_is_refused_with_the_date(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle, inp = await start(client)
        s = await until(handle, listed)
        first_day = repair_from(s)
        assert first_day > date.today() + timedelta(days=88)
        await ts_env.sleep(timedelta(days=60))
        with pytest.raises(DecisionRejected) as err:
            await client.decide(inp.order.sample_no, apply_(), workflow_id=handle.id)
        assert f"credit repair may be applied for from {first_day}" in err.value.reason
        await handle.signal("decide", apply_())
        s = await until(handle, lambda s: sum(e.event == "rejected" for e in s.timeline) == 2)
        assert s.stage == "listed" and f"from {first_day}" in [e for e in s.timeline if e.event == "rejected"][-1].text
        await terminate_when_idle(handle)
    trail = await audit_trail(pool, handle.id)
    assert [(r["kind"], r["accepted"]) for r in trail] == [("credit_repair_application", False)] * 2


async def test_repair_granted_after_the_wait_removes_the_listing_early(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle, inp = await start(client)
        no = inp.order.sample_no
        await past_repair_wait(ts_env, handle)
        await client.decide(no, apply_(), workflow_id=handle.id)
        s = await until(handle, awaiting("credit_repair_acceptance"))
        assert s.stage == "repair_acceptance"
        assert (await credit_listing_row(pool, handle.id) or {})["repair_outcome"] == "applied"
        await client.decide(no, accept(), workflow_id=handle.id)
        s = await until(handle, awaiting("credit_repair_review"))
        assert s.stage == "repair_review"
        [wait] = s.awaiting
        assert (wait.rule_id, wait.roles) == ("credit_repair_decision", ["credit_officer"])
        await client.decide(no, review("approved"), workflow_id=handle.id)
        result = await handle.result()
    assert (result.outcome, result.data["removal_reason"], result.data["repair"]) == ("repaired", "repaired", "approved")
    row = await credit_listing_row(pool, handle.id)
    assert row is not None
    assert (row["removal_reason"], row["repair_outcome"]) == ("repaired", "approved")
    assert row["repair_applied_at"] <= row["removed_at"] < row["listed_until"] - timedelta(days=150)
    assert actions(await outbox_for(pool, handle.id)) == ["publish_listing", "remove_listing"]
    notices = await notices_for(pool, handle.id)
    assert templates(notices) == ["credit_publicity", "credit_repair_decision"]
    assert notices[1]["title"] == "信用修复决定书" and "决定准予信用修复" in notices[1]["body"]
    # Published after 2026-04-01: the decision cites the measures of that version (Order 36), not the 2021 ones.
    assert "根据《信用修复管理办法》的规定" in notices[1]["body"] and "市场监督管理信用修复" not in notices[1]["body"]


async def test_repair_refused_or_rejected_keeps_the_listing_until_it_expires(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle, inp = await start(client)
        no = inp.order.sample_no
        await past_repair_wait(ts_env, handle)
        # First application: not accepted (材料不全); the listing continues and a new one may be made.
        await client.decide(no, apply_(), workflow_id=handle.id)
        await until(handle, awaiting("credit_repair_acceptance"))
        await client.decide(no, f.decision("credit_repair_acceptance", "refused", "credit_officer",
                                           reason="申请材料不齐全"), workflow_id=handle.id)
        await until(handle, listed)
        assert (await credit_listing_row(pool, handle.id) or {})["repair_outcome"] == "refused"
        # Second application: accepted, then rejected on review.
        await client.decide(no, apply_(), workflow_id=handle.id)
        await until(handle, awaiting("credit_repair_acceptance"))
        await client.decide(no, accept(), workflow_id=handle.id)
        await until(handle, awaiting("credit_repair_review"))
        await client.decide(no, review("rejected", "整改报告未附检验合格证明"), workflow_id=handle.id)
        s = await until(handle, listed)
        row = await credit_listing_row(pool, handle.id)
        assert row is not None
        assert (row["repair_outcome"], row["repair_reason"], row["removed_at"]) == (
            "rejected", "整改报告未附检验合格证明", None)
        # Third application a few days before the year is up: the listing ends while it is under review.
        listing_end = next(d for d in s.deadlines if d.rule_id == "credit_listing").due
        await ts_env.sleep(listing_end - await ts_env.get_current_time() - timedelta(days=5))
        await client.decide(no, apply_(), workflow_id=handle.id)
        await until(handle, awaiting("credit_repair_acceptance"))
        await client.decide(no, accept(), workflow_id=handle.id)
        await until(handle, awaiting("credit_repair_review"))
        result = await handle.result()
    assert (result.outcome, result.data["removal_reason"]) == ("expired", "expired")
    assert not result.awaiting
    row = await credit_listing_row(pool, handle.id)
    assert row is not None and row["removal_reason"] == "expired" and row["removed_at"] >= row["listed_until"]
    notices = await notices_for(pool, handle.id)
    assert templates(notices) == ["credit_publicity", "credit_repair_decision", "credit_repair_decision"]
    assert notices[1]["title"] == "信用修复申请不予受理通知书" and "申请材料不齐全" in notices[1]["body"]
    assert "决定不予信用修复" in notices[2]["body"] and "整改报告未附检验合格证明" in notices[2]["body"]
    assert actions(await outbox_for(pool, handle.id)) == ["publish_listing", "remove_listing"]


BAD_AT_ACCEPTANCE: list[tuple[str, dict[str, Any], str]] = [
    ("refusal without reason", f.decision("credit_repair_acceptance", "refused", "credit_officer"),
     "reason: required for credit_repair_acceptance=refused"),
    ("second application", apply_(), "a credit-repair application is already under way"),
    ("enterprise accepts", f.decision("credit_repair_acceptance", "accepted", "enterprise"),
     "role enterprise may not decide credit_repair_acceptance=accepted"),
]


async def test_repair_acceptance_refuses_its_bad_decisions_and_takes_a_late_one(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle, inp = await start(client)
        no = inp.order.sample_no
        await past_repair_wait(ts_env, handle)
        await client.decide(no, apply_(), workflow_id=handle.id)
        s = await until(handle, awaiting("credit_repair_acceptance"))
        await refused(client, handle, no, BAD_AT_ACCEPTANCE)
        # Its deadline passes (escalation: tests/test_branch_contracts.py): late, but still taken.
        await ts_env.sleep(s.awaiting[0].due_at - await ts_env.get_current_time() + timedelta(hours=1))
        await until(handle, lambda s: s.awaiting[0].overdue)
        await client.decide(no, accept(), workflow_id=handle.id)
        await until(handle, awaiting("credit_repair_review"))
        await terminate_when_idle(handle)
    trail = await audit_trail(pool, handle.id)
    assert sum(not r["accepted"] for r in trail) == len(BAD_AT_ACCEPTANCE)
    assert [r["kind"] for r in trail if r["accepted"]] == ["credit_repair_application", "credit_repair_acceptance"]


# --- serious-dishonesty list ------------------------------------------------------------------------


async def test_serious_dishonesty_needs_a_heavier_penalty_not_two_fails(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    """Order 44 第二条: two fails within three years propose nothing; a 较重行政处罚 does, with its kind."""
    async with running_worker(ts_env.client, pool, task_queue) as client:
        inp = new_input()
        await add_fail(pool, inp, inp.order.sample_no, date.today())
        await add_fail(pool, inp, f"OLD-{uuid.uuid4().hex[:8]}", date.today() - timedelta(days=2 * 365))
        handle, _ = await start(client, inp)
        s = await until(handle, listed)
        await ts_env.sleep(timedelta(days=10))
        s = await status(handle)
        assert not awaiting("serious_dishonesty_review")(s) and "serious_dishonesty" not in s.data
        await handle.signal(CreditWorkflow.enforcement_result,
                            {"heavy": True, "heavy_kind": "business_restricted", "fine_amount": "80000"})
        s = await until(handle, awaiting("serious_dishonesty_review"))
        assert s.data["serious_dishonesty"] == "proposed"
        assert s.data["enforcement"] == {"heavy": True, "heavy_kind": "business_restricted", "fine_amount": "80000"}
        row = await credit_listing_row(pool, handle.id)
        assert row is not None and row["serious_dishonesty"] == "proposed"
        assert "较重行政处罚 (市场监管总局令第44号 第二条): 限制生产经营、责令停产停业" in row["serious_basis"]
        with pytest.raises(DecisionRejected, match="reason: required"):
            await client.decide(inp.order.sample_no, f.decision("serious_dishonesty_review", "listed", "credit_officer"),
                                workflow_id=handle.id)
        await client.decide(inp.order.sample_no, f.decision(
            "serious_dishonesty_review", "listed", "credit_officer", reason="责令停产停业, 情节严重"), workflow_id=handle.id)
        s = await until(handle, lambda s: s.data.get("serious_dishonesty") == "listed")
        assert not awaiting("serious_dishonesty_review")(s)
        result = await handle.result()
    assert result.outcome == "expired"
    row = await credit_listing_row(pool, handle.id)
    assert row is not None and row["serious_dishonesty"] == "listed" and "第二条" in row["serious_basis"]
    assert actions(await outbox_for(pool, handle.id)) == ["publish_listing", "list_serious_dishonesty",
                                                          "remove_listing"]


async def test_serious_dishonesty_proposed_once_on_a_heavy_penalty(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle, inp = await start(client)
        s = await until(handle, listed)
        # Not heavy, or not even a result: nothing proposed, nothing broken.
        await handle.signal(CreditWorkflow.enforcement_result, {"heavy": False, "fine_amount": "5000"})
        await handle.signal(CreditWorkflow.enforcement_result, "罚款")
        await handle.signal(CreditWorkflow.enforcement_result, {"heavy": "yes"})
        await handle.signal(CreditWorkflow.enforcement_result, {"heavy": False, "heavy_kind": {"x": [1]}})
        s = await until(handle, lambda s: sum(e.event == "rejected" for e in s.timeline) == 2)
        assert not awaiting("serious_dishonesty_review")(s) and "serious_dishonesty" not in s.data
        assert any("not a 较重行政处罚" in e.text for e in s.timeline if e.event == "enforcement_result")
        await ts_env.sleep(timedelta(days=40))
        await handle.signal(CreditWorkflow.enforcement_result, {"heavy": True, "fine_amount": "200000"})
        await handle.signal(CreditWorkflow.enforcement_result, {"heavy": True, "fine_amount": "300000"})
        s = await until(handle, awaiting("serious_dishonesty_review"))
        assert sum(e.event == "serious_dishonesty" for e in s.timeline) == 1
        row = await credit_listing_row(pool, handle.id)
        assert row is not None and row["serious_dishonesty"] == "proposed" and "200000" in row["serious_basis"]
        assert "kind not stated" in row["serious_basis"]
        await client.decide(inp.order.sample_no, f.decision(
            "serious_dishonesty_review", "not_listed", "credit_officer", reason="罚款未达严重失信标准"),
            workflow_id=handle.id)
        result = await handle.result()
        timeline = (await status(handle)).timeline
    assert (result.outcome, result.data["serious_dishonesty"]) == ("expired", "not_listed")
    assert sum(e.event == "serious_dishonesty" for e in timeline) == 1
    row = await credit_listing_row(pool, handle.id)
    assert row is not None and row["serious_dishonesty"] == "not_listed"
    assert actions(await outbox_for(pool, handle.id)) == ["publish_listing", "remove_listing"]
