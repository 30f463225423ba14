"""LeadWorkflow (检监联动) on the time-skipping server, with real records: a lead found while buying is fixed
with its evidence hashes, referred to its line, and its outcome flows back. Bad decisions, a worker restart
and a late outcome: tests/test_branch_contracts.py."""

from __future__ import annotations

from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.records import notices_for, outbox_for
from domain.status import BranchReport
from tests import factories as f
from tests.test_branch_platform import events, start_branch, wait_branch, waits_for
from tests.workflow_env import running_worker, search_attributes

EVIDENCE = [{"name": "商品详情页截图.png", "sha256": "1" * 64}, {"name": "直播录屏.mp4", "sha256": "2" * 64}]


def _input(lead_type: str = "false_advertising", *, lead_no: int = 1, channel: str = "online",
           lead: dict[str, Any] | None = None) -> dict[str, Any]:
    lead = lead or {"type": lead_type, "description": "宣称“军工级电芯”，无任何依据", "evidence": EVIDENCE}
    return f.branch_input("lead", channel, context={"lead_no": lead_no, "lead": lead})


async def _start(client: Client, task_queue: str, inp: dict[str, Any]) -> WorkflowHandle[Any, BranchReport]:
    wf_id = f"{inp['sample_workflow_id']}-lead-{inp['context']['lead_no']}"
    return await start_branch(client, task_queue, "LeadWorkflow", inp, wf_id)


def _outcome(outcome: str = "confirmed", role: str = "enforcement", **kw: Any) -> dict[str, Any]:
    return f.decision("lead_outcome", outcome, role, **kw)


async def _lead_row(pool: asyncpg.Pool, workflow_id: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM leads WHERE workflow_id = $1", workflow_id)
    assert row is not None
    return row


async def test_a_false_advertising_lead_goes_to_the_advertising_line_and_comes_back_confirmed(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    inp = _input(lead_no=2)
    no = inp["order"]["sample_no"]
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle = await _start(ts_env.client, task_queue, inp)
        assert handle.id == f"sample-{no}-lead-2"
        status = await wait_branch(handle, waits_for("lead_outcome"))
        assert status.stage == "referred" and status.data["routed_to"] == "广告监管"
        assert status.awaiting[0].rule_id == "lead_outcome"
        assert (await search_attributes(handle))["Stage"] == "lead:referred"
        row = await _lead_row(pool, handle.id)
        assert (row["lead_no"], row["type"], row["routed_to"]) == (2, "false_advertising", "广告监管")
        assert [e["sha256"] for e in row["evidence"]] == ["1" * 64, "2" * 64]
        assert row["outcome"] is None
        await client.decide(no, _outcome(data={"case_no": "杭市监广案〔2026〕12号"}), workflow_id=handle.id)
        report = await handle.result()
    assert (report.stage, report.outcome, report.closed) == ("closed", "confirmed", True)
    assert report.data["case_no"] == "杭市监广案〔2026〕12号" and report.data["lead_no"] == 2
    row = await _lead_row(pool, handle.id)
    assert (row["outcome"], row["closed_at"] is not None) == ("confirmed", True)
    assert row["handover_reference"].startswith("outbox:")
    [notice] = await notices_for(pool, handle.id)
    assert notice["template"] == "lead_referral" and notice["title"] == "问题线索移送函"
    for text in ("广告监管部门", "虚假宣传", "军工级电芯", "1" * 64, "2" * 64, "二十个工作日"):
        assert text in notice["body"], text
    [out] = await outbox_for(pool, handle.id)
    assert (out["channel"], out["recipient"], out["payload"]["action"]) == ("enforcement", "广告监管", "refer_lead")


async def test_an_unfounded_certificate_lead_closes_with_the_reason(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    inp = _input("forged_certificate", channel="livestream")
    no = inp["order"]["sample_no"]
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle = await _start(ts_env.client, task_queue, inp)
        status = await wait_branch(handle, waits_for("lead_outcome"))
        assert status.data["routed_to"] == "认证监管、执法稽查"
        await client.decide(no, _outcome("unfounded", "online_officer", reason="证书经核实有效"),
                            workflow_id=handle.id)
        report = await handle.result()
        # The outcome flows back into the timeline the sample shows.
        status = await wait_branch(handle, lambda s: s.closed)
        assert any("unfounded: 证书经核实有效" in t for t in events(status, "lead_outcome"))
    assert report.outcome == "unfounded" and report.data["outcome_reason"] == "证书经核实有效"
    row = await _lead_row(pool, handle.id)
    assert (row["outcome"], row["outcome_reason"]) == ("unfounded", "证书经核实有效")


async def test_a_malformed_lead_closes_the_branch_instead_of_failing_it(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    inp = _input(lead={"type": "rumour", "description": "?"})
    async with running_worker(ts_env.client, pool, task_queue):
        handle = await _start(ts_env.client, task_queue, inp)
        report = await handle.result()
    assert (report.outcome, report.closed) == ("invalid_input", True)
    assert await pool.fetchval("SELECT count(*) FROM leads WHERE workflow_id = $1", handle.id) == 0
