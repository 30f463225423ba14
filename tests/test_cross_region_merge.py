"""并案 end to end: real samples of the same product failing in two regions (task 14)."""

from __future__ import annotations

from typing import Any

from temporalio.testing import WorkflowEnvironment

from domain.models import SampleOrder
from domain.product_case import merged_case_id, product_case_id
from starter.client import SpotcheckClient
from tests import factories as f
from tests.scenarios import branch_awaits
from tests.workflow_env import mocked_worker, terminate_when_idle, to_testing, wait_for


async def _final_fail(client: SpotcheckClient, order: dict[str, Any]) -> Any:
    """Fail, the party waives its objection: final at once; post-handling opens the branches."""
    no = order["sample_no"]
    handle = await to_testing(client, order)
    await client.decide(no, f.report("fail"))
    await wait_for(handle, lambda s: any(a.kind == "result_delivery" for a in s.awaiting))
    await client.decide(no, f.delivered())
    await wait_for(handle, lambda s: any(a.kind == "objection" for a in s.awaiting))
    await client.decide(no, f.objection("waived"))
    await wait_for(handle, lambda s: s.stage == "post_handling" and any(b.branch == "enforcement" for b in s.branches))
    return handle


def _same_product(region: str, batch: str) -> dict[str, Any]:
    order = f.order("offline_circulation")
    order["region"] = region
    order["product"] = {**order["product"], "batch": batch}
    return order


async def test_two_regions_within_the_window_make_exactly_one_merged_case(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    a, b = _same_product("330100", "2025-08"), _same_product("330200", "2025-09")
    b["sample_no"] = a["sample_no"] + "-B"
    model = f"XF-{a['sample_no'][-6:]}"
    for o in (a, b):
        o["product"]["model"] = model
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        first = await _final_fail(client, a)
        second = await _final_fail(client, b)
        case_id = product_case_id(SampleOrder.model_validate(a))
        merged = ts_env.client.get_workflow_handle(merged_case_id(case_id, 1))
        for handle in (first, second):
            status = await wait_for(handle, lambda s: any(
                e.event == "branch_closed" and "enforcement → merged" in e.text for e in s.timeline))
            assert any(br.branch == "enforcement" and br.closed and br.outcome == "merged" for br in status.branches)
        merged_status = await merged.query("status")
        assert merged_status["stage"] != "closed"
        assert not await _exists(ts_env, merged_case_id(case_id, 2))
        for handle in (first, second):
            await terminate_when_idle(handle)
        await terminate_when_idle(merged)
    row = store.find("product_cases", case_workflow_id=case_id)
    assert row is not None and row["merged_case_workflow_id"] == merged_case_id(case_id, 1)


async def test_the_same_batch_sampled_twice_is_not_merged(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    a, b = _same_product("330100", "2025-08"), _same_product("330200", "2025-08")
    b["sample_no"] = a["sample_no"] + "-B"
    model = f"XF-{a['sample_no'][-6:]}"
    for o in (a, b):
        o["product"]["model"] = model
    async with mocked_worker(ts_env.client, task_queue) as (client, _):
        first = await _final_fail(client, a)
        second = await _final_fail(client, b)
        # Each keeps its own enforcement case, waiting for the filing decision.
        for handle in (first, second):
            await wait_for(handle, branch_awaits("enforcement", "case_filing"))
        case_id = product_case_id(SampleOrder.model_validate(a))
        assert not await _exists(ts_env, merged_case_id(case_id, 1))
        for handle in (first, second):
            await terminate_when_idle(handle)


async def _exists(env: WorkflowEnvironment, workflow_id: str) -> bool:
    try:
        await env.client.get_workflow_handle(workflow_id).query("status")
        return True
    except Exception:  # noqa: BLE001 - not found
        return False
