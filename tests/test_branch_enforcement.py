"""The enforcement branch (移交执法稽查, 行刑衔接) on the time-skipping server, started on its own (its sample does
not exist, which a branch tolerates): hand-over with the case transfer letter, filing, outcome, extensions,
missed deadlines, criminal transfer, merged cases, the case's own bad decisions. The contracts every branch
keeps (bad decisions, a worker restart, a missed filing): tests/test_branch_contracts.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.calendar import add_working_days
from activities.enforcement_records import enforcement_case
from activities.records import audit_trail, notices_for, outbox_for
from domain.branches import BranchInput, BranchStatus, branch_workflow_id
from starter.client import DecisionRejected, SpotcheckClient
from tests import factories as f
from tests.test_branch_contracts import refused
from tests.workflow_env import _describe, _running, running_worker, terminate_when_idle
from workflows.enforcement import EnforcementWorkflow

CASE_NO = "杭市监立〔2026〕88号"


# --- helpers -------------------------------------------------------------------------------------


async def start(
    client: Client, task_queue: str, *, context: dict[str, Any] | None = None, wf_id: str | None = None,
    change: Callable[[dict[str, Any]], None] | None = None, **options: Any,
) -> WorkflowHandle[Any, Any]:
    raw = f.branch_input("enforcement", context=context if context is not None else {"reason": "final_fail"})
    if change:
        change(raw)
    inp = BranchInput.model_validate(raw)
    return await client.start_workflow(
        EnforcementWorkflow.run, inp, id=wf_id or branch_workflow_id(inp.sample_workflow_id, "enforcement"),
        task_queue=task_queue, **options,
    )


async def status_of(handle: WorkflowHandle[Any, Any]) -> BranchStatus:
    return await handle.query("status", result_type=BranchStatus)


async def wait_for(
    handle: WorkflowHandle[Any, Any], check: Callable[[BranchStatus], bool], within: float = 30.0
) -> BranchStatus:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status = await status_of(handle)
        if check(status):
            return status
        if not await _running(handle) or asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"stage={status.stage} awaiting={[a.kind for a in status.awaiting]}")
        await asyncio.sleep(0.1)


async def search_attributes(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The workflow's search attributes; an unset one (empty payload) is left out."""
    fields = (await _describe(handle)).workflow_execution_info.search_attributes.indexed_fields
    return {name: json.loads(p.data) for name, p in fields.items() if p.data}


def awaiting(kind: str, *, overdue: bool | None = None) -> Callable[[BranchStatus], bool]:
    return lambda s: any(a.kind == kind and (overdue is None or a.overdue == overdue) for a in s.awaiting)


def sample_no(handle: WorkflowHandle[Any, Any]) -> str:
    return handle.id.removeprefix("sample-").removesuffix("-enforcement")


def filed(case_no: str = CASE_NO) -> dict[str, Any]:
    return f.decision("case_filing", "filed", "enforcement", data={"case_no": case_no})


def penalty(fine: str = "50000", heavy: bool = True, **more: Any) -> dict[str, Any]:
    return f.decision("case_outcome", "penalty", "enforcement",
                      data={"decision_no": "杭市监罚〔2026〕7号", "fine_amount": fine, "heavy": heavy, **more})


def decided(kind: str, outcome: str, role: str = "enforcement", reason: str | None = "经审查") -> dict[str, Any]:
    return f.decision(kind, outcome, role, reason=reason)


async def to_outcome(client: SpotcheckClient, handle: WorkflowHandle[Any, Any]) -> BranchStatus:
    await wait_for(handle, awaiting("case_filing"))
    await client.decide(sample_no(handle), filed(), workflow_id=handle.id)
    return await wait_for(handle, awaiting("case_outcome"))


def deadlines(status: BranchStatus, rule_id: str) -> list[Any]:
    return [d for d in status.deadlines if d.rule_id == rule_id]


async def templates(pool: asyncpg.Pool, workflow_id: str) -> list[str]:
    return [n["template"] for n in await notices_for(pool, workflow_id)]


# --- the happy path ------------------------------------------------------------------------------


async def test_hand_over_filing_and_penalty(ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle = await start(ts_env.client, task_queue)
        no = sample_no(handle)
        status = await wait_for(handle, awaiting("case_filing"))
        assert status.stage == "handed_over"
        # The case transfer letter carries the case file, each document and proof with its hash.
        [letter] = await notices_for(pool, handle.id)
        assert letter["template"] == "case_transfer" and letter["title"] == "案件移送函"
        body = letter["body"]
        for expected in (no, "移动电源", "闪充", "SC-20000", "义乌闪充数码专营店", "92330782MA2K1LMN3X",
                         "ZJPQ-T-1", "输出电压", "GB 4943.1-2022", "产品质量监督抽查检验结果通知书",
                         "b" * 64, "report.pdf", "a" * 64, "检验结论为不合格", "第十八条",
                         "义乌市市场监督管理局执法稽查部门"):
            assert expected in body, expected
        filing_due = deadlines(status, "case_filing")[0].due_date
        assert f"{filing_due.year}年{filing_due.month}月{filing_due.day}日前" in body
        [handover] = [m for m in await outbox_for(pool, handle.id) if m["channel"] == "enforcement"]
        assert handover["payload"]["action"] == "transfer_case"
        assert handover["payload"]["letter"]["sha256"] == letter["sha256"]
        assert handover["payload"]["failed_items"][0]["standard"] == "GB 4943.1-2022"
        row = await enforcement_case(pool, handle.id)
        assert row is not None
        assert (row["sample_no"], row["reason"], row["filing_due"]) == (no, "final_fail", filing_due)
        assert row["handover_reference"] == f"outbox:{handover['id']}"

        receipt = await client.decide(no, filed(), workflow_id=handle.id)
        assert receipt is not None and receipt.accepted
        status = await wait_for(handle, awaiting("case_outcome"))
        assert status.stage == "filed"
        handling = deadlines(status, "case_handling")[0]
        assert handling.length == 90
        # The first wait's bad decisions: tests/test_branch_contracts.py; these are the outcome's own.
        await refused(client, handle, no, [
            ("negative fine", f.decision("case_outcome", "penalty", "enforcement", data={"fine_amount": "-1"}),
             "malformed data for case_outcome: data.fine_amount"),
            ("receipt before a transfer", decided("crime_transfer_receipt", "received", reason=None),
             "not awaited: the sample waits for case_outcome, not crime_transfer_receipt"),
            ("police decide the outcome", f.decision("case_outcome", "penalty", "public_security"),
             "role public_security may not decide case_outcome=penalty"),
            ("a heavier penalty's kind on one not heavy", penalty(heavy=False, heavy_kind="licence_revoked"),
             "heavy_kind: only with heavy = true"),
        ])
        await client.decide(no, penalty(heavy_kind="aggravated_fine"), workflow_id=handle.id)
        report = await handle.result()
        assert (report.outcome, report.closed, report.stage) == ("penalty", True, "closed")
        # Passed on to the credit branch by the sample: which 较重行政处罚 (Order 44 第二条).
        assert report.data == {"fine_amount": "50000", "heavy": True, "heavy_kind": "aggravated_fine"}
        assert (await search_attributes(handle))["Stage"] == "enforcement:closed"
    row = await enforcement_case(pool, handle.id)
    assert row is not None
    assert (row["filing_outcome"], row["case_no"], row["outcome"], row["closed_outcome"]) == (
        "filed", CASE_NO, "penalty", "penalty")
    assert (row["fine_amount"], row["heavy"], row["outcome_due"]) == (Decimal("50000.00"), True, handling.due_date)
    trail = await audit_trail(pool, handle.id)
    assert [(r["kind"], r["outcome"]) for r in trail if r["accepted"]] == [
        ("case_filing", "filed"), ("case_outcome", "penalty")]
    assert sum(not r["accepted"] for r in trail) == 4


# --- filing --------------------------------------------------------------------------------------


async def test_not_filed_closes_the_branch(ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle = await start(ts_env.client, task_queue)
        await wait_for(handle, awaiting("case_filing"))
        await client.decide(sample_no(handle), decided("case_filing", "not_filed", reason="违法事实不成立"),
                            workflow_id=handle.id)
        report = await handle.result()
        assert (report.outcome, report.data) == ("not_filed", {})
    row = await enforcement_case(pool, handle.id)
    assert row is not None
    assert (row["filing_outcome"], row["case_no"], row["closed_outcome"]) == ("not_filed", None, "not_filed")


async def test_filing_is_extended_once_by_fifteen_working_days(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle = await start(ts_env.client, task_queue)
        no = sample_no(handle)
        status = await wait_for(handle, awaiting("case_filing"))
        [first] = deadlines(status, "case_filing")
        await client.decide(no, decided("case_filing", "extended", reason="案情复杂，经局长批准延长"),
                            workflow_id=handle.id)
        status = await wait_for(handle, lambda s: len(deadlines(s, "case_filing")) == 2 and awaiting("case_filing")(s))
        second = deadlines(status, "case_filing")[1]
        assert second.due_date == add_working_days(first.due_date, 15)[0]
        assert [a.due for a in status.awaiting] == [second.due]
        # A second extension is refused, by update and by signal alike.
        with pytest.raises(DecisionRejected) as err:
            await client.decide(no, decided("case_filing", "extended", reason="再次延长"), workflow_id=handle.id)
        assert "already extended once" in err.value.reason
        await handle.signal("decide", decided("case_filing", "extended", reason="再次延长"))
        status = await wait_for(handle, lambda s: sum(e.event == "rejected" for e in s.timeline) == 2)
        assert len(deadlines(status, "case_filing")) == 2
        row = await enforcement_case(pool, handle.id)
        assert row is not None and row["filing_due"] == second.due_date
        await client.decide(no, filed(), workflow_id=handle.id)
        await wait_for(handle, awaiting("case_outcome"))
        await terminate_when_idle(handle)


# --- case handling -------------------------------------------------------------------------------


async def test_missed_handling_period_escalates_and_is_extended_once(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle = await start(ts_env.client, task_queue)
        no = sample_no(handle)
        status = await to_outcome(client, handle)
        [first] = deadlines(status, "case_handling")
        await client.decide(no, decided("case_outcome", "extended", reason="经批准延长"), workflow_id=handle.id)
        status = await wait_for(handle, lambda s: len(deadlines(s, "case_handling")) == 2)
        second = deadlines(status, "case_handling")[1]
        assert (second.length, second.start) == (120, first.start)
        assert (second.due_date - first.due_date).days >= 28  # 30 days on, bar roll-over to a working day
        # The receipt came at once; the branch waits again once the extension is recorded.
        await wait_for(handle, lambda s: any(a.kind == "case_outcome" and a.due == second.due for a in s.awaiting))
        with pytest.raises(DecisionRejected, match="already extended once"):
            await client.decide(no, decided("case_outcome", "extended"), workflow_id=handle.id)
        await ts_env.sleep(timedelta(days=130))
        status = await wait_for(handle, awaiting("case_outcome", overdue=True))
        assert status.stage == "filed"
        assert (await search_attributes(handle))["Overdue"] is True
        assert await templates(pool, handle.id) == ["case_transfer", "deadline_escalation"]
        await client.decide(no, decided("case_outcome", "no_penalty", reason="违法行为轻微并及时改正"),
                            workflow_id=handle.id)
        report = await handle.result()
        assert report.outcome == "no_penalty"
    row = await enforcement_case(pool, handle.id)
    assert row is not None
    assert (row["outcome"], row["outcome_due"], row["fine_amount"]) == ("no_penalty", second.due_date, None)


# --- criminal transfer ---------------------------------------------------------------------------


async def test_suspected_crime_is_transferred_and_its_receipt_recorded(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle = await start(ts_env.client, task_queue)
        no = sample_no(handle)
        await to_outcome(client, handle)
        await client.decide(no, decided("case_outcome", "crime_suspected", reason="货值金额逾五万元，涉嫌生产、销售伪劣产品罪"),
                            workflow_id=handle.id)
        status = await wait_for(handle, awaiting("crime_transfer_decision"))
        assert status.stage == "crime_review"
        assert deadlines(status, "crime_decision")[0].unit == "calendar_days"
        await client.decide(no, decided("crime_transfer_decision", "transfer", reason="经局长批准移送"),
                            workflow_id=handle.id)
        status = await wait_for(handle, awaiting("crime_transfer_receipt"))
        assert status.stage == "transferred"
        [transfer] = deadlines(status, "crime_transfer")
        assert transfer.due - transfer.start == timedelta(hours=24)
        letter = [n for n in await notices_for(pool, handle.id) if n["template"] == "crime_transfer"][0]
        assert letter["title"] == "涉嫌犯罪案件移送书"
        for expected in (CASE_NO, "涉嫌生产、销售伪劣产品罪", "经局长批准移送", "330100 公安机关", "回执",
                         "ZJPQ-T-1", "案件移送函", "a" * 64, "第五条、第八条"):
            assert expected in letter["body"], expected
        [police] = [m for m in await outbox_for(pool, handle.id) if m["channel"] == "public_security"]
        assert police["payload"]["action"] == "transfer_crime"
        assert police["payload"]["letter"]["sha256"] == letter["sha256"]
        await client.decide(no, decided("crime_transfer_receipt", "received", role="public_security", reason=None),
                            workflow_id=handle.id)
        report = await handle.result()
        assert (report.outcome, report.data) == ("transferred", {})
    row = await enforcement_case(pool, handle.id)
    assert row is not None
    assert (row["crime_decision"], row["closed_outcome"], row["outcome"]) == ("transfer", "transferred", None)
    assert row["transferred_at"] is not None and row["transfer_receipt_at"] >= row["transferred_at"]


async def test_missed_crime_deadlines_escalate(ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle = await start(ts_env.client, task_queue)
        no = sample_no(handle)
        await to_outcome(client, handle)
        await client.decide(no, decided("case_outcome", "crime_suspected", reason="涉嫌犯罪"), workflow_id=handle.id)
        await wait_for(handle, awaiting("crime_transfer_decision", overdue=False))
        await ts_env.sleep(timedelta(days=6))
        await wait_for(handle, awaiting("crime_transfer_decision", overdue=True))
        await client.decide(no, decided("crime_transfer_decision", "transfer"), workflow_id=handle.id)
        await wait_for(handle, awaiting("crime_transfer_receipt", overdue=False))
        await ts_env.sleep(timedelta(hours=30))
        await wait_for(handle, awaiting("crime_transfer_receipt", overdue=True))
        assert (await search_attributes(handle))["Overdue"] is True
        assert await templates(pool, handle.id) == [
            "case_transfer", "deadline_escalation", "crime_transfer", "deadline_escalation"]
        await client.decide(no, decided("crime_transfer_receipt", "received", reason=None), workflow_id=handle.id)
        report = await handle.result()
        assert report.outcome == "transferred"


async def test_no_transfer_returns_to_the_case_outcome_under_the_same_period(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle = await start(ts_env.client, task_queue)
        no = sample_no(handle)
        status = await to_outcome(client, handle)
        [before] = [a.due for a in status.awaiting]
        await client.decide(no, decided("case_outcome", "crime_suspected", reason="疑似涉嫌犯罪"), workflow_id=handle.id)
        await wait_for(handle, awaiting("crime_transfer_decision"))
        await client.decide(no, decided("crime_transfer_decision", "no_transfer", reason="未达刑事立案追诉标准"),
                            workflow_id=handle.id)
        status = await wait_for(handle, awaiting("case_outcome"))
        assert status.stage == "filed"
        assert [a.due for a in status.awaiting] == [before]
        assert len(deadlines(status, "case_handling")) == 1
        await client.decide(no, penalty("8000", heavy=False), workflow_id=handle.id)
        report = await handle.result()
        assert (report.outcome, report.data) == ("penalty", {"fine_amount": "8000", "heavy": False})
    assert "crime_transfer" not in await templates(pool, handle.id)
    row = await enforcement_case(pool, handle.id)
    assert row is not None and (row["crime_decision"], row["closed_outcome"]) == ("no_transfer", "penalty")


# --- what the case is about ----------------------------------------------------------------------


async def test_refusal_letter_has_no_failed_items(ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str) -> None:
    def refused(raw: dict[str, Any]) -> None:
        raw.update(verdict="refused", failed_items=[], report_no=None,
                   evidence=[{"name": "拒检现场录像.mp4", "sha256": "c" * 64}], notices=[])

    async with running_worker(ts_env.client, pool, task_queue):
        handle = await start(ts_env.client, task_queue, context={"reason": "refusal"}, change=refused)
        await wait_for(handle, awaiting("case_filing"))
        [letter] = await notices_for(pool, handle.id)
        body = letter["body"]
        assert "拒绝接受依法进行的产品质量监督抽查" in body
        assert "拒检现场录像.mp4（SHA-256：" + "c" * 64 in body
        for absent in ("检验报告编号", "检验项目", "GB 4943.1", "检验结论为不合格"):
            assert absent not in body, absent
        await terminate_when_idle(handle)


async def test_a_lead_from_another_branch_is_worded_and_quoted(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue):
        reason = "rectification: rectification_missed"
        handle = await start(ts_env.client, task_queue, context={"reason": reason})
        await wait_for(handle, awaiting("case_filing"))
        [letter] = await notices_for(pool, handle.id)
        assert "逾期未完成整改" in letter["body"] and f"具体情况：{reason}" in letter["body"]
        await terminate_when_idle(handle)
    row = await enforcement_case(pool, handle.id)
    assert row is not None and row["reason"] == reason


async def test_merged_case_lists_every_sample(ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str) -> None:
    merged = [
        {"sample_no": "ZJ-A-001", "workflow_id": "sample-ZJ-A-001", "region": "330100", "batch": "20250715",
         "report_no": "ZJPQ-A-1"},
        {"sample_no": "ZJ-B-002", "workflow_id": "sample-ZJ-B-002", "region": "330200", "batch": "20250801",
         "report_no": "ZJPQ-B-2"},
        # A member recorded before report numbers were kept: the letter shows a dash.
        {"sample_no": "ZJ-C-003", "workflow_id": "sample-ZJ-C-003", "region": "330300", "batch": None},
    ]
    case_id = f"case-{uuid.uuid4().hex[:8]}"
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle = await start(ts_env.client, task_queue, wf_id=case_id,
                             context={"reason": "merged_case", "merged_samples": merged})
        await wait_for(handle, awaiting("case_filing"))
        [letter] = await notices_for(pool, handle.id)
        body = letter["body"]
        assert "跨区域并案移送" in body and "三批次" in body and "merged_case" not in body
        for s in merged:
            row = f"| {s['sample_no']} | {s.get('report_no') or '—'} | {s['region']} | {s['batch'] or '未标注'} |"
            assert row in body, row
        assert f"{case_id}-01" in body
        assert "深圳市市场监督管理局执法稽查部门" in body  # the labelled producer's locality
        [handover] = [m for m in await outbox_for(pool, case_id) if m["channel"] == "enforcement"]
        assert [s["sample_no"] for s in handover["payload"]["merged_samples"]] == ["ZJ-A-001", "ZJ-B-002", "ZJ-C-003"]
        await client.decide("ZJ-A-001", filed(), workflow_id=case_id)
        await wait_for(handle, awaiting("case_outcome"))
        await terminate_when_idle(handle)
    row = await enforcement_case(pool, case_id)
    assert row is not None
    assert row["sample_no"] is None and row["merged_samples"] == merged and row["case_no"] == CASE_NO


async def test_following_a_merged_case_closes_at_once(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        # Mid-branch: whatever it waits for, the branch closes in favour of the merged case.
        handle = await start(ts_env.client, task_queue)
        await to_outcome(client, handle)
        await handle.signal("follow_merged_case", "case-merged-1")
        report = await handle.result()
        assert (report.outcome, report.data, report.awaiting) == ("merged", {"merged_case": "case-merged-1"}, [])
        # Told before it handed anything over: nothing is rendered nor sent.
        early = await start(ts_env.client, task_queue, start_signal="follow_merged_case",
                            start_signal_args=["case-merged-2"])
        assert (await early.result()).outcome == "merged"
        # Overdue and escalated, still waiting for the filing: it closes too.
        late = await start(ts_env.client, task_queue)
        await wait_for(late, awaiting("case_filing"))
        await ts_env.sleep(timedelta(days=45))
        await wait_for(late, awaiting("case_filing", overdue=True))
        await late.signal("follow_merged_case", "case-merged-3")
        assert (await late.result()).data == {"merged_case": "case-merged-3"}
    row = await enforcement_case(pool, handle.id)
    assert row is not None
    assert (row["followed_case"], row["closed_outcome"], row["case_no"]) == ("case-merged-1", "merged", CASE_NO)
    assert await templates(pool, handle.id) == ["case_transfer"]
    assert await notices_for(pool, early.id) == [] and await outbox_for(pool, early.id) == []
    row = await enforcement_case(pool, early.id)
    assert row is not None and (row["followed_case"], row["handed_over_at"]) == ("case-merged-2", None)
