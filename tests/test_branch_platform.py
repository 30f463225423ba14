"""PlatformWorkflow (网抽) on the time-skipping server, with real records: delisting requested through the
platform's 监管处置自动触发, confirmed or refused; the shop's fail and the key list. Bad decisions, a worker
restart and a late confirmation: tests/test_branch_contracts.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.records import notices_for, outbox_for
from activities.registers import RegisterRequest, Registers
from domain.branches import BranchStatus
from domain.status import BranchReport
from tests import factories as f
from tests.workflow_env import running_worker, search_attributes

# --- helpers shared with test_branch_lead.py -------------------------------------------------------------


async def start_branch(client: Client, task_queue: str, workflow: str, inp: dict[str, Any],
                       workflow_id: str) -> WorkflowHandle[Any, BranchReport]:
    return await client.start_workflow(workflow, inp, id=workflow_id, task_queue=task_queue,
                                       result_type=BranchReport)


async def branch_status(handle: WorkflowHandle[Any, Any]) -> BranchStatus:
    return await handle.query("status", result_type=BranchStatus)


async def wait_branch(handle: WorkflowHandle[Any, Any], check: Callable[[BranchStatus], bool],
                      within: float = 30.0) -> BranchStatus:
    """Poll the branch's status query until `check` holds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status = await branch_status(handle)
        if check(status):
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out; stage={status.stage} awaiting={[a.kind for a in status.awaiting]}")
        await asyncio.sleep(0.1)


def waits_for(kind: str) -> Callable[[BranchStatus], bool]:
    return lambda s: any(a.kind == kind for a in s.awaiting)


def events(status: BranchStatus | BranchReport, name: str) -> list[str]:
    assert isinstance(status, BranchStatus)
    return [e.text for e in status.timeline if e.event == name]


# --- this branch -------------------------------------------------------------------------------------------


def _input(channel: str = "online") -> dict[str, Any]:
    inp = f.branch_input("platform", channel)
    if inp["order"].get("platform"):
        inp["order"]["platform"]["shop_id"] = f"S-{uuid.uuid4().hex[:8]}"  # a shop of this test's own
    return inp


async def _start(client: Client, task_queue: str, inp: dict[str, Any]) -> WorkflowHandle[Any, BranchReport]:
    return await start_branch(client, task_queue, "PlatformWorkflow", inp, f"{inp['sample_workflow_id']}-platform")


def _confirm(outcome: str = "delisted", role: str = "platform", **kw: Any) -> dict[str, Any]:
    return f.decision("delist_confirmation", outcome, role, **kw)


async def _action(pool: asyncpg.Pool, workflow_id: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM platform_actions WHERE workflow_id = $1", workflow_id)
    assert row is not None
    return row


async def test_delisting_confirmed_and_a_shop_failing_again_goes_on_the_key_list(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    inp = _input()
    shop = inp["order"]["platform"]["shop_id"]
    # The same shop failed last year in another sample.
    last_year = f.order("online")
    last_year["platform"]["shop_id"] = shop
    await Registers(pool).register_shop_fail(RegisterRequest.model_validate({
        "workflow_id": "sample-x", "order": last_year, "verdict": "fail", "failed_items": f.FAILED_ITEMS,
        "on": date(datetime.now(UTC).year - 1, 6, 1).isoformat()}))
    no = inp["order"]["sample_no"]
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle = await _start(ts_env.client, task_queue, inp)
        status = await wait_branch(handle, waits_for("delist_confirmation"))
        assert status.stage == "awaiting_confirmation"
        assert status.data["key_listed"] is True
        assert events(status, "key_list")
        assert {d.rule_id for d in status.deadlines} == {"platform_delisting", "delist_confirmation"}
        wait = status.awaiting[0]
        assert wait.roles == ["online_officer", "platform"] and wait.rule_id == "delist_confirmation"
        assert (await search_attributes(handle))["Stage"] == "platform:awaiting_confirmation"
        await client.decide(no, _confirm(data={"platform_ticket": "JB-1"}), workflow_id=handle.id)
        report = await handle.result()
    assert (report.stage, report.closed, report.outcome) == ("closed", True, "delisted")
    assert report.enforcement_lead is None
    assert report.data["key_listed"] is True and report.data["platform_ticket"] == "JB-1"
    row = await _action(pool, handle.id)
    assert (row["confirmation"], row["closed_outcome"], row["key_listed"]) == ("delisted", "delisted", True)
    assert row["listing_id"] == "L-99812345" and row["handover_reference"].startswith("outbox:")
    [notice] = await notices_for(pool, handle.id)
    assert notice["template"] == "delisting_request"
    for text in ("监管处置自动触发", "电子商务法", "L-99812345", shop, "输出电压", "GB 4943.1-2022"):
        assert text in notice["body"], text
    [out] = [m for m in await outbox_for(pool, handle.id) if m["channel"] == "platform"]
    assert out["payload"]["action"] == "delist" and out["payload"]["listing_id"] == "L-99812345"
    years = await pool.fetchval("SELECT years FROM key_list_shops WHERE shop_key = $1", shop)
    assert len(years) == 2
    assert await pool.fetchval("SELECT count(*) FROM shop_fails WHERE sample_no = $1", no) == 1


async def test_refused_delisting_closes_with_an_enforcement_lead(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    inp = _input("livestream")
    no = inp["order"]["sample_no"]
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle = await _start(ts_env.client, task_queue, inp)
        status = await wait_branch(handle, waits_for("delist_confirmation"))
        assert status.data["key_listed"] is False and not events(status, "key_list")
        await client.decide(no, _confirm("refused", "online_officer", reason="平台称商品已更换批次"),
                            workflow_id=handle.id)
        report = await handle.result()
    assert (report.outcome, report.closed) == ("refused", True)
    assert report.enforcement_lead and "平台称商品已更换批次" in report.enforcement_lead
    row = await _action(pool, handle.id)
    assert (row["confirmation"], row["confirmation_reason"]) == ("refused", "平台称商品已更换批次")
    assert not row["key_listed"]
    [notice] = await notices_for(pool, handle.id)
    assert "直播间编号：R-556677" in notice["body"]


async def test_an_offline_sample_has_no_listing_to_delist(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    inp = _input("offline_circulation")
    async with running_worker(ts_env.client, pool, task_queue):
        handle = await _start(ts_env.client, task_queue, inp)
        report = await handle.result()
    assert (report.outcome, report.closed) == ("not_applicable", True)
    assert await notices_for(pool, handle.id) == []
    assert await pool.fetchval("SELECT count(*) FROM platform_actions WHERE workflow_id = $1", handle.id) == 0

