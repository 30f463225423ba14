"""Whole-sample scenarios shared by the end-to-end tests and the benchmarks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.status import SampleStatus
from starter.client import SpotcheckClient
from tests import factories as f
from tests.workflow_env import awaiting, closed_result, to_testing, wait_for


def branch_awaits(branch: str, kind: str) -> Any:
    return lambda s: any(b.branch == branch and any(a.kind == kind for a in b.awaiting) for b in s.branches)


LEAD = {"type": "false_advertising", "description": "商品页宣称“军工级电芯”，无依据",
        "evidence": [{"name": "listing-screenshot.png", "sha256": "c" * 64}]}


async def fail_then_objection_accepted(client: SpotcheckClient, handle: WorkflowHandle[Any, Any], no: str) -> None:
    """From the wait for the lab report: a fail, delivered, objected to and accepted, to the re-test."""
    await client.decide(no, f.report("fail"))
    await wait_for(handle, awaiting("result_delivery"))
    await client.decide(no, f.delivered())
    await wait_for(handle, awaiting("objection"))
    await client.decide(no, f.objection())
    await wait_for(handle, awaiting("objection_review"))
    await client.decide(no, f.review("accepted"))
    await wait_for(handle, awaiting("retest_report"))


def same_product_in_two_regions(batch_a: str, batch_b: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Orders for one product (a model of its own) sampled in Hangzhou and in Ningbo, from these batches: failed
    within the window from different batches, they make a cross-region merged case (domain/product_case.py)."""
    a, b = f.order("offline_circulation", region="330100"), f.order("offline_circulation", region="330200")
    b["sample_no"] = a["sample_no"] + "-B"
    model = f"XF-{a['sample_no'][-6:]}"
    for o, batch in ((a, batch_a), (b, batch_b)):
        o["product"] = {**o["product"], "batch": batch, "model": model}
    return a, b


async def to_final_fail_waived(client: SpotcheckClient, order: dict[str, Any]) -> WorkflowHandle[Any, Any]:
    """Fail, the party waives its objection: final at once; post-handling opens the branches (enforcement
    among them)."""
    no = order["sample_no"]
    handle = await to_testing(client, order)
    await client.decide(no, f.report("fail"))
    await wait_for(handle, awaiting("result_delivery"))
    await client.decide(no, f.delivered())
    await wait_for(handle, awaiting("objection"))
    await client.decide(no, f.objection("waived"))
    await wait_for(handle, lambda s: s.stage == "post_handling" and any(b.branch == "enforcement" for b in s.branches))
    return handle


async def to_final_fail_after_objection(
    client: SpotcheckClient, order: dict[str, Any], leads: list[dict[str, Any]] | None = None
) -> WorkflowHandle[Any, Any]:
    """Fail, objection accepted, re-test confirms the fail: the sample enters post-handling."""
    no = order["sample_no"]
    sealed = f.decision("sampling_record", "sealed", "sampler", data={"record_no": "CY-1", "leads": leads or []})
    handle = await to_testing(client, order, sealed=sealed)
    await fail_then_objection_accepted(client, handle, no)
    await client.decide(no, f.report("fail", kind="retest_report"))
    await wait_for(handle, lambda s: s.stage == "post_handling" and len(s.branches) >= 5)
    return handle


async def decide_in_branch(
    client: SpotcheckClient, handle: WorkflowHandle[Any, Any], no: str, branch: str, decision: dict[str, Any]
) -> SampleStatus:
    """Wait until the branch awaits the decision's kind, then send it by sample number (routed)."""
    await wait_for(handle, branch_awaits(branch, decision["kind"]))
    await client.decide(no, decision)
    return await wait_for(handle, lambda s: not branch_awaits(branch, decision["kind"])(s))


async def full_online_fail(client: SpotcheckClient, env: WorkflowEnvironment) -> dict[str, WorkflowHandle[Any, Any]]:
    """A nonconforming online sample from purchase to closure: a lead found while buying, objection and
    re-test, rectification corrected and passed on its 复查 (Order 18), ordered recall, CCC suspension, delisting, enforcement filing and penalty, then the
    credit listing repaired after the allowed wait. Returns the handles of the sample and its credit branch."""
    order = f.order("online")
    no = order["sample_no"]
    handle = await to_final_fail_after_objection(client, order, leads=[LEAD])
    d = f.decision
    # The lead found while buying went to its line at once; its outcome flows back into the sample.
    await decide_in_branch(client, handle, no, "lead", d("lead_outcome", "confirmed", "enforcement"))
    await decide_in_branch(client, handle, no, "rectification", d("rectification_report", "submitted", "enterprise"))
    await decide_in_branch(client, handle, no, "rectification",
                           d("re_inspection", "pass", "case_officer", data={"report_no": "复查-2026-01"}))
    await decide_in_branch(client, handle, no, "enforcement",
                           d("case_filing", "filed", "enforcement", data={"case_no": "杭市监案〔2026〕1号"}))
    await decide_in_branch(client, handle, no, "enforcement",
                           d("case_outcome", "penalty", "enforcement", data={"fine_amount": "50000", "heavy": False}))
    await decide_in_branch(client, handle, no, "recall", d("defect_assessment", "defect", "case_officer"))
    await decide_in_branch(client, handle, no, "recall", d("recall_decision", "ordered", "case_officer"))
    await decide_in_branch(client, handle, no, "recall", d("recall_plan", "submitted", "enterprise"))
    await decide_in_branch(client, handle, no, "recall", d("recall_progress", "completed", "enterprise"))
    await decide_in_branch(client, handle, no, "recall", d("recall_summary", "submitted", "enterprise"))
    await decide_in_branch(client, handle, no, "certification",
                           d("certificate_action", "suspended", "certification_body"))
    await decide_in_branch(client, handle, no, "platform", d("delist_confirmation", "delisted", "platform"))
    # The follow-up sampling interval passes; rectification starts the follow-up sample and closes.
    await env.sleep(timedelta(days=100))
    await wait_for(handle, awaiting("disposal"))
    await client.decide(no, f.disposal())
    await closed_result(handle)
    # The credit listing outlives the sample: repair is granted after the six-month wait.
    credit = client.client.get_workflow_handle(f"sample-{no}-credit")
    await env.sleep(timedelta(days=90))
    sid = f"sample-{no}-credit"
    for decision in (d("credit_repair_application", "filed", "enterprise"),
                     d("credit_repair_acceptance", "accepted", "credit_officer"),
                     d("credit_repair_review", "approved", "credit_officer")):
        await _wait_branch_awaits(client, sid, decision["kind"])
        await client.decide(no, decision, workflow_id=sid)
    await closed_result(credit)
    return {"sample": handle, "credit": credit, "follow_up": client.client.get_workflow_handle(f"sample-{no}-FU1")}


async def _wait_branch_awaits(client: SpotcheckClient, workflow_id: str, kind: str) -> None:
    import asyncio

    for _ in range(300):
        status = await client.client.get_workflow_handle(workflow_id).query("status")
        if any(a["kind"] == kind for a in status.get("awaiting", [])):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never awaited {kind}")
