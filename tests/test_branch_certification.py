"""CertificationWorkflow (`sample-<no>-certification`) on the time-skipping server, started on its own (its
sample does not exist, which a branch tolerates): the certification body is told and suspends, revokes or
takes no action with a reason; a late answer escalates and is still taken; bad decisions; no certificate;
a worker restart mid-branch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.certification_records import certificate_action_rows
from activities.records import audit_trail, notices_for, outbox_for
from domain.branches import BranchInput, BranchStatus, branch_workflow_id
from domain.status import BranchReport
from starter.client import DecisionRejected
from tests import factories as f
from tests.workflow_env import branch_status as status
from tests.workflow_env import running_worker, search_attributes
from tests.workflow_env import wait_for_branch as until

CERTIFICATE = "2023011609765432"  # the CCC certificate of examples/orders/online.json
BODY = "中国质量认证中心"


async def start(client: Client, task_queue: str, **product: Any) -> tuple[WorkflowHandle[Any, BranchReport], str]:
    inp = f.branch_input("certification", "online", context={"certification_body": BODY})
    inp["order"]["product"].update(product)
    handle = await client.start_workflow(
        "CertificationWorkflow", BranchInput.model_validate(inp), task_queue=task_queue, result_type=BranchReport,
        id=branch_workflow_id(inp["sample_workflow_id"], "certification"),
    )
    return handle, inp["order"]["sample_no"]




def awaiting_action(s: BranchStatus) -> bool:
    return [a.kind for a in s.awaiting] == ["certificate_action"]




def action(outcome: str, role: str = "certification_body", **kw: Any) -> dict[str, Any]:
    return f.decision("certificate_action", outcome, role, **kw)


# --- happy paths --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [("suspended", None), ("revoked", None), ("none", "企业已于抽查前停产该型号并注销相关产品，证书已无效")],
    ids=["suspended", "revoked", "none"],
)
async def test_the_body_is_told_and_its_action_closes_the_branch(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, outcome: str, reason: str | None
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start(ts_env.client, task_queue)
        s = await until(handle, awaiting_action)
        assert (s.stage, s.awaiting[0].roles) == ("awaiting_action", ["case_officer", "certification_body"])
        receipt = await spot.decide(no, action(outcome, reason=reason, data={
            "certificate_no": CERTIFICATE, "reference": "CQC-2025-001", "effective_on": "2025-12-01"}),
            workflow_id=handle.id)
        assert receipt is not None and receipt.accepted
        result = await handle.result()
    assert (result.stage, result.outcome, result.closed) == ("closed", outcome, True)
    assert result.data["certificate_no"] == CERTIFICATE and result.data["reason"] == reason
    [letter] = await notices_for(pool, handle.id)
    assert letter["title"] == "关于强制性产品认证获证产品监督抽查不合格的告知函"
    body = letter["body"]
    assert f"{BODY}：" in body and f"CCC证书编号：{CERTIFICATE}" in body
    assert "输出电压" in body and "GB 4943.1-2022" in body  # failed item and its standard
    assert "第二十六条" in body and "暂停或者撤销" in body and "十个工作日内" in body
    [sent] = await outbox_for(pool, handle.id)
    assert (sent["channel"], sent["recipient"]) == ("certification", BODY)
    assert sent["payload"]["action"] == "notify_certification_body"
    assert (sent["payload"]["certificate_no"], sent["payload"]["notice_sha256"]) == (CERTIFICATE, letter["sha256"])
    [row] = await certificate_action_rows(pool, no)
    assert (row["certificate_no"], row["action"], row["reason"]) == (CERTIFICATE, outcome, reason)
    assert row["handover_reference"] == f"outbox:{sent['id']}"
    assert row["body_notified_at"] <= row["decided_at"]


async def test_a_product_without_a_ccc_certificate_fails_fast(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue):
        handle, no = await start(ts_env.client, task_queue, ccc_certificate=None)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "NoCccCertificate" and cause.non_retryable
    assert await notices_for(pool, handle.id) == [] and await outbox_for(pool, handle.id) == []
    assert await certificate_action_rows(pool, no) == []


# --- deadline -----------------------------------------------------------------------------------------


async def test_a_late_certificate_action_escalates_and_is_still_taken(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start(ts_env.client, task_queue)
        wait = (await until(handle, awaiting_action)).awaiting[0]
        assert (wait.rule_id, wait.overdue) == ("certificate_action", False)
        await ts_env.sleep(wait.due_at - await ts_env.get_current_time() + timedelta(hours=1))
        s = await until(handle, lambda s: awaiting_action(s) and s.awaiting[0].overdue)
        assert any(e.event == "escalated" for e in s.timeline)
        attrs = await search_attributes(handle)
        assert attrs["Overdue"] is True and attrs["Stage"] == "certification:awaiting_action"
        await spot.decide(no, action("revoked", "case_officer"), workflow_id=handle.id)
        result = await handle.result()
    assert result.outcome == "revoked"
    assert [n["template"] for n in await notices_for(pool, handle.id)] == [
        "certification_notice", "deadline_escalation"]
    channels = [m["channel"] for m in await outbox_for(pool, handle.id)]
    assert channels.count("escalation") == 1 and channels.count("reminder") == 1
    [row] = await certificate_action_rows(pool, no)
    assert row["action"] == "revoked"


# --- bad decisions ------------------------------------------------------------------------------------

BAD: list[tuple[dict[str, Any], str]] = [
    (action("none"), "reason: required for certificate_action=none"),
    (action("suspended", "enterprise"),
     "role enterprise may not decide certificate_action=suspended; allowed: case_officer, certification_body"),
    (action("withdrawn"), "unknown outcome 'withdrawn' for certificate_action"),
    (f.decision("recall_plan", "submitted", "enterprise"),
     "not awaited: the sample waits for certificate_action, not recall_plan"),
    (action("revoked", data={"certificate_no": "2020010000000001"}),
     "data.certificate_no: 2020010000000001 is not this product's certificate (2023011609765432)"),
    (action("revoked", data={"effective_on": "next week"}), "malformed data for certificate_action: data.effective_on"),
    (action("revoked", data={"colour": "red"}),
     "malformed data for certificate_action: data.colour: Extra inputs are not permitted"),
    ({"kind": "certificate_action", "outcome": "revoked", "request_id": "rq-no-actor"},
     "malformed decision: actor: Field required"),
]


async def test_bad_certificate_actions_by_update_are_refused_with_the_reason(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start(ts_env.client, task_queue)
        await until(handle, awaiting_action)
        for bad, reason in BAD:
            with pytest.raises(DecisionRejected) as err:
                await spot.decide(no, f.copy_of(bad), workflow_id=handle.id)
            assert reason in err.value.reason
        raw = await handle.execute_update("submit_decision", action("suspended", "platform"))
        assert raw["accepted"] is False and "role platform may not decide" in raw["reason"]
        await spot.decide(no, action("suspended"), workflow_id=handle.id)
        result = await handle.result()
    assert result.outcome == "suspended"
    history = await handle.fetch_history()
    # Every attempt is admitted and answered: the bad ones, the raw one and the good one.
    assert sum(1 for e in history.events
               if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED) == len(BAD) + 2
    trail = await audit_trail(pool, handle.id)
    assert sum(1 for r in trail if not r["accepted"]) == len(BAD) + 1  # one row each, by the workflow
    assert [r["outcome"] for r in trail if r["accepted"]] == ["suspended"]


async def test_bad_certificate_actions_by_signal_are_recorded_and_never_stall_the_branch(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start(ts_env.client, task_queue)
        await until(handle, awaiting_action)
        for bad, _ in BAD:
            await handle.signal("decide", f.copy_of(bad))
        await handle.signal("decide", ["not", "an", "object"])
        await spot.decide(no, action("none", reason="证书已于抽查前注销"), signal=True, workflow_id=handle.id)
        result = await handle.result()
        timeline = (await status(handle)).timeline  # a closed workflow answers queries through a worker
    assert (result.outcome, result.data["reason"]) == ("none", "证书已于抽查前注销")
    rejected = [e.text for e in timeline if e.event == "rejected"]
    assert len(rejected) == len(BAD) + 1
    for (_, reason), text in zip(BAD, rejected, strict=False):
        assert reason in text
    trail = await audit_trail(pool, handle.id)
    assert sum(1 for r in trail if not r["accepted"] and r["via"] == "signal") == len(BAD) + 1


# --- restart ------------------------------------------------------------------------------------------


async def test_certification_records_and_notices_exist_once_after_a_worker_restart(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue, max_cached_workflows=0):
        handle, no = await start(ts_env.client, task_queue)
        await until(handle, awaiting_action)
    # The first worker is gone mid-branch; a new one on the same task queue replays and carries on.
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        await spot.decide(no, action("suspended"), workflow_id=handle.id)
        result = await handle.result()
    assert result.outcome == "suspended"
    assert [n["template"] for n in await notices_for(pool, handle.id)] == ["certification_notice"]
    assert [m["channel"] for m in await outbox_for(pool, handle.id)] == ["certification"]
    [row] = await certificate_action_rows(pool, no)
    assert row["action"] == "suspended" and row["handover_reference"]
    assert [r["kind"] for r in await audit_trail(pool, handle.id)] == ["certificate_action"]
