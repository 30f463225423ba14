"""Starting many samples at once (`SpotcheckClient.start_samples`) and the worker's cache setting."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from tests import factories as f
from tests.workflow_env import mocked_worker
from worker import WORKFLOW_CACHE, workflow_cache_size, workflow_runner


async def test_many_orders_start_concurrently_in_order_with_progress(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    orders = [f.order("online") for _ in range(40)]
    orders[7] = f.order("online", region="33")  # malformed: refused, the others still start
    orders[20] = dict(orders[3])  # the same sample twice: the second is refused
    seen: list[tuple[int, int]] = []
    async with mocked_worker(ts_env.client, task_queue) as (client, _):
        results = await client.start_samples(orders, window=8, progress=lambda done, total: seen.append((done, total)))
        assert [r.index for r in results] == list(range(40))
        refused = {r.index for r in results if not r.ok}
        assert refused == {7, 20}
        assert "region" in str(results[7].error) and "already started" in str(results[20].error)
        for r, order in zip(results, orders, strict=True):
            if r.ok:
                assert r.workflow_id == f"sample-{order['sample_no']}"
                await client.client.get_workflow_handle(r.workflow_id).describe()
        assert seen == [(n, 40) for n in range(1, 41)]
        for r in results:
            if r.ok:
                await client.client.get_workflow_handle(str(r.workflow_id)).terminate()


def test_the_workflow_cache_is_set_deliberately() -> None:
    assert workflow_cache_size({}) == WORKFLOW_CACHE
    assert workflow_cache_size({"SPOTCHECK_WORKFLOW_CACHE": "20000"}) == 20000
    for bad in ("many", "-1", "1", "1e6", "99999999999"):
        with pytest.raises(ValueError, match="^SPOTCHECK_WORKFLOW_CACHE: must be a whole number") as err:
            workflow_cache_size({"SPOTCHECK_WORKFLOW_CACHE": bad})
        assert len(bad) < 3 or bad not in str(err.value)  # refused with the variable named, never echoed


def test_the_database_pool_is_sized_deliberately() -> None:
    from activities.db import pool_max_size

    assert pool_max_size({}) == 20
    assert pool_max_size({"SPOTCHECK_DB_POOL_MAX": "50"}) == 50
    for bad in ("lots", "0", "5000"):
        with pytest.raises(ValueError, match="^SPOTCHECK_DB_POOL_MAX: must be a whole number"):
            pool_max_size({"SPOTCHECK_DB_POOL_MAX": bad})


def test_deployed_workers_run_without_the_sandbox_unless_it_is_turned_on() -> None:
    assert isinstance(workflow_runner({}), UnsandboxedWorkflowRunner)
    assert isinstance(workflow_runner({"SPOTCHECK_WORKFLOW_SANDBOX": "off"}), UnsandboxedWorkflowRunner)
    assert isinstance(workflow_runner({"SPOTCHECK_WORKFLOW_SANDBOX": " On "}), SandboxedWorkflowRunner)
    with pytest.raises(ValueError, match="^SPOTCHECK_WORKFLOW_SANDBOX: must be on or off$"):
        workflow_runner({"SPOTCHECK_WORKFLOW_SANDBOX": "maybe"})


def test_the_suite_runs_every_workflow_in_the_sandbox() -> None:
    """The guard deployed workers do without: every worker the tests build (and every stack they start,
    which inherits this environment) refuses non-deterministic calls."""
    assert isinstance(workflow_runner(), SandboxedWorkflowRunner)


def test_a_setting_that_is_no_ascii_whole_number_is_refused_with_its_name() -> None:
    for bad in ("²", "１２", "1" * 40):
        with pytest.raises(ValueError, match="^SPOTCHECK_WORKFLOW_CACHE: must be a whole number"):
            workflow_cache_size({"SPOTCHECK_WORKFLOW_CACHE": bad})
