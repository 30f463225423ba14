"""What a sample costs the server: its history stays proportionate to the work (issue 9), on the
time-skipping server with the in-memory activities. Counts, never timings."""

from __future__ import annotations

from collections import Counter
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests import factories as f
from tests.scenarios import full_online_fail
from tests.workflow_env import awaiting, local_activity_type, mocked_worker, to_testing, wait_for

PASS_BUDGET = 120  # events of a pass → closed
FULL_FAIL_BUDGET = 600  # events of the sample's own history through every branch


async def _events(handle: WorkflowHandle[Any, Any]) -> tuple[int, Counter[str]]:
    history = await handle.fetch_history()
    kinds = Counter(str(e.WhichOneof("attributes")).removesuffix("_event_attributes") for e in history.events)
    return len(history.events), kinds


async def _local_activities(handle: WorkflowHandle[Any, Any]) -> Counter[str]:
    """The local activities a history recorded, by type."""
    types = [local_activity_type(e) for e in (await handle.fetch_history()).events]
    return Counter(t for t in types if t is not None)


async def test_a_pass_closes_within_its_event_budget(ts_env: WorkflowEnvironment, task_queue: str) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, _):
        order = f.order("offline_production")
        handle = await to_testing(client, order)
        await client.decide(order["sample_no"], f.report("pass"))
        await wait_for(handle, awaiting("disposal"))
        await client.decide(order["sample_no"], f.disposal("returned"))
        await handle.result()
        count, kinds = await _events(handle)
    assert count <= PASS_BUDGET, kinds
    # Bookkeeping is local: no activity task at all; the audit rows, deadlines, the sample's record and the
    # result notice leave a marker each.
    assert kinds["activity_task_scheduled"] == 0, kinds
    # Search attributes are written when they change: never more than once per publish.
    assert kinds["upsert_workflow_search_attributes"] <= kinds["marker_recorded"], kinds
    # Each wait opens with one local activity (its deadline and the record, the policy with the first); a
    # decision whose step opens the next wait at once has its audit row written in it (the sampling record
    # and the receipt), the others one each (the lab report, whose notice comes first, and the disposal,
    # which closes); the notice is one, and the record is written once more at the close.
    assert await _local_activities(handle) == Counter(open_wait=4, audit_decision=2, render_notice=1,
                                                      project_sample=1)


async def test_a_fail_through_every_branch_stays_within_its_event_budget(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, _):
        handles = await full_online_fail(client, ts_env)
        count, kinds = await _events(handles["sample"])
    assert count <= FULL_FAIL_BUDGET, kinds
