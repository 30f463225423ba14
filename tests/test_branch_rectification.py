"""RectificationWorkflow (`sample-<no>-rectification`) per Order 18 chapter 6 on the time-skipping server,
started on its own (its sample does not exist, which a branch tolerates): correction met and the 复查 passed,
then the follow-up sample; a failed 复查 → provincial 公告 → the second 复查 in its window (refused before it)
→ 停业整顿 → 复查 failed again → licence-revocation proposal; no report by the end of the correction period;
the order notice prints the rule pack's periods. Bad decisions, a worker restart, an overdue 复查 and
continue-as-new: tests/test_branch_contracts.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.calendar import CHINA, is_working_day
from activities.notices import cn_date
from activities.records import audit_trail, notices_for, outbox_for
from activities.rectification_records import rectification_rows
from activities.result_handling_records import re_inspection_rows, result_handover_rows
from activities.rule_packs import RULE_OVERRIDES_ENV
from domain.branches import BranchInput, BranchStatus, branch_workflow_id
from domain.status import BranchReport, SampleStatus
from starter.client import DecisionRejected, SpotcheckClient
from tests import factories as f
from tests.workflow_env import record_history, running_worker, search_attributes, terminate_when_idle
from tests.workflow_env import wait_for_branch as until

# --- driving the branch --------------------------------------------------------------------------------


async def start(client: Client, task_queue: str, channel: str = "online") -> tuple[WorkflowHandle[Any, Any], str]:
    inp = f.branch_input("rectification", channel)
    handle = await client.start_workflow(
        "RectificationWorkflow", BranchInput.model_validate(inp), task_queue=task_queue, result_type=BranchReport,
        id=branch_workflow_id(inp["sample_workflow_id"], "rectification"),
    )
    return handle, inp["order"]["sample_no"]




def awaiting(*kinds: str) -> Callable[[BranchStatus], bool]:
    return lambda s: sorted(a.kind for a in s.awaiting) == sorted(kinds)


def wait_of(s: BranchStatus, kind: str) -> Any:
    return next(a for a in s.awaiting if a.kind == kind)


def china_day(s: BranchStatus, kind: str) -> date:
    return wait_of(s, kind).due.astimezone(CHINA).date()


async def sleep_past(ts_env: WorkflowEnvironment, s: BranchStatus, kind: str, extra: timedelta) -> None:
    """Skip to `extra` after the due time of the wait for `kind`."""
    await ts_env.sleep(wait_of(s, kind).due_at - await ts_env.get_current_time() + extra)


def roll(d: date) -> date:
    while not is_working_day(d)[0]:
        d += timedelta(days=1)
    return d


def report() -> dict[str, Any]:
    return f.decision("rectification_report", "submitted", "enterprise")


def re_inspection(outcome: str, reason: str | None = None, **data: Any) -> dict[str, Any]:
    reason = reason or ("复查不合格：输出电压仍超出标准要求" if outcome == "fail" else None)
    return f.decision("re_inspection", outcome, "case_officer", reason=reason, data=data)


def announcement(on: date) -> dict[str, Any]:
    return f.decision("provincial_announcement", "announced", "case_officer",
                      data={"announced_on": str(on), "announcement_no": "浙市监公告〔2026〕7号"})


def suspension(days: int) -> dict[str, Any]:
    return f.decision("suspension_order", "ordered", "enforcement", data={"days": days, "decision_no": "杭市监停〔2026〕3号"})


async def decide(spot: SpotcheckClient, handle: WorkflowHandle[Any, Any], no: str, d: dict[str, Any]) -> None:
    receipt = await spot.decide(no, d, workflow_id=handle.id)
    assert receipt is not None and receipt.accepted


async def rejected(spot: SpotcheckClient, handle: WorkflowHandle[Any, Any], no: str, d: dict[str, Any]) -> str:
    with pytest.raises(DecisionRejected) as err:
        await spot.decide(no, d, workflow_id=handle.id)
    return err.value.reason


async def today(ts_env: WorkflowEnvironment) -> date:
    return (await ts_env.get_current_time()).astimezone(CHINA).date()


async def sleep_until(ts_env: WorkflowEnvironment, day: date, extra: timedelta = timedelta(hours=1)) -> None:
    """Skip to `extra` after the end of the China `day`."""
    end = datetime.combine(day, time(23, 59, 59), tzinfo=CHINA)
    await ts_env.sleep(end - await ts_env.get_current_time() + extra)


# --- tests ---------------------------------------------------------------------------------------------


async def test_correction_met_the_re_inspection_passes_and_starts_the_follow_up_sample(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start(ts_env.client, task_queue)
        s = await until(handle, awaiting("rectification_report"))  # Order 18 has no extension: no such wait
        assert s.stage == "ordered"
        start_day = s.deadlines[0].start.astimezone(CHINA).date()
        due = china_day(s, "rectification_report")
        assert due == roll(start_day + timedelta(days=60))  # Art. 46
        re_due = roll(start_day + timedelta(days=75))  # Art. 47
        assert s.data == {"due": str(due), "re_inspection_due": str(re_due)}
        assert (await search_attributes(handle))["Stage"] == "rectification:ordered"

        order = (await notices_for(pool, handle.id))[0]
        assert order["template"] == "rectification_order" and order["title"] == "责令整改通知书"
        for text in ("义乌闪充数码专营店", "移动电源", "GB 4943.1-2022", "第四十六条", "六十日内", cn_date(due),
                     "第四十五条", "立即停止销售同一产品", "第四十七条", "七十五日内", cn_date(re_due),
                     "无偿提供", "六十日后九十日前", "吊销营业执照", f"{no}-ZG01"):
            assert text in order["body"], text
        assert "延期" not in order["body"]

        assert "not awaited" in await rejected(spot, handle, no, re_inspection("pass"))
        await ts_env.sleep(timedelta(days=20))
        await decide(spot, handle, no, report())
        s = await until(handle, awaiting("re_inspection"))
        assert s.stage == "re_inspection" and china_day(s, "re_inspection") == re_due
        # Art. 49: the 复查 sample is the party's, free; a fail must say why.
        assert "sample_provided_free" in await rejected(spot, handle, no, re_inspection("pass", sample_provided_free=False))
        assert "reason: required" in await rejected(
            spot, handle, no, f.decision("re_inspection", "fail", "case_officer"))
        await decide(spot, handle, no, re_inspection("pass", report_no="FJ-2026-001"))
        s = await until(handle, lambda s: s.stage == "follow_up_scheduled")
        follow_due = date.fromisoformat(s.data["follow_up_due"])

        await ts_env.sleep(timedelta(days=100))
        s = await until(handle, lambda s: s.closed)
        follow_up = ts_env.client.get_workflow_handle(f"sample-{no}-FU1")
        fu = await follow_up.query("status", result_type=SampleStatus)
        assert fu.sample_no == f"{no}-FU1" and fu.stage == "sampling" and "follow_up" in fu.summary
        await terminate_when_idle(follow_up)
        result = await handle.result()
        await record_history(handle)

    assert (result.outcome, result.enforcement_lead) == ("accepted", None)
    [row] = await rectification_rows(pool, no)
    assert (row["re_inspection_outcome"], row["closed_outcome"], row["follow_up_sample_no"]) == (
        "pass", "accepted", f"{no}-FU1")
    assert row["report_at"] is not None and row["re_inspection_due"].astimezone(CHINA).date() == re_due
    [inspection] = await re_inspection_rows(pool, no)
    assert (inspection["round"], inspection["outcome"], inspection["report_no"], inspection["sample_provided_free"]) \
        == ("first", "pass", "FJ-2026-001", True)
    assert await result_handover_rows(pool, no) == []
    notices = await notices_for(pool, handle.id)
    assert [n["template"] for n in notices] == ["rectification_order", "re_inspection_result"]
    body = notices[1]["body"]
    assert notices[1]["title"] == "复查结论通知书"
    for text in ("复查结论为：合格", "可以恢复销售同一产品", cn_date(follow_due), "跟踪抽查", f"{no}-ZG01", "无偿提供"):
        assert text in body, text


async def test_failed_re_inspection_announcement_second_window_suspension_then_licence_revocation(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start(ts_env.client, task_queue, "offline_production")
        await until(handle, awaiting("rectification_report"))
        await decide(spot, handle, no, report())
        await until(handle, awaiting("re_inspection"))
        await ts_env.sleep(timedelta(days=70))
        failed_on = await today(ts_env)
        await decide(spot, handle, no, re_inspection("fail"))
        s = await until(handle, awaiting("provincial_announcement"))
        assert s.stage == "announcement"

        # The 公告, dated between the failed 复查 and today; its date opens the window 60-90 days after it.
        announced = failed_on + timedelta(days=3)
        await ts_env.sleep(timedelta(days=5))
        assert "data.announced_on: must lie between" in await rejected(
            spot, handle, no, announcement(await today(ts_env) + timedelta(days=1)))
        await decide(spot, handle, no, announcement(announced))
        s = await until(handle, lambda s: s.stage == "second_window")
        opens, closes = announced + timedelta(days=60), announced + timedelta(days=90)
        assert s.data["second_window"] == f"{opens}/{closes}" and not s.awaiting
        too_early = await rejected(spot, handle, no, re_inspection("pass"))
        assert "too early" in too_early and "第四十八条" in too_early and str(opens) in too_early

        await sleep_until(ts_env, opens)
        s = await until(handle, awaiting("re_inspection"))
        assert s.stage == "second_re_inspection" and china_day(s, "re_inspection") == closes
        await decide(spot, handle, no, re_inspection("fail"))
        s = await until(handle, awaiting("suspension_order"))
        assert s.stage == "suspension"
        assert "role case_officer may not" in await rejected(
            spot, handle, no, {**suspension(30), "actor": {"id": "t", "role": "case_officer"}})
        await decide(spot, handle, no, suspension(30))
        s = await until(handle, lambda s: s.stage == "suspended")
        ends = date.fromisoformat(s.data["suspension_ends"])
        assert ends >= await today(ts_env) + timedelta(days=30)
        assert "too early: the 复查 after the 整顿 period" in await rejected(spot, handle, no, re_inspection("pass"))

        await sleep_until(ts_env, ends)
        s = await until(handle, awaiting("re_inspection"))
        assert s.stage == "final_re_inspection"
        await decide(spot, handle, no, re_inspection("fail", reason="整顿期满后复查仍不合格"))
        result = await handle.result()
        await record_history(handle)

    assert result.outcome == "revocation_proposed"
    [row] = await rectification_rows(pool, no)
    assert (row["announced_on"], row["announcement_no"], row["suspension_days"], row["closed_outcome"]) == (
        announced, "浙市监公告〔2026〕7号", 30, "revocation_proposed")
    assert [(r["round"], r["outcome"]) for r in await re_inspection_rows(pool, no)] == [
        ("first", "fail"), ("second", "fail"), ("after_suspension", "fail")]
    handovers = await result_handover_rows(pool, no)
    assert [h["action"] for h in handovers] == [
        "report_for_announcement", "order_suspension", "propose_licence_revocation"]
    assert "第四十七条" in handovers[0]["basis"] and "第十七条" in handovers[1]["basis"]
    outbox = {m["step_id"]: m for m in await outbox_for(pool, handle.id)}
    for h in handovers:  # each through the outbox once, its record naming the message
        assert h["reference"] == f"outbox:{outbox[h['step_id']]['id']}"
    assert outbox["suspension-order"]["channel"] == "enforcement"
    assert outbox["licence-revocation-proposal"]["channel"] == "registration"
    notices = await notices_for(pool, handle.id)
    assert [n["template"] for n in notices] == ["rectification_order", *["re_inspection_result"] * 3]
    first, second, last = (n["body"] for n in notices[1:])
    assert "复查结论为：不合格" in first and "由其向社会公告" in first and "六十日后九十日前" in first
    assert "责令停业，限期整顿" in second and "吊销营业执照的建议" in last
    decided = [r for r in await audit_trail(pool, handle.id) if r["kind"] == "re_inspection"]
    assert sum(r["accepted"] for r in decided) == 3 and any("too early" in (r["reason"] or "") for r in decided)


async def test_no_report_by_the_end_of_the_correction_period_still_leads_to_the_re_inspection(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start(ts_env.client, task_queue)
        s = await until(handle, awaiting("rectification_report"))
        due = china_day(s, "rectification_report")
        await sleep_until(ts_env, due)
        s = await until(handle, awaiting("re_inspection"))
        assert any(e.event == "no_report" and "Order 18 Art. 47" in e.text for e in s.timeline)
        assert "no longer accepted" in await rejected(spot, handle, no, report())
        await decide(spot, handle, no, re_inspection("pass"))
        await until(handle, lambda s: s.stage == "follow_up_scheduled")
        await terminate_when_idle(handle)
    [row] = await rectification_rows(pool, no)
    assert (row["report_at"], row["re_inspection_outcome"]) == (None, "pass")
    outbox = await outbox_for(pool, handle.id)
    assert [m["step_id"] for m in outbox if m["channel"] == "reminder"] == ["reminder-rectification_report-1"]


async def test_the_order_notice_prints_the_periods_of_the_rule_pack(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed rule changes the notice: the lengths and due dates come from the pack, never constants."""
    monkeypatch.setenv(RULE_OVERRIDES_ENV, json.dumps({
        "rectification": {"length": 45}, "re_inspection": {"length": 50},
        "second_re_inspection_opens": {"length": 30}, "second_re_inspection": {"length": 40},
    }))
    async with running_worker(ts_env.client, pool, task_queue):
        handle, no = await start(ts_env.client, task_queue)
        s = await until(handle, awaiting("rectification_report"))
        start_day = s.deadlines[0].start.astimezone(CHINA).date()
        await terminate_when_idle(handle)
    due, re_due = roll(start_day + timedelta(days=45)), roll(start_day + timedelta(days=50))
    assert china_day(s, "rectification_report") == due
    body = (await notices_for(pool, handle.id))[0]["body"]
    for text in ("四十五日内", cn_date(due), "五十日内", cn_date(re_due), "三十日后四十日前"):
        assert text in body, text
    for constant in ("六十日内", "七十五日内", "九十日前"):
        assert constant not in body, constant
