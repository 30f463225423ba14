"""Cross-region merge (并案) on the time-skipping server: each fail goes to its product case through the
reporting activity (the worker's code path: signal-with-start by the activity's own client), the samples'
enforcement branches are real EnforcementWorkflows. The record is the in-memory store of the mocked
activities (tests/mock_activities.py), except in the tests of the record itself (a repeated report, a worker
restart), which keep the real PostgreSQL table."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.product_case import ProductCaseActivities, product_case_row
from domain import signing
from domain.branches import BranchInput, BranchStatus, branch_workflow_id
from domain.models import SampleOrder
from domain.product_case import (
    CaseFail,
    FailReport,
    MergedCase,
    ProductCaseState,
    ProductCaseStatus,
    ProductKey,
    assess,
)
from domain.status import BranchReport
from tests import factories as f
from tests.mock_activities import StoreProductCases
from tests.workflow_env import _describe, _running, mocked_worker, running_worker
from workflows.enforcement import EnforcementWorkflow
from workflows.product_case import ProductCaseWorkflow, product_case_id

CHINA = timezone(timedelta(hours=8))
HANGZHOU, NINGBO, WENZHOU = "330100", "330200", "330300"


# --- helpers -------------------------------------------------------------------------------------


def product(model: str | None = None, batch: str | None = None) -> dict[str, Any]:
    """The online example's product with a model of this test's own: the product_cases table is shared by
    the whole session, so each test has its own product key."""
    data = f.order("online")["product"]
    data["model"] = model or f"SC-{uuid.uuid4().hex[:8]}"
    data["batch"] = batch
    return data


def with_batch(p: dict[str, Any], batch: str | None) -> dict[str, Any]:
    return {**p, "batch": batch}


async def today(env: WorkflowEnvironment) -> date:
    return (await env.get_current_time()).astimezone(CHINA).date()


async def open_branch(client: Client, task_queue: str, region: str, prod: dict[str, Any]) -> BranchInput:
    """A sample's own enforcement branch `sample-<no>-enforcement`, running as it would after a final fail."""
    data = f.branch_input("enforcement", context={"reason": "final_fail"}, region=region, product=prod)
    data["report_no"] = f"ZJPQ-{data['order']['sample_no']}"  # each sample its own test report
    inp = BranchInput.model_validate(data)
    await client.start_workflow(
        EnforcementWorkflow.run, inp, id=branch_workflow_id(inp.sample_workflow_id, "enforcement"),
        task_queue=task_queue,
    )
    return inp


def fail_of(inp: BranchInput, failed_on: date) -> FailReport:
    return FailReport.of(inp, failed_on)


async def report(env: WorkflowEnvironment, cases: ProductCaseActivities, task_queue: str, fail: FailReport) -> str:
    """Run the reporting activity as the worker would: its client, its task queue. `cases`: the real
    activities on the pool, or those of a mocked worker with their record in its store."""
    act = ActivityEnvironment(client=env.client)
    act.info = dataclasses.replace(ActivityEnvironment.default_info(), task_queue=task_queue,
                                   activity_type="product_case_report_fail")
    return await act.run(cases.product_case_report_fail, fail)


async def case_status(handle: WorkflowHandle[Any, Any]) -> ProductCaseStatus:
    # A query answers in well under a second; one the test server leaves hanging (seen around a
    # continue-as-new) would otherwise hold wait_case for the default 30 s before it asks again.
    return await handle.query(ProductCaseWorkflow.status, rpc_timeout=timedelta(seconds=5))


async def wait_case(
    handle: WorkflowHandle[Any, Any], check: Callable[[ProductCaseStatus], bool], within: float = 30.0
) -> ProductCaseStatus:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            status = await case_status(handle)
        except RPCError:
            # After a worker restart the case's next task waits out the old worker's sticky queue
            # (10 s); a query meanwhile times out. Anything else is a real failure.
            # Around a continue-as-new on a loaded machine the test server may also answer "query deadline
            # exceeded" with another code, or reach the run that just closed: poll on, within the limit.
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
            continue
        if check(status):
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"stage={status.stage} fails={[x.sample_no for x in status.fails]} "
                                 f"merged={status.merged_case_id} rejected={status.rejected}")
        await asyncio.sleep(0.1)


def has_fails(n: int) -> Callable[[ProductCaseStatus], bool]:
    return lambda s: len(s.fails) == n


async def exists(client: Client, wf_id: str) -> bool:
    try:
        await _describe(client.get_workflow_handle(wf_id))
        return True
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


async def branch_runs_its_own_case(client: Client, inp: BranchInput, within: float = 30.0) -> bool:
    """The sample's enforcement branch handed its own case over and goes on with it (not merged)."""
    handle = client.get_workflow_handle(branch_workflow_id(inp.sample_workflow_id, "enforcement"))
    deadline = asyncio.get_running_loop().time() + within
    while True:
        report = await handle.query("status", result_type=BranchReport)
        if report.stage != "opened" or asyncio.get_running_loop().time() > deadline:
            return report.stage == "handed_over" and not report.closed
        await asyncio.sleep(0.1)


async def branch_result(client: Client, inp: BranchInput, within: float = 30.0) -> BranchReport:
    """The branch's report once it has closed (polled: it closes at once when told to follow)."""
    handle = client.get_workflow_handle(branch_workflow_id(inp.sample_workflow_id, "enforcement"))
    deadline = asyncio.get_running_loop().time() + within
    while True:
        report = await handle.query("status", result_type=BranchReport)
        if report.closed:
            return report
        if not await _running(handle) or asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{handle.id} did not close: stage {report.stage}")
        await asyncio.sleep(0.1)


async def search_attributes(client: Client, wf_id: str) -> dict[str, Any]:
    fields = (await _describe(client.get_workflow_handle(wf_id))).workflow_execution_info.search_attributes
    return {name: json.loads(p.data) for name, p in fields.indexed_fields.items() if p.data}


# --- the product key and the rule (pure) ---------------------------------------------------------


def test_the_case_id_is_the_producer_brand_and_model_made_safe() -> None:
    online = SampleOrder.model_validate(f.order("online", product={**product("SC 20000/Pro"), "brand": "闪充 Ｐｌｕｓ"}))
    # The labelled producer, not the shop; CJK kept, full-width folded, blanks and slashes replaced.
    assert product_case_id(online) == "case-91440300MA5G7HJK8D-闪充_PLUS-SC_20000_PRO"
    at_producer = SampleOrder.model_validate(f.order("offline_production"))
    assert product_case_id(at_producer) == "case-91330100MA2ABCDE1R-美好-MH-1712"
    # A hyphen in the brand cannot make two products one: "A-B"+"C" is not "A"+"B-C".
    one = SampleOrder.model_validate(f.order("online", product={**product("C"), "brand": "A-B"}))
    two = SampleOrder.model_validate(f.order("online", product={**product("B-C"), "brand": "A"}))
    assert product_case_id(one) != product_case_id(two)


def _fail(no: str, region: str, day: int, batch: str | None = None, **kw: Any) -> CaseFail:
    on = date(2026, 1, 1) + timedelta(days=day)
    return CaseFail(sample_no=no, sample_workflow_id=f"sample-{no}", enforcement_workflow_id=f"sample-{no}-enforcement",
                    region=region, batch=batch, failed_on=on, window_ends=on + timedelta(days=90), **kw)


def test_the_merge_rule() -> None:
    a = _fail("A", HANGZHOU, 0, "B1")
    # Another region inside the window merges; the same region does not; outside the window does not.
    assert assess([a], [], _fail("B", NINGBO, 30, "B2")).members == ["A", "B"]
    assert not assess([a], [], _fail("B", HANGZHOU, 30, "B2")).merges
    assert not assess([a], [], _fail("B", NINGBO, 91, "B2")).merges
    # The same batch (compared without case or blanks) counts once: it never makes a second region.
    dup = assess([a], [], _fail("B", NINGBO, 30, " b1 "))
    assert dup.duplicate_of == "A" and not dup.merges
    # No batch is no duplicate.
    assert assess([_fail("A", HANGZHOU, 0)], [], _fail("B", NINGBO, 1)).merges
    # An open merged case is joined, never doubled.
    m = MergedCase(workflow_id="case-x-merged-1", opened_on=a.failed_on, window_ends=date(2026, 5, 1),
                   members=["A", "B"], regions=[HANGZHOU, NINGBO])
    joined = [a.model_copy(update={"merged_case": m.workflow_id})]
    assert assess(joined, [m], _fail("C", WENZHOU, 60, "B3")).join == m.workflow_id
    # So is a later fail of a region already in it (one case per window), and a second sampling of a
    # merged batch follows the case its batch is in; past the window, nothing is joined.
    assert assess(joined, [m], _fail("D", HANGZHOU, 60, "B4")).join == m.workflow_id
    again = assess(joined, [m], _fail("E", WENZHOU, 100, "B1"))
    assert (again.duplicate_of, again.join) == ("A", m.workflow_id)
    assert assess(joined, [m], _fail("F", WENZHOU, 200, "B5")).join is None


# --- the product case on the time-skipping server ------------------------------------------------


async def test_two_regions_within_the_window_open_one_merged_case_that_the_branches_follow(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    client = ts_env.client
    prod = product()
    async with mocked_worker(client, task_queue) as (_, store):
        cases = StoreProductCases(store)
        a = await open_branch(client, task_queue, HANGZHOU, with_batch(prod, "20250701"))
        b = await open_branch(client, task_queue, NINGBO, with_batch(prod, "20250802"))
        on = await today(ts_env)
        case_id = await report(ts_env, cases, task_queue, fail_of(a, on))
        assert case_id == await report(ts_env, cases, task_queue, fail_of(b, on + timedelta(days=20)))
        case = client.get_workflow_handle_for(ProductCaseWorkflow.run, case_id)
        status = await wait_case(case, lambda s: s.merged_case_id is not None)
        merged_id = f"{case_id}-merged-1"
        assert status.merged_case_id == merged_id and status.stage == "merged"
        assert status.merged[0].members == [a.order.sample_no, b.order.sample_no]
        assert status.merged[0].regions == [HANGZHOU, NINGBO]

        # Both samples' own cases close in favour of the merged one, which alone runs on.
        for inp in (a, b):
            result = await branch_result(client, inp)
            assert result.outcome == "merged" and result.data == {"merged_case": merged_id}
        assert await _running(client.get_workflow_handle(merged_id))
        assert not await exists(client, f"{case_id}-merged-2")
        status = await wait_case(case, lambda s: all(x.followed for x in s.fails))
        # The merged case reports to the product case (it is the merged case's "sample").
        status = await wait_case(case, lambda s: s.merged[0].stage == "handed_over")

        attrs = await search_attributes(client, case_id)
        assert attrs["Stage"] == "merged" and attrs["EnterpriseCode"] == "91440300MA5G7HJK8D"
        assert attrs["ProductCode"] == prod["classification_code"]
        # The merged case's file lists both samples with their regions and batches.
        merged_row = store.find("enforcement_cases", workflow_id=merged_id)
        assert merged_row is not None and [(x["sample_no"], x["region"], x["batch"]) for x in
                                           merged_row["merged_samples"]] == [
            (a.order.sample_no, HANGZHOU, "20250701"), (b.order.sample_no, NINGBO, "20250802")]
        row = store.find("product_cases", case_workflow_id=case_id)
        assert row is not None and row["merged_case_workflow_id"] == merged_id and row["merged_at"]
        assert {no: x["merged_case"] for no, x in row["fails"].items()} == {
            a.order.sample_no: merged_id, b.order.sample_no: merged_id}
        letters = [n["template"] for n in store.notices_for(merged_id)]
        assert letters.count("case_transfer") == 1


async def test_the_same_batch_sampled_in_two_regions_never_merges_and_the_case_ends_after_the_window(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    client = ts_env.client
    prod = product(batch="20250901")
    async with mocked_worker(client, task_queue) as (_, store):
        cases = StoreProductCases(store)
        a = await open_branch(client, task_queue, HANGZHOU, prod)
        b = await open_branch(client, task_queue, NINGBO, with_batch(prod, " 20250901"))
        on = await today(ts_env)
        case_id = await report(ts_env, cases, task_queue, fail_of(a, on))
        await report(ts_env, cases, task_queue, fail_of(b, on + timedelta(days=3)))
        case = client.get_workflow_handle_for(ProductCaseWorkflow.run, case_id)
        status = await wait_case(case, has_fails(2))
        assert status.fails[1].duplicate_of == a.order.sample_no
        assert status.merged_case_id is None and status.stage == "collecting"
        assert not await exists(client, f"{case_id}-merged-1")
        for inp in (a, b):  # each sample keeps its own enforcement case
            assert await branch_runs_its_own_case(client, inp)

        # Nothing new within the window after the last fail: the case ends itself. (Skip the time
        # explicitly: result()'s own skipping long-polls past the server's history deadline here.)
        await ts_env.sleep(timedelta(days=95))
        result = await case.result()
        assert result.stage == "closed" and result.merged_case_id is None
        assert (await ts_env.get_current_time()).astimezone(CHINA).date() >= on + timedelta(days=93)
        row = store.find("product_cases", case_workflow_id=case_id)
        assert row is not None and row["closed_at"] is not None and row["merged_case_workflow_id"] is None
        assert row["fails"][b.order.sample_no]["duplicate_of"] == a.order.sample_no


async def test_two_regions_outside_the_window_do_not_merge(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    client = ts_env.client
    prod = product()
    async with mocked_worker(client, task_queue) as (_, store):
        cases = StoreProductCases(store)
        a = await open_branch(client, task_queue, HANGZHOU, with_batch(prod, "B-1"))
        case_id = await report(ts_env, cases, task_queue, fail_of(a, await today(ts_env)))
        first = await client.get_workflow_handle_for(ProductCaseWorkflow.run, case_id).describe()
        await ts_env.sleep(timedelta(days=100))
        b = await open_branch(client, task_queue, NINGBO, with_batch(prod, "B-2"))
        await report(ts_env, cases, task_queue, fail_of(b, await today(ts_env)))
        case = client.get_workflow_handle_for(ProductCaseWorkflow.run, case_id)
        # The first case ended after its quiet window; the later fail opened a new one, alone.
        status = await wait_case(case, lambda s: [x.sample_no for x in s.fails] == [b.order.sample_no])
        assert (await case.describe()).run_id != first.run_id
        assert status.merged_case_id is None and status.stage == "collecting"
        assert not await exists(client, f"{case_id}-merged-1")
        assert await branch_runs_its_own_case(client, b)
        row = store.find("product_cases", case_workflow_id=case_id)
        assert row is not None and set(row["fails"]) == {a.order.sample_no, b.order.sample_no}
        assert row["closed_at"] is None  # reopened


async def test_a_third_region_within_the_window_joins_the_merged_case(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    client = ts_env.client
    prod = product()
    async with mocked_worker(client, task_queue) as (_, store):
        cases = StoreProductCases(store)
        a = await open_branch(client, task_queue, HANGZHOU, with_batch(prod, "1"))
        b = await open_branch(client, task_queue, NINGBO, with_batch(prod, "2"))
        on = await today(ts_env)
        case_id = await report(ts_env, cases, task_queue, fail_of(a, on))
        await report(ts_env, cases, task_queue, fail_of(b, on))
        case = client.get_workflow_handle_for(ProductCaseWorkflow.run, case_id)
        await wait_case(case, lambda s: s.merged_case_id is not None)
        await ts_env.sleep(timedelta(days=40))
        c = await open_branch(client, task_queue, WENZHOU, with_batch(prod, "3"))
        await report(ts_env, cases, task_queue, fail_of(c, await today(ts_env)))
        status = await wait_case(case, lambda s: len(s.fails) == 3 and s.fails[2].followed is not None)
        merged_id = f"{case_id}-merged-1"
        assert status.fails[2].merged_case == merged_id and status.fails[2].followed
        assert len(status.merged) == 1 and status.merged[0].members[-1] == c.order.sample_no
        assert status.merged[0].regions == [HANGZHOU, NINGBO, WENZHOU]
        result = await branch_result(client, c)
        assert result.outcome == "merged" and result.data == {"merged_case": merged_id}
        assert not await exists(client, f"{case_id}-merged-2")
        assert await _running(client.get_workflow_handle(merged_id))
        row = store.find("product_cases", case_workflow_id=case_id)
        assert row is not None and row["fails"][c.order.sample_no]["merged_case"] == merged_id

        # The merged case itself takes the sample: its case file lists all three, and a supplementary
        # transfer letter (once) names the joining sample and lists every sample with its report number.
        samples = [a, b, c]
        for _ in range(100):
            merged_row = store.find("enforcement_cases", workflow_id=merged_id)
            if merged_row is not None and len(merged_row["merged_samples"] or []) == 3:
                break
            await asyncio.sleep(0.1)
        assert merged_row is not None and [(x["sample_no"], x["report_no"]) for x in merged_row["merged_samples"]] \
            == [(x.order.sample_no, x.report_no) for x in samples]
        letters = [n for n in store.notices_for(merged_id) if n["template"] == "case_transfer"]
        assert [n["title"] for n in letters] == ["案件移送函", "补充案件移送函"]
        first, supplement = letters[0]["body"], letters[1]["body"]
        assert c.order.sample_no not in first
        assert all(x.order.sample_no in supplement and str(x.report_no) in supplement for x in samples)
        assert f"抽样单编号为{c.order.sample_no}的样品" in supplement
        merged = client.get_workflow_handle(merged_id)
        timeline = (await merged.query("status", result_type=BranchStatus)).timeline
        assert [e.event for e in timeline].count("joined") == 1


@pytest.fixture
def internal_key() -> Iterator[None]:
    """The worker's keyring as a deployment has it: internal signals must be sealed by Spotcheck itself."""
    before = (signing.keyring(), signing.required())
    signing.configure({"internal-test": b"k" * 32}, require=False, internal_key_id="internal-test")
    yield
    signing.configure(before[0], require=before[1])


async def test_a_forged_or_repeated_join_changes_nothing(
    ts_env: WorkflowEnvironment, task_queue: str, internal_key: None
) -> None:
    """add_merged_sample comes only from the product case: junk, an unsealed sample and a sample already in
    the case add nothing and issue no letter; a sealed new sample is added with one supplementary letter."""
    client = ts_env.client
    async with mocked_worker(client, task_queue) as (_, store):
        data = f.branch_input("enforcement", context={"reason": "merged_case", "merged_samples": [
            {"sample_no": "S-1", "workflow_id": "sample-S-1", "region": HANGZHOU, "batch": "1", "report_no": "R-1"},
        ]})
        wid = f"case-test-{uuid.uuid4().hex[:8]}-merged-1"
        handle = await client.start_workflow(EnforcementWorkflow.run, BranchInput.model_validate(data), id=wid,
                                             task_queue=task_queue)

        async def letters(n: int) -> list[dict[str, Any]]:
            for _ in range(100):
                found = [x for x in store.notices_for(wid) if x["template"] == "case_transfer"]
                if len(found) >= n:
                    return found
                await asyncio.sleep(0.1)
            return found

        assert len(await letters(1)) == 1
        for junk in ([1, 2], {"sample_no": 7}, "S-2", {"sample_no": "S-9", "region": NINGBO}):
            await handle.signal("add_merged_sample", junk)
        await handle.signal("add_merged_sample", signing.seal({"sample_no": "S-1", "region": HANGZHOU}, wid))
        await handle.signal("add_merged_sample", signing.seal({"sample_no": "S-2", "region": NINGBO,
                                                               "report_no": "R-2"}, wid))
        found = await letters(2)
        assert [x["title"] for x in found] == ["案件移送函", "补充案件移送函"]
        assert "S-9" not in found[1]["body"] and "R-1" in found[1]["body"] and "R-2" in found[1]["body"]
        status = await handle.query("status", result_type=BranchStatus)
        assert [e.text for e in status.timeline if e.event == "joined"] == [
            f"sample S-2 ({NINGBO}) joins the merged case"]
        assert sum(e.event == "forged" for e in status.timeline) == 4
        await handle.terminate()


async def test_reporting_twice_records_one_fail(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    client = ts_env.client
    async with running_worker(client, pool, task_queue):
        cases = ProductCaseActivities(pool)
        a = await open_branch(client, task_queue, HANGZHOU, product(batch="X1"))
        fail = fail_of(a, await today(ts_env))
        case_id = await report(ts_env, cases, task_queue, fail)
        await report(ts_env, cases, task_queue, fail)  # a retried activity
        case = client.get_workflow_handle_for(ProductCaseWorkflow.run, case_id)
        await wait_case(case, has_fails(1))
        await report(ts_env, cases, task_queue, fail)  # again, after the case has handled it
        await asyncio.sleep(0.5)
        status = await case_status(case)
        assert [x.sample_no for x in status.fails] == [a.order.sample_no]
        row = await product_case_row(pool, case_id)
        assert row is not None and list(row["fails"]) == [a.order.sample_no]


async def test_bad_reports_are_rejected_and_never_stall_the_case(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    client = ts_env.client
    prod = product()
    async with mocked_worker(client, task_queue) as (_, store):
        cases = StoreProductCases(store)
        a = await open_branch(client, task_queue, HANGZHOU, with_batch(prod, "1"))
        case_id = await report(ts_env, cases, task_queue, fail_of(a, await today(ts_env)))
        case = client.get_workflow_handle_for(ProductCaseWorkflow.run, case_id)
        await wait_case(case, has_fails(1))
        other = await open_branch(client, task_queue, NINGBO, product())  # another product
        await case.signal(ProductCaseWorkflow.report_fail, {"sample_no": "nonsense"})
        await case.signal(ProductCaseWorkflow.report_fail, fail_of(other, await today(ts_env)))
        status = await wait_case(case, lambda s: len(s.rejected) == 2)
        assert "not a fail report" in status.rejected[0] and "not of this case" in status.rejected[1]
        b = await open_branch(client, task_queue, NINGBO, with_batch(prod, "2"))
        await report(ts_env, cases, task_queue, fail_of(b, await today(ts_env)))
        status = await wait_case(case, lambda s: s.merged_case_id is not None)
        assert [x.sample_no for x in status.fails] == [a.order.sample_no, b.order.sample_no]

        # A case started with nothing valid ends at once instead of waiting for a window that never opened.
        state = ProductCaseState(key=ProductKey.of(SampleOrder.model_validate(f.order("online", product=product()))))
        empty = await client.start_workflow(
            ProductCaseWorkflow.run, state, id=state.key.case_id, task_queue=task_queue,
            start_signal="report_fail", start_signal_args=[{"order": "?"}],
        )
        result = await empty.result()
        assert result.stage == "closed" and result.fails == [] and len(result.rejected) == 1


async def test_a_long_case_continues_as_new_and_still_merges(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    client = ts_env.client
    prod = product()
    # No workflow cache: across continue-as-new the test server can leave a run's task on a cached
    # worker's sticky queue, and a query then waits out its deadline on a loaded machine.
    async with mocked_worker(client, task_queue, max_cached_workflows=0) as (_, store):
        cases = StoreProductCases(store)
        on = await today(ts_env)
        # No branches opened here: the follow signals find nothing, which the case takes in its stride.
        fails = [fail_of(BranchInput.model_validate(f.branch_input(
            "enforcement", region=HANGZHOU, product=with_batch(prod, f"L{i}"))), on) for i in range(8)]
        state = ProductCaseState(key=ProductKey.of(fails[0].order), continue_after_events=50)
        case = await client.start_workflow(
            ProductCaseWorkflow.run, state, id=state.key.case_id, task_queue=task_queue,
            start_signal="report_fail", start_signal_args=[fails[0]],
        )
        for x in fails[1:]:
            await report(ts_env, cases, task_queue, x)
        await wait_case(case, has_fails(8), within=90)
        assert (await case.describe()).run_id != case.first_execution_run_id
        late = fail_of(BranchInput.model_validate(f.branch_input(
            "enforcement", region=NINGBO, product=with_batch(prod, "L9"))), on + timedelta(days=1))
        await report(ts_env, cases, task_queue, late)
        status = await wait_case(case, lambda s: s.merged_case_id is not None, within=90)
        assert status.merged_case_id == f"{state.key.case_id}-merged-1"
        assert len(status.merged[0].members) == 9 and not any(x.followed for x in status.fails)


async def test_monitors_see_the_product_and_the_stage(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    """On the dev server (the time-skipping server keeps no static summary): the one-line summary the
    reporting activity starts the case with, and the search attributes a monitor filters on."""
    client = dev_env.client
    prod = product()
    async with mocked_worker(client, task_queue) as (_, store):
        cases = StoreProductCases(store)
        inp = BranchInput.model_validate(f.branch_input("enforcement", region=HANGZHOU, product=prod))
        case_id = await report(dev_env, cases, task_queue, fail_of(inp, date.today()))
        case = client.get_workflow_handle_for(ProductCaseWorkflow.run, case_id)
        await wait_case(case, has_fails(1))
        description = await case.describe()
        summary = await description.static_summary()
        assert summary is not None
        for part in (prod["name"], prod["brand"], prod["model"], "深圳闪充科技有限公司", "91440300MA5G7HJK8D"):
            assert part in summary
        query = (f'WorkflowId = "{case_id}" AND Stage = "collecting" AND EnterpriseCode = "91440300MA5G7HJK8D" '
                 f'AND ProductCode = "{prod["classification_code"]}"')
        for _ in range(50):  # visibility is eventually consistent
            if (await client.count_workflows(query)).count == 1:
                break
            await asyncio.sleep(0.1)
        assert (await client.count_workflows(query)).count == 1
        await case.terminate("test done")


async def test_after_a_worker_restart_the_case_and_its_merge_are_recorded_once(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    client = ts_env.client
    prod = product()
    # The worker that stops first keeps no cache (see running_worker: no sticky queue left behind).
    async with running_worker(client, pool, task_queue, max_cached_workflows=0):
        cases = ProductCaseActivities(pool)
        a = await open_branch(client, task_queue, HANGZHOU, with_batch(prod, "1"))
        b = await open_branch(client, task_queue, NINGBO, with_batch(prod, "2"))
        on = await today(ts_env)
        case_id = await report(ts_env, cases, task_queue, fail_of(a, on))
        await wait_case(client.get_workflow_handle_for(ProductCaseWorkflow.run, case_id), has_fails(1))
    async with running_worker(client, pool, task_queue):
        await report(ts_env, cases, task_queue, fail_of(b, on))
        case = client.get_workflow_handle_for(ProductCaseWorkflow.run, case_id)
        await wait_case(case, lambda s: s.merged_case_id is not None and all(x.followed for x in s.fails))
        for inp in (a, b):
            result = await branch_result(client, inp)
            assert result.outcome == "merged"
    merged_id = f"{case_id}-merged-1"
    assert await pool.fetchval("SELECT count(*) FROM product_cases WHERE case_workflow_id = $1", case_id) == 1
    row = await product_case_row(pool, case_id)
    assert row is not None and sorted(row["fails"]) == sorted([a.order.sample_no, b.order.sample_no])
    assert await pool.fetchval("SELECT count(*) FROM enforcement_cases WHERE workflow_id = $1", merged_id) == 1
    assert await pool.fetchval(
        "SELECT count(*) FROM notices WHERE workflow_id = $1 AND template = 'case_transfer'", merged_id) == 1


@pytest.fixture(autouse=True)
def _no_rule_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    # The merge window is the rule pack's 90 days in these tests.
    monkeypatch.delenv("SPOTCHECK_RULE_OVERRIDES", raising=False)
