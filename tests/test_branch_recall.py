"""RecallWorkflow (`sample-<no>-recall`) on the time-skipping server, started on its own (its sample does
not exist, which a branch tolerates): defect assessment, voluntary and ordered recalls through plan,
progress reports and summary, every missed deadline, the recall's own bad decisions at each step. The
contracts every branch keeps (bad decisions, a worker restart, a late decision): tests/test_branch_contracts.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.recall_records import recall_rows
from activities.records import audit_trail, notices_for, outbox_for
from domain.branches import BranchInput, BranchStatus, branch_workflow_id
from domain.status import BranchReport
from starter.client import SpotcheckClient
from tests import factories as f
from tests.test_branch_contracts import refused
from tests.workflow_env import branch_status as status
from tests.workflow_env import running_worker, search_attributes
from tests.workflow_env import wait_for_branch as until

# --- driving a branch workflow ------------------------------------------------------------------------


async def start_recall(client: Client, task_queue: str) -> tuple[WorkflowHandle[Any, BranchReport], str]:
    inp = f.branch_input("recall", "online")
    handle = await client.start_workflow(
        "RecallWorkflow", BranchInput.model_validate(inp), task_queue=task_queue, result_type=BranchReport,
        id=branch_workflow_id(inp["sample_workflow_id"], "recall"),
    )
    return handle, inp["order"]["sample_no"]






def awaiting(kind: str, nth: int | None = None) -> Callable[[BranchStatus], bool]:
    """Waiting for `kind` alone, and (when given) in the nth wait opened: two waits of the same kind in a row
    (progress reports) are told apart."""
    return lambda s: [a.kind for a in s.awaiting] == [kind] and (nth is None or waits_opened(s) == nth)


def waits_opened(s: BranchStatus) -> int:
    return sum(1 for e in s.timeline if e.event == "awaiting")


async def decide(spot: SpotcheckClient, handle: WorkflowHandle[Any, Any], no: str, d: dict[str, Any],
                 then: str | None) -> None:
    """Send a decision by update (it must be accepted) and wait for the next wait, if any."""
    opened = waits_opened(await status(handle))
    receipt = await spot.decide(no, d, workflow_id=handle.id)
    assert receipt is not None and receipt.accepted
    if then:
        await until(handle, awaiting(then, opened + 1))


async def miss(ts_env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], kind: str) -> BranchStatus:
    """Let the wait for `kind` run past its deadline; answer the status once it shows overdue."""
    wait = (await until(handle, awaiting(kind))).awaiting[0]
    assert not wait.overdue
    await ts_env.sleep(wait.due_at - await ts_env.get_current_time() + timedelta(hours=1))
    return await until(handle, lambda s: bool(s.awaiting) and s.awaiting[0].overdue)


def assessment(outcome: str = "defect") -> dict[str, Any]:
    return f.decision("defect_assessment", outcome, "case_officer", data={"defect": "输出电压超限，存在过热起火风险"})


def progress(outcome: str, recovered: int) -> dict[str, Any]:
    return f.decision("recall_progress", outcome, "enterprise", data={"recovered": recovered})


PLAN = f.decision("recall_plan", "submitted", "enterprise", data={"plan_no": "ZH-1", "units": 500})
SUMMARY = f.decision("recall_summary", "submitted", "enterprise", data={"report_no": "ZJ-S1", "recovered": 480})


# --- happy paths --------------------------------------------------------------------------------------


async def test_no_defect_closes_the_branch_without_a_recall(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start_recall(ts_env.client, task_queue)
        await until(handle, awaiting("defect_assessment"))
        await decide(spot, handle, no, assessment("no_defect"), None)
        result = await handle.result()
    assert (result.stage, result.outcome, result.closed) == ("closed", "no_defect", True)
    [row] = await recall_rows(pool, no)
    assert (row["assessment"], row["recall_type"], row["closed_outcome"]) == ("no_defect", None, "no_defect")
    assert await notices_for(pool, handle.id) == []


@pytest.mark.parametrize(
    ("recall_type", "role", "title"),
    [("voluntary", "enterprise", "缺陷产品召回备案通知书"), ("ordered", "case_officer", "责令召回通知书")],
    ids=["voluntary", "ordered"],
)
async def test_recall_runs_from_decision_through_progress_to_summary(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, recall_type: str, role: str, title: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start_recall(ts_env.client, task_queue)
        await until(handle, awaiting("defect_assessment"))
        await decide(spot, handle, no, assessment(), "recall_decision")
        await decide(spot, handle, no, f.decision("recall_decision", recall_type, role), "recall_plan")
        await decide(spot, handle, no, f.copy_of(PLAN), "recall_progress")
        # Each period runs from the previous report: two reports 60 days apart never fall overdue, though
        # the second comes more than three months after the plan.
        for recovered in (120, 300):
            await ts_env.sleep(timedelta(days=60))
            await decide(spot, handle, no, progress("in_progress", recovered), "recall_progress")
        s = await status(handle)
        assert s.stage == "in_progress" and s.data == {"type": recall_type, "reports": 2}
        await decide(spot, handle, no, progress("completed", 480), "recall_summary")
        await decide(spot, handle, no, f.copy_of(SUMMARY), None)
        result = await handle.result()
        timeline = (await status(handle)).timeline  # a closed workflow answers queries through a worker
    assert (result.outcome, result.data) == ("recalled", {"type": recall_type, "reports": 3})
    stages = [e.text for e in timeline if e.event == "stage"]
    assert stages == [f"recall: {s}" for s in
                      ("defect_assessment", "recall_decision", "recall_plan", "in_progress", "summary", "closed")]
    [row] = await recall_rows(pool, no)
    assert (row["assessment"], row["recall_type"], row["closed_outcome"]) == ("defect", recall_type, "recalled")
    assert [(p["outcome"], p["data"]["recovered"], p["late"]) for p in row["progress"]] == [
        ("in_progress", 120, False), ("in_progress", 300, False), ("completed", 480, False)]
    assert row["plan_at"] < row["completed_at"] < row["summary_at"]
    notices = await notices_for(pool, handle.id)
    assert [n["title"] for n in notices] == [title]  # no escalation: nothing was late
    body = notices[0]["body"]
    assert "深圳闪充科技有限公司：" in body and "输出电压超限" in body and "GB 4943.1-2022" in body
    assert "十个工作日内" in body and "每三个月" in body and "十五个工作日内" in body
    assert ("责令你单位" in body) == (recall_type == "ordered")


# --- deadlines ----------------------------------------------------------------------------------------


async def test_every_missed_recall_deadline_escalates_and_the_late_decision_is_taken(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    steps = [
        ("defect_assessment", assessment(), "recall_incident_report"),
        ("recall_decision", f.decision("recall_decision", "ordered", "case_officer"), "recall_incident_report"),
        ("recall_plan", f.copy_of(PLAN), "recall_plan"),
        ("recall_progress", progress("in_progress", 100), "recall_progress"),
        ("recall_progress", progress("completed", 480), "recall_progress"),
        ("recall_summary", f.copy_of(SUMMARY), "recall_summary"),
    ]
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start_recall(ts_env.client, task_queue)
        for n, (kind, late, rule) in enumerate(steps, start=1):
            s = await miss(ts_env, handle, kind)
            assert (s.awaiting[0].kind, s.awaiting[0].rule_id) == (kind, rule)
            if n == 1:
                assert (await search_attributes(handle))["AwaitingRole"] == ["case_officer"]
            escalations = [x for x in await notices_for(pool, handle.id) if x["template"] == "deadline_escalation"]
            assert len(escalations) == n
            await spot.decide(no, late, workflow_id=handle.id)
            if n < len(steps):
                await until(handle, awaiting(steps[n][0], n + 1))
        result = await handle.result()
    assert (result.outcome, result.data) == ("recalled", {"type": "ordered", "reports": 2})
    [row] = await recall_rows(pool, no)
    assert [p["late"] for p in row["progress"]] == [True, True]
    outbox = await outbox_for(pool, handle.id)
    assert sum(1 for m in outbox if m["channel"] == "escalation") == len(steps)


# --- bad decisions at later waits (the first wait's: tests/test_branch_contracts.py) -----------------------

# The good decision at each wait, in order; one extra `completed` report ends the recall.
WALK: list[tuple[str, dict[str, Any]]] = [
    ("defect_assessment", assessment()),
    ("recall_decision", f.decision("recall_decision", "voluntary", "enterprise")),
    ("recall_plan", PLAN),
    ("recall_progress", progress("in_progress", 100)),
    ("recall_progress", progress("completed", 480)),
    ("recall_summary", SUMMARY),
]

# step of WALK -> (what is wrong, bad decision, reason)
BAD: dict[int, list[tuple[str, dict[str, Any], str]]] = {
    1: [("enterprise orders", f.decision("recall_decision", "ordered", "enterprise"),
         "role enterprise may not decide recall_decision=ordered; allowed: case_officer"),
        ("negative units", f.decision("recall_decision", "voluntary", "enterprise", data={"units": -5}),
         "malformed data for recall_decision: data.units: Input should be greater than or equal to 0")],
    2: [("summary before the plan", f.decision("recall_summary", "submitted", "enterprise"),
         "not awaited: the sample waits for recall_plan, not recall_summary")],
    4: [("fewer recovered", progress("in_progress", 50),
         "data.recovered: 50 is fewer than the 100 units already reported recovered"),
        ("lab reports progress", f.decision("recall_progress", "completed", "lab"),
         "role lab may not decide recall_progress=completed")],
    5: [("no actor", {"kind": "recall_summary", "outcome": "submitted", "request_id": "rq-no-actor"},
         "malformed decision: actor: Field required")],
}


async def test_bad_recall_decisions_at_each_step_are_refused_and_the_recall_goes_on(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start_recall(ts_env.client, task_queue)
        for step, (kind, good) in enumerate(WALK):
            await until(handle, awaiting(kind, step + 1))
            if step in BAD:
                await refused(spot, handle, no, BAD[step])
            await decide(spot, handle, no, f.copy_of(good), None)
        result = await handle.result()
    assert (result.outcome, result.data) == ("recalled", {"type": "voluntary", "reports": 2})
    trail = await audit_trail(pool, handle.id)
    assert sum(not r["accepted"] for r in trail) == sum(len(b) for b in BAD.values())  # once per request id
    assert [r["kind"] for r in trail if r["accepted"]] == [k for k, _ in WALK]
