"""A whole nonconforming online sample, purchase to closure, with every consequence (issue 3)."""

from __future__ import annotations

import asyncpg
from temporalio.testing import WorkflowEnvironment

from domain.status import BranchReport
from tests.scenarios import full_online_fail
from tests.workflow_env import closed_result, running_worker, search_attributes, terminate_when_idle


async def test_full_nonconforming_online_sample(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handles = await full_online_fail(client, ts_env)
        sample = await closed_result(handles["sample"])
        credit = BranchReport.model_validate(await closed_result(handles["credit"]))
        follow_up = await handles["follow_up"].query("status")
        attrs = await search_attributes(handles["sample"])
        history = await handles["sample"].fetch_history()
        print(f"sample history: {len(history.events)} events")
        await terminate_when_idle(handles["follow_up"])
    assert (sample.stage, sample.verdict) == ("closed", "fail")
    # Closed means closed for the monitors too: the credit listing that outlives it answers for itself.
    assert attrs["Stage"] == "closed" and not attrs.get("AwaitingRole") and not attrs["Overdue"]
    outcomes = {b.branch: b.outcome for b in sample.branches if b.branch != "credit"}
    assert outcomes == {"rectification": "accepted", "enforcement": "penalty", "recall": "recalled",
                        "certification": "suspended", "platform": "delisted", "lead": "confirmed"}
    assert credit.outcome == "repaired"
    assert follow_up["summary"].endswith("follow_up") and follow_up["stage"] == "sampling"
    # DESIGN: a sample's whole life stays well inside Temporal's history limits.
    assert len(history.events) < 1000
    no = sample.sample_no
    assert await pool.fetchval("SELECT count(*) FROM results_bulletin WHERE sample_no = $1", no) == 1
    assert await pool.fetchval("SELECT count(*) FROM enterprise_fails WHERE sample_no = $1", no) >= 1
    templates = await pool.fetch("SELECT template FROM notices WHERE workflow_id LIKE $1", f"sample-{no}%")
    assert {"rectification_order", "case_transfer", "credit_publicity", "recall_order", "certification_notice",
            "delisting_request"} <= {r["template"] for r in templates}
