"""CertificationWorkflow (`sample-<no>-certification`) on the time-skipping server, started on its own (its
sample does not exist, which a branch tolerates): the certification body is told and suspends, revokes or
takes no action with a reason; no certificate. Bad decisions, a worker restart and a late answer:
tests/test_branch_contracts.py."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.certification_records import certificate_action_rows
from activities.records import notices_for, outbox_for
from domain.branches import BranchInput, BranchStatus, branch_workflow_id
from domain.status import BranchReport
from tests import factories as f
from tests.workflow_env import running_worker
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
        assert s.awaiting[0].rule_id == "certificate_action"
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
