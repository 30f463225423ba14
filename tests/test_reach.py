"""Every workflow reachable (issue 10 part 4), with the in-memory activities: a decision sent by sample number
reaches the merged case that took the sample's enforcement over, and the credit listing that outlived its
sample; `list`/`inbox --all-workflows` show branches and cases with their kind, each wait once; `sample show`
of a closed sample reads its open branches live."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from domain.branches import BranchReport, branch_workflow_id
from domain.models import SampleOrder
from domain.product_case import merged_case_id, product_case_id
from starter import cli
from starter.client import (
    DecisionRejected,
    NoSuchWorkflow,
    SpotcheckClient,
    _closed_reason,
    _taken_over,
    merged_case,
    workflow_kind,
)
from tests import factories as f
from tests.scenarios import decide_in_branch, same_product_in_two_regions, to_final_fail_waived
from tests.test_branch_credit import accept, apply_
from tests.workflow_env import (
    awaiting,
    closed_result,
    mocked_worker,
    status_of,
    terminate_when_idle,
    wait_for,
    wait_for_branch,
)


async def _cli(env: WorkflowEnvironment, task_queue: str, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    args = cli.build_parser().parse_args([*argv, "--address", env.client.service_client.config.target_host,
                                          "--namespace", env.client.namespace, "--task-queue", task_queue])
    assert await args.func(args) == cli.EXIT_OK
    return capsys.readouterr().out


async def _listed(
    client: SpotcheckClient, task_queue: str, ready: Any, role: str | None = None, all_workflows: bool = True
) -> list[dict[str, Any]]:
    """The test's workflows as listed, once visibility (which follows the workflows a moment later) shows
    what `ready` expects."""
    query = f"TaskQueue = '{task_queue}'"
    for _ in range(100):
        rows = (await client.inbox(role, query, all_workflows=all_workflows) if role
                else await client.list_workflows(query, all_workflows=all_workflows))
        if ready(rows):
            return rows
        await asyncio.sleep(0.2)
    raise AssertionError(f"never listed as expected: {[(r['kind'], r['workflow_id']) for r in rows]}")


async def test_a_merged_sample_decides_in_its_merged_case_and_every_workflow_is_listed(
    dev_env: WorkflowEnvironment, task_queue: str, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = same_product_in_two_regions("2025-08", "2025-09")
    case_id = product_case_id(SampleOrder.model_validate(a))
    merged_id = merged_case_id(case_id, 1)
    async with mocked_worker(dev_env.client, task_queue) as (client, _):
        first = await to_final_fail_waived(client, a)
        second = await to_final_fail_waived(client, b)
        for handle in (first, second):
            await wait_for(handle, lambda s: any(
                br.branch == "enforcement" and br.outcome == "merged" for br in s.branches))
        merged = dev_env.client.get_workflow_handle(merged_id)
        await wait_for_branch(merged, lambda s: any(w.kind == "case_filing" for w in s.awaiting))

        # Sent by the second sample's number: its enforcement branch has closed, the merged case takes it.
        filed = f.decision("case_filing", "filed", "enforcement", data={"case_no": "杭市监案〔2026〕9号"})
        receipt = await client.decide(b["sample_no"], filed)
        assert receipt is not None and receipt.accepted  # answered at once; the case acts on it just after
        # The stage changes, then the next wait opens once its deadline is computed (a local activity): a
        # query may land in between.
        filed = await wait_for_branch(merged, lambda s: s.stage == "filed" and bool(s.awaiting))
        assert [a.kind for a in filed.awaiting] == ["case_outcome"]
        show = await _cli(dev_env, task_queue, capsys, "sample", "show", b["sample_no"])
        assert f"closed → merged: merged case {merged_id}" in show

        # Every workflow, each with what it is.
        enforcement, credit = (branch_workflow_id(first.id, x) for x in ("enforcement", "credit"))
        want = {first.id: "sample", second.id: "sample", enforcement: "enforcement", credit: "credit",
                merged_id: "merged_case", case_id: "product_case"}
        await _listed(client, task_queue, lambda rows: want.items() <= {(r["workflow_id"], r["kind"]) for r in rows})
        assert {r["kind"] for r in await client.list_workflows(f"TaskQueue = '{task_queue}'")} == {"sample"}
        out = await _cli(dev_env, task_queue, capsys, "list", "--all-workflows", "--query", f"TaskQueue = '{task_queue}'")
        lines = {line.split()[1]: line.split()[0] for line in out.splitlines()[1:] if line.strip()}
        assert lines[merged_id] == "merged_case" and lines[credit] == "credit" and lines[case_id] == "product_case"

        # The merged case's wait is in the enforcement inbox only when every workflow is listed: no sample
        # holds it any more.
        rows = await _listed(client, task_queue, lambda rows: merged_id in {r["workflow_id"] for r in rows},
                             role="enforcement")
        assert [r["kind"] for r in rows if r["workflow_id"] == merged_id] == ["merged_case"]
        assert merged_id not in {r["workflow_id"] for r in await client.inbox(
            "enforcement", f"TaskQueue = '{task_queue}'")}
        # The credit listings' wait is listed under each listing, never under a sample.
        credits = {branch_workflow_id(h.id, "credit") for h in (first, second)}
        rows = await _listed(client, task_queue, lambda rows: credits <= {r["workflow_id"] for r in rows},
                             role="credit_officer")
        assert {(r["workflow_id"], r["kind"]) for r in rows} == {(c, "credit") for c in credits}

        # A case officer is awaited by each sample's recall and rectification; the second sample also awaits
        # the producer's confirmation itself, the first no longer does. Samples only: one row per sample.
        # Every workflow: each wait once, under the workflow that awaits it, so the first sample, whose
        # AwaitingRole only echoes its branches', is no row of its own.
        await client.decide(a["sample_no"], f.decision("producer_confirmation", "confirmed", "enterprise"))
        await wait_for(first, lambda s: not s.awaiting)
        recall, rectification = (branch_workflow_id(first.id, x) for x in ("recall", "rectification"))
        rows = await _listed(client, task_queue, lambda rows: recall in {r["workflow_id"] for r in rows},
                             role="case_officer")
        ids = {r["workflow_id"] for r in rows}
        assert {recall, rectification, second.id} <= ids and first.id not in ids
        samples_only = await _listed(client, task_queue, lambda rows: len(rows) == 2, role="case_officer",
                                     all_workflows=False)
        assert {r["workflow_id"] for r in samples_only} == {first.id, second.id}
        out = await _cli(dev_env, task_queue, capsys, "inbox", "--role", "case_officer", "--all-workflows",
                         "--query", f"TaskQueue = '{task_queue}'")
        assert f"recall         {recall}" in out and f" {first.id} " not in out and f" {second.id} " in out

        # A route chosen before the sample heard of the merge (its enforcement branch, ended since): the
        # branch's own status names the merged case and the decision follows it.
        async def stale(sample_no: str, kind: str | None) -> str:
            return enforcement
        client._route = stale  # type: ignore[method-assign]
        outcome = f.decision("case_outcome", "no_penalty", "enforcement", reason="整改到位")
        assert (receipt := await client.decide(a["sample_no"], outcome)) is not None and receipt.accepted
        assert (await closed_result(merged))["outcome"] == "no_penalty"
        # Nothing awaits it any more: refused in the sample's terms, naming the case and how it ended.
        with pytest.raises(DecisionRejected, match=f"{merged_id} is no longer running .*outcome no_penalty"):
            await client.decide(a["sample_no"], f.decision("case_outcome", "penalty", "enforcement"))
        for handle in (first, second):
            await terminate_when_idle(handle)


def test_what_each_workflow_is_and_where_a_merged_branch_sends_its_decisions() -> None:
    assert workflow_kind("SampleWorkflow", "sample-X") == "sample"
    assert workflow_kind("CreditWorkflow", "sample-X-credit") == "credit"
    assert workflow_kind("EnforcementWorkflow", "sample-X-enforcement") == "enforcement"
    assert workflow_kind("EnforcementWorkflow", "case-9133-B-M-merged-1") == "merged_case"
    assert workflow_kind("ProductCaseWorkflow", "case-9133-B-M") == "product_case"
    merged = BranchReport(branch="enforcement", workflow_id="sample-X-enforcement", stage="closed", closed=True,
                          outcome="merged", data={"merged_case": "case-9133-B-M-merged-1"})
    assert merged_case(merged) == "case-9133-B-M-merged-1"
    assert merged_case(merged.model_copy(update={"outcome": "penalty"})) is None
    assert _taken_over(merged.model_dump(mode="json")) == "case-9133-B-M-merged-1"
    assert _taken_over({"stage": "closed", "verdict": "fail", "closed_waits": {}}) is None  # a sample's status
    assert _taken_over(None) is None
    assert isinstance(_closed_reason("sample-X-credit", None, "credit_repair_review", "X"), NoSuchWorkflow)
    assert str(_closed_reason("sample-X", {"stage": "closed", "verdict": "fail"}, "disposal", "X")) == (
        "sample-X is no longer running (stage closed, verdict fail)")


async def test_after_its_sample_closed_the_credit_listing_takes_decisions_and_is_shown_live(
    ts_env: WorkflowEnvironment, task_queue: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the time-skipping server: the sample closes only after the follow-up sampling interval (months)."""
    order = f.order("offline_circulation")
    no = order["sample_no"]
    d = f.decision
    async with mocked_worker(ts_env.client, task_queue) as (client, _):
        handle = await to_final_fail_waived(client, order)
        await decide_in_branch(client, handle, no, "rectification", d("rectification_report", "submitted", "enterprise"))
        await decide_in_branch(client, handle, no, "rectification",
                               d("re_inspection", "pass", "case_officer", data={"report_no": "复查-1"}))
        await decide_in_branch(client, handle, no, "enforcement", d("case_filing", "not_filed", "enforcement",
                                                                     reason="不予立案"))
        await decide_in_branch(client, handle, no, "recall", d("defect_assessment", "no_defect", "case_officer"))
        await ts_env.sleep(timedelta(days=100))  # the follow-up sample is started; the credit repair wait is over
        await wait_for(handle, awaiting("disposal"))
        await client.decide(no, f.disposal())
        await closed_result(handle)
        credit_id = branch_workflow_id(handle.id, "credit")
        [frozen] = [b for b in (await status_of(handle)).branches if b.branch == "credit"]
        assert frozen.stage == "listed" and [w.kind for w in frozen.awaiting] == ["credit_repair_application"]

        # By sample number, after the sample closed: the listing takes it and moves on.
        receipt = await client.decide(no, apply_())
        assert receipt is not None and receipt.accepted
        credit = ts_env.client.get_workflow_handle(credit_id)
        await wait_for_branch(credit, lambda s: s.stage == "repair_acceptance")
        [still] = [b for b in (await status_of(handle)).branches if b.branch == "credit"]
        assert still.stage == "listed"  # the sample's report stays as it was at the closing…
        view = await client.status(no)
        [live] = [b for b in view.branches if b.branch == "credit"]
        assert (live.stage, [w.kind for w in live.awaiting]) == ("repair_acceptance", ["credit_repair_acceptance"])
        assert view.live_branches == [credit_id]  # …the client asks the branch, and says so
        # Routed by what the listing awaits now, which the sample's frozen report never showed.
        receipt = await client.decide(no, accept())
        assert receipt is not None and receipt.accepted
        await wait_for_branch(credit, lambda s: s.stage == "repair_review")

        out = await _cli(ts_env, task_queue, capsys, "sample", "show", no)
        assert "read from the branch itself, the sample has closed" in out
        [line] = [line for line in out.splitlines() if line.startswith(f"  credit         {credit_id}")]
        assert "stage repair_review" in line and line.endswith("[live]")
        assert "awaiting credit_repair_review from credit_officer" in out
        assert f"{branch_workflow_id(handle.id, 'enforcement')}  closed → not_filed" in out
        for wid in (credit_id, f"{handle.id}-FU1"):
            await terminate_when_idle(ts_env.client.get_workflow_handle(wid))
