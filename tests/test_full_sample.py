"""A whole nonconforming online sample, purchase to closure, with every consequence (issue 3)."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from domain.status import BranchReport
from tests.scenarios import full_online_fail
from tests.workflow_env import closed_result, mocked_worker, search_attributes, terminate_when_idle


async def test_full_nonconforming_online_sample(ts_env: WorkflowEnvironment, task_queue: str) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
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
    # The registers were fed once each, and every branch issued its notice.
    no = sample.sample_no
    assert [r.order.sample_no for r in store.calls["register_bulletin"]] == [no]
    assert [r.order.sample_no for r in store.calls["register_enterprise_fail"]] == [no]
    templates = {n["template"] for n in store.rows["notices"].values() if n["workflow_id"].startswith(f"sample-{no}")}
    assert {"rectification_order", "case_transfer", "credit_publicity", "recall_order", "certification_notice",
            "delisting_request"} <= templates
