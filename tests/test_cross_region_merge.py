"""并案 end to end: real samples of the same product failing in two regions (task 14)."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from domain.models import SampleOrder
from domain.product_case import merged_case_id, product_case_id
from tests.scenarios import branch_awaits, same_product_in_two_regions, to_final_fail_waived
from tests.workflow_env import mocked_worker, terminate_when_idle, wait_for


async def test_two_regions_within_the_window_make_exactly_one_merged_case(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    a, b = same_product_in_two_regions("2025-08", "2025-09")
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        first = await to_final_fail_waived(client, a)
        second = await to_final_fail_waived(client, b)
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
    a, b = same_product_in_two_regions("2025-08", "2025-08")
    async with mocked_worker(ts_env.client, task_queue) as (client, _):
        first = await to_final_fail_waived(client, a)
        second = await to_final_fail_waived(client, b)
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
