"""RectificationWorkflow (`sample-<no>-rectification`) on the time-skipping server, started on its own (its
sample does not exist, which a branch tolerates): order, one extension decided in time, report, review,
follow-up sample; an extension too late, too long or a second one, a missed report, a rejected
rectification. Bad decisions, a worker restart and an overdue review: tests/test_branch_contracts.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.calendar import CHINA, is_working_day
from activities.notices import cn_date
from activities.records import audit_trail, notices_for, outbox_for
from activities.rectification_records import rectification_rows
from domain.branches import BranchInput, BranchStatus, branch_workflow_id
from domain.status import BranchReport, SampleStatus
from starter.client import DecisionRejected, SpotcheckClient
from tests import factories as f
from tests.workflow_env import branch_status as status
from tests.workflow_env import running_worker, search_attributes, terminate_when_idle
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


def extension(outcome: str = "granted", days: int | None = 10, role: str = "case_officer",
              reason: str | None = None) -> dict[str, Any]:
    data = {"days": days} if days is not None else {}
    return f.decision("rectification_extension", outcome, role, reason=reason, data=data)


def report() -> dict[str, Any]:
    return f.decision("rectification_report", "submitted", "enterprise")


def review(outcome: str, reason: str | None = "现场复查，已停止销售并清理库存，整改措施落实到位") -> dict[str, Any]:
    return f.decision("rectification_review", outcome, "case_officer", reason=reason)


async def decide(spot: SpotcheckClient, handle: WorkflowHandle[Any, Any], no: str, d: dict[str, Any]) -> None:
    receipt = await spot.decide(no, d, workflow_id=handle.id)
    assert receipt is not None and receipt.accepted


async def rejected(spot: SpotcheckClient, handle: WorkflowHandle[Any, Any], no: str, d: dict[str, Any]) -> str:
    with pytest.raises(DecisionRejected) as err:
        await spot.decide(no, d, workflow_id=handle.id)
    return err.value.reason


# --- tests ---------------------------------------------------------------------------------------------


async def test_extension_in_time_then_report_accepted_starts_the_follow_up_sample(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start(ts_env.client, task_queue)
        s = await until(handle, awaiting("rectification_report", "rectification_extension"))
        assert s.stage == "ordered"
        ordered = s.deadlines[0]
        start_day = ordered.start.astimezone(CHINA).date()
        first_due = china_day(s, "rectification_report")
        assert first_due == roll(start_day + timedelta(days=30))
        assert china_day(s, "rectification_extension") == first_due - timedelta(days=5)
        assert (await search_attributes(handle))["Stage"] == "rectification:ordered"

        order = (await notices_for(pool, handle.id))[0]
        assert order["template"] == "rectification_order" and order["title"] == "责令整改通知书"
        for text in ("义乌闪充数码专营店", "移动电源", "输出电压", "GB 4943.1-2022", "三十日", cn_date(first_due),
                     "届满五日前", "一次为限", "不超过三十日", "移交执法稽查", f"{no}-ZG01"):
            assert text in order["body"], text

        await ts_env.sleep(timedelta(days=10))
        await decide(spot, handle, no, extension(days=10))
        # The receipt comes at once; the branch then computes the extended period.
        s = await until(handle, lambda s: any(e.event == "extension" for e in s.timeline))
        new_due = china_day(s, "rectification_report")
        # Ten days more of one period from the same start (a roll-over to a working day is applied once).
        assert new_due == roll(start_day + timedelta(days=30 + 10)) and new_due > first_due
        assert any(e.event == "extension" and f"now due {new_due}" in e.text for e in s.timeline)
        assert s.data["due"] == str(new_due) and s.data["extended_days"] == 10

        # Past the first due date nothing is missed: the extended one is in force.
        await sleep_past(ts_env, s, "rectification_report", -timedelta(days=3))
        s = await status(handle)
        assert s.stage == "ordered" and not wait_of(s, "rectification_report").overdue
        await decide(spot, handle, no, report())
        s = await until(handle, awaiting("rectification_review"))
        assert s.stage == "review"
        await decide(spot, handle, no, review("accepted"))
        s = await until(handle, lambda s: s.stage == "follow_up_scheduled")
        follow_due = date.fromisoformat(s.data["follow_up_due"])

        # After the follow-up interval the follow-up sample runs as a sample of its own.
        await ts_env.sleep(timedelta(days=100))
        s = await until(handle, lambda s: s.closed)
        follow_up = ts_env.client.get_workflow_handle(f"sample-{no}-FU1")
        fu = await follow_up.query("status", result_type=SampleStatus)
        assert fu.sample_no == f"{no}-FU1" and fu.stage == "sampling" and "follow_up" in fu.summary
        attrs = await search_attributes(follow_up)
        assert attrs["TaskType"] == "follow_up" and attrs["SampleNo"] == f"{no}-FU1"
        # Ended before asking for the branch's result: waiting on a result lets the test server skip time,
        # and the follow-up sample would run on to its own execution timeout.
        await terminate_when_idle(follow_up)
        result = await handle.result()

    assert (result.outcome, result.enforcement_lead) == ("accepted", None)
    assert result.data["follow_up_sample_no"] == f"{no}-FU1"
    fu_order = (await pool.fetchrow("SELECT \"order\" FROM samples WHERE sample_no = $1", f"{no}-FU1"))["order"]
    assert fu_order["follows_sample_no"] == no and fu_order["task_type"] == "follow_up"
    assert fu_order["product"]["model"] == "SC-20000" and fu_order["sampled_party"]["name"] == "义乌闪充数码专营店"
    [row] = await rectification_rows(pool, no)
    assert (row["extension_outcome"], row["extended_days"], row["review_outcome"]) == ("granted", 10, "accepted")
    assert row["due"].astimezone(CHINA).date() == new_due
    assert (row["follow_up_sample_no"], row["closed_outcome"]) == (f"{no}-FU1", "accepted")
    notices = await notices_for(pool, handle.id)
    assert [n["template"] for n in notices] == ["rectification_order", "rectification_review"]
    assert "整改合格" in notices[1]["body"] and cn_date(follow_due) in notices[1]["body"]
    assert "跟踪抽查" in notices[1]["body"] and f"{no}-ZG01" in notices[1]["body"]
    outbox = await outbox_for(pool, handle.id)
    assert [m["subject"] for m in outbox if m["channel"] == "extension"] == [
        f"延期整改: 整改期限延长10日，至 {new_due} 届满"]
    # Reminded once, of the due date in force (the first one was replaced before its reminder).
    assert [m["step_id"] for m in outbox if m["channel"] == "reminder"] == [f"reminder-rectification_report-{new_due}"]


async def test_extension_too_late_is_refused_and_a_rejected_rectification_is_an_enforcement_lead(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start(ts_env.client, task_queue, "offline_production")
        s = await until(handle, awaiting("rectification_report", "rectification_extension"))
        last = china_day(s, "rectification_extension")
        await sleep_past(ts_env, s, "rectification_extension", timedelta(hours=2))
        s = await until(handle, awaiting("rectification_report"))
        reason = await rejected(spot, handle, no, extension(days=5))
        assert "too late" in reason and f"the last allowed date was {last}" in reason
        await handle.signal("decide", extension(days=5))
        await decide(spot, handle, no, report())
        await until(handle, awaiting("rectification_review"))
        assert "reason: required" in await rejected(spot, handle, no, review("rejected", reason=None))
        await decide(spot, handle, no, review("rejected", reason="库存不合格产品未清理，整改措施未落实"))
        result = await handle.result()

    assert result.outcome == "rejected"
    assert result.enforcement_lead == "rectification rejected on review: 库存不合格产品未清理，整改措施未落实"
    late = [r for r in await audit_trail(pool, handle.id) if r["kind"] == "rectification_extension"]
    assert len(late) == 2 and not any(r["accepted"] for r in late)
    assert all(f"the last allowed date was {last}" in r["reason"] for r in late)
    [row] = await rectification_rows(pool, no)
    assert (row["extension_outcome"], row["review_outcome"], row["closed_outcome"]) == (None, "rejected", "rejected")
    assert row["follow_up_sample_no"] is None
    templates = [n["template"] for n in await notices_for(pool, handle.id)]
    assert templates == ["rectification_order", "rectification_review"]
    body = (await notices_for(pool, handle.id))[-1]["body"]
    assert "整改不合格" in body and "移交执法稽查" in body and "库存不合格产品未清理" in body


async def test_one_extension_only_and_a_missed_deadline_is_an_enforcement_lead(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start(ts_env.client, task_queue)
        s = await until(handle, awaiting("rectification_report", "rectification_extension"))
        due = china_day(s, "rectification_report")
        assert "at most 30 days" in await rejected(spot, handle, no, extension(days=31))
        assert "reason: required" in await rejected(spot, handle, no, extension("refused", days=None))
        await decide(spot, handle, no, extension("refused", days=None, reason="不属于不可抗力等特殊原因"))
        s = await until(handle, awaiting("rectification_report"))
        assert china_day(s, "rectification_report") == due  # a refusal moves nothing
        assert "one extension only" in await rejected(spot, handle, no, extension(days=5))
        result = await handle.result()  # nobody reports: time runs to the deadline

    assert result.outcome == "missed"
    assert result.enforcement_lead == f"rectification not reported by {due}"
    [row] = await rectification_rows(pool, no)
    assert (row["extension_outcome"], row["extended_days"], row["report_at"]) == ("refused", None, None)
    assert row["closed_outcome"] == "missed"
    outbox = await outbox_for(pool, handle.id)
    assert [m["step_id"] for m in outbox if m["channel"] == "reminder"] == [f"reminder-rectification_report-{due}"]
    assert [n["template"] for n in await notices_for(pool, handle.id)] == ["rectification_order"]
