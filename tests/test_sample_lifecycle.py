"""SampleWorkflow on the time-skipping server: every path of the core lifecycle. The activities are the
in-memory ones (tests/mock_activities.py): what the workflow recorded is read from their store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from starter.client import DecisionRejected
from tests import factories as f
from tests.workflow_env import (
    awaiting,
    idle,
    mocked_worker,
    search_attributes,
    settle_in_post_handling,
    terminate_when_idle,
    to_objection_window,
    to_testing,
    wait_for,
)


async def test_pass_path_reaches_closed(ts_env: WorkflowEnvironment, task_queue: str) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("offline_production")
        handle = await to_testing(client, order)
        await client.decide(order["sample_no"], f.report("pass"))
        # The return is awaited from the verdict, due when the three-month retention period ends.
        status = await wait_for(handle, lambda s: s.stage == "retention" and bool(s.awaiting))
        assert status.verdict == "pass"
        (wait,) = status.awaiting
        assert (wait.kind, wait.rule_id) == ("disposal", "sample_retention")
        retention = next(d for d in status.deadlines if d.rule_id == "sample_retention")
        assert retention.unit == "months" and retention.length == 3
        assert wait.due_at == retention.due and (retention.due - retention.start).days >= 89
        await client.decide(order["sample_no"], f.disposal("returned"))
        result = await handle.result()
    assert (result.stage, result.verdict) == ("closed", "pass")
    stages = [e.text.split(":")[0] for e in result.timeline if e.event == "stage"]
    assert stages == [f"stage {s}" for s in
                      ("sampling", "in_transit", "received", "testing", "retention", "closed")]
    row = store.find("samples", sample_no=order["sample_no"])
    assert row is not None and (row["stage"], row["verdict"]) == ("closed", "pass")
    notices = store.notices_for(handle.id)
    assert [n["template"] for n in notices] == ["inspection_result"]


async def test_a_return_not_made_within_retention_is_overdue(ts_env: WorkflowEnvironment, task_queue: str) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("offline_production")
        handle = await to_testing(client, order)
        await client.decide(order["sample_no"], f.report("pass"))
        await wait_for(handle, awaiting("disposal"))
        await ts_env.sleep(timedelta(days=100))  # past the end of the retention period, nothing decided
        status = await wait_for(handle, lambda s: any(a.overdue for a in s.awaiting))
        assert status.stage == "retention" and [a.kind for a in status.awaiting] == ["disposal"]
        assert any(e.event == "escalated" for e in status.timeline), [e.event for e in status.timeline]
        # Late, but taken: the sample closes on the return.
        await client.decide(order["sample_no"], f.disposal("returned"))
        assert (await handle.result()).stage == "closed"


async def test_purchased_sample_is_never_returned(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("online")
        handle = await to_testing(client, order)
        await client.decide(order["sample_no"], f.report("pass"))
        await wait_for(handle, lambda s: s.stage == "retention")
        await wait_for(handle, awaiting("disposal"))
        with pytest.raises(DecisionRejected, match="purchased sample is not returned"):
            await client.decide(order["sample_no"], f.disposal("returned"))
        await client.decide(order["sample_no"], f.disposal("disposed"))
        assert (await handle.result()).stage == "closed"


async def test_fail_without_objection_is_final_after_the_window(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("offline_circulation")
        no = order["sample_no"]
        handle = await to_testing(client, order)
        await client.decide(no, f.report("fail"))
        status = await wait_for(handle, awaiting("result_delivery"))
        assert (status.stage, status.verdict) == ("result_notified", "fail_provisional")
        await client.decide(no, f.delivered())
        status = await wait_for(handle, awaiting("objection"))
        window = next(a for a in status.awaiting if a.kind == "objection")
        assert window.rule_id == "objection_window" and "产品质量法" in window.basis
        await ts_env.sleep(timedelta(days=17))
        result = await wait_for(handle, lambda s: s.stage == "post_handling" and bool(s.branches))
        assert result.verdict == "fail"
        assert result.failed_items[0]["standard"] == "GB 4943.1-2022"
        # An objection after the window is refused with the window's end date.
        with pytest.raises(DecisionRejected, match="objection no longer accepted: the .* ended on"):
            await client.decide(no, f.objection())
        await terminate_when_idle(handle)
    notices = store.notices_for(handle.id)
    assert [n["template"] for n in notices] == ["inspection_result"]
    assert "GB 4943.1-2022" in notices[0]["body"] and "十五日" in notices[0]["body"]


@pytest.mark.parametrize("retest_outcome", ["pass", "fail"])
async def test_objection_accepted_then_retest(
    ts_env: WorkflowEnvironment, task_queue: str, retest_outcome: str
) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("online")
        no = order["sample_no"]
        handle = await to_objection_window(client, order)
        await client.decide(no, f.objection())
        await wait_for(handle, awaiting("objection_review"))
        await client.decide(no, f.review("accepted"))
        status = await wait_for(handle, awaiting("retest_report"))
        assert status.stage == "retest"
        await client.decide(no, f.report(retest_outcome, kind="retest_report"))
        if retest_outcome == "pass":
            status = await wait_for(handle, lambda s: s.stage == "retention")
            assert status.verdict == "pass" and status.failed_items == []
            await wait_for(handle, awaiting("disposal"))
            await client.decide(no, f.disposal())
            result = await handle.result()
        else:
            result = await settle_in_post_handling(handle)
    expected = ("closed", "pass") if retest_outcome == "pass" else ("post_handling", "fail")
    assert (result.stage, result.verdict) == expected
    templates = sorted(n["template"] for n in store.notices_for(handle.id))
    assert templates == ["inspection_result", "objection_decision"]


async def test_objection_rejected_makes_the_fail_final(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("offline_production")
        no = order["sample_no"]
        handle = await to_objection_window(client, order)
        await client.decide(no, f.objection())
        await wait_for(handle, awaiting("objection_review"))
        with pytest.raises(DecisionRejected, match="reason: required"):
            await client.decide(no, f.decision("objection_review", "rejected", "case_officer"))
        await client.decide(no, f.review("rejected"))
        result = await settle_in_post_handling(handle)
    assert (result.stage, result.verdict) == ("post_handling", "fail")


async def test_overdue_lab_report_escalates_and_sets_overdue(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("offline_production")
        no = order["sample_no"]
        handle = await to_testing(client, order)
        attrs = await search_attributes(handle)
        assert attrs["Overdue"] is False and attrs["AwaitingRole"] == ["lab"] and attrs["Stage"] == "testing"
        await ts_env.sleep(timedelta(days=40))  # 20 working days is about four weeks
        status = await wait_for(handle, lambda s: any(a.overdue for a in s.awaiting))
        assert status.stage == "testing"
        assert any(e.event == "escalated" for e in status.timeline)
        attrs = await search_attributes(handle)
        assert attrs["Overdue"] is True and attrs["Stage"] == "testing"
        row = store.find("samples", sample_no=no)
        assert row is not None and row["overdue"] is True and row["awaiting_kind"] == "lab_report"
        # Late, but still taken: escalation keeps waiting.
        await client.decide(no, f.report("fail"))
        status = await wait_for(handle, awaiting("result_delivery"))
        assert not any(a.overdue for a in status.awaiting)
        assert (await search_attributes(handle))["Overdue"] is False
        await terminate_when_idle(handle)
    channels = sorted(m["channel"] for m in store.outbox_for(handle.id))
    assert channels == ["escalation", "reminder"]
    templates = [n["template"] for n in store.notices_for(handle.id)]
    assert templates.count("deadline_escalation") == 1


@pytest.mark.parametrize("outcome", ["pass", "fail"])
async def test_evaluative_sample_has_no_objection_path(
    ts_env: WorkflowEnvironment, task_queue: str, outcome: str
) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("evaluative")
        no = order["sample_no"]
        handle = await to_testing(client, order)
        await client.decide(no, f.report(outcome))
        # No backup sample is kept: no retention period; a risk finding goes to the regulator first.
        await wait_for(handle, awaiting("disposal"))
        await client.decide(no, f.disposal())
        result = await handle.result()
    stages = {e.stage for e in result.timeline}
    assert not stages & {"result_notified", "objection_window", "objection_review", "retest"}
    if outcome == "fail":
        assert (result.stage, result.verdict) == ("closed", "fail")
        assert {"post_handling", "disposal"} <= stages
        notice = (store.notices_for(handle.id))[0]
        assert "风险" in notice["body"]
    else:
        assert (result.stage, result.verdict) == ("closed", "pass")


async def test_refusal_to_be_sampled(ts_env: WorkflowEnvironment, task_queue: str) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("offline_production")
        handle = await client.start_sample(order)
        await wait_for(handle, awaiting("sampling_record"))
        await client.decide(order["sample_no"], f.decision("sampling_record", "refused", "sampler", reason="拒绝抽样"))
        result = await settle_in_post_handling(handle)
    assert (result.stage, result.verdict) == ("post_handling", "refused")
    assert [b.branch for b in result.branches] == ["enforcement"]
    trail = store.audit_trail(handle.id)
    assert [(r["kind"], r["outcome"], r["accepted"]) for r in trail] == [("sampling_record", "refused", True)]


async def test_lab_rejects_the_sample_and_it_is_sampled_again(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("offline_circulation")
        no = order["sample_no"]
        handle = await client.start_sample(order)
        await wait_for(handle, awaiting("sampling_record"))
        await client.decide(no, f.sealed())
        await wait_for(handle, awaiting("sample_receipt"))
        await client.decide(no, f.decision("sample_receipt", "rejected", "lab", reason="封条破损"))
        status = await wait_for(handle, awaiting("sampling_record"))
        assert status.stage == "sampling"
        assert any(e.event == "resample" for e in status.timeline)
        await terminate_when_idle(handle)


async def test_receipt_wait_takes_its_default_when_the_lab_is_silent(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    """sample_transit escalates; once the lab is silent past the deadline the wait stays open, overdue."""
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("offline_production")
        handle = await client.start_sample(order)
        await wait_for(handle, awaiting("sampling_record"))
        await client.decide(order["sample_no"], f.sealed())
        waiting = await wait_for(handle, awaiting("sample_receipt"))
        await idle(handle)
        # Past the deadline, whatever day of the week (and China date) the test runs on.
        await ts_env.sleep(waiting.awaiting[0].due_at - await ts_env.get_current_time() + timedelta(hours=1))
        status = await wait_for(handle, lambda s: any(a.overdue for a in s.awaiting))
        assert status.awaiting[0].kind == "sample_receipt"
        await terminate_when_idle(handle)


async def test_labelled_producer_may_deny_the_product_while_the_seller_may_object(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("online")  # bought from a shop; the labelled producer is another firm
        no = order["sample_no"]
        handle = await to_testing(client, order)
        await client.decide(no, f.report("fail"))
        status = await wait_for(handle, lambda s: {a.kind for a in s.awaiting} == {
            "result_delivery", "producer_confirmation"})
        with pytest.raises(DecisionRejected, match="reason: required"):
            await client.decide(no, f.decision("producer_confirmation", "denied", "enterprise"))
        await client.decide(no, f.decision("producer_confirmation", "denied", "enterprise", reason="非我司产品"))
        status = await wait_for(handle, lambda s: s.producer_answer == "denied")
        assert any(e.event == "producer_denied" and "非我司产品" in e.text for e in status.timeline)
        await client.decide(no, f.delivered())
        await wait_for(handle, awaiting("objection"))
        await client.decide(no, f.objection("waived"))
        result = await settle_in_post_handling(handle)
    assert (result.stage, result.verdict, result.producer_answer) == ("post_handling", "fail", "denied")
    notice = (store.notices_for(handle.id))[0]
    assert "标称生产者" in notice["body"] and "五个工作日" in notice["body"]


async def test_a_silent_labelled_producer_is_taken_to_confirm(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("offline_circulation")
        no = order["sample_no"]
        handle = await to_testing(client, order)
        await client.decide(no, f.report("fail"))
        await wait_for(handle, lambda s: {a.kind for a in s.awaiting} == {"producer_confirmation", "result_delivery"})
        await client.decide(no, f.delivered())
        await wait_for(handle, awaiting("objection"))
        await ts_env.sleep(timedelta(days=20))  # past both the 5 working days and the 15-day window
        result = await settle_in_post_handling(handle)
    assert result.producer_answer == "confirmed"
    trail = store.audit_trail(handle.id)
    defaults = [r for r in trail if r["via"] == "default"]
    assert [(r["kind"], r["outcome"]) for r in defaults] == [("producer_confirmation", "confirmed")]


@pytest.mark.parametrize("channel", ["offline_circulation", "offline_production"])
async def test_a_fail_made_outside_the_area_is_told_to_the_producers_bureau_once(
    channel: str, ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    """Order 18 Art. 44 ¶2: the organising bureau (330200, Ningbo) finds a failed product whose labelled
    producer is in Tianjin (120222): a 通报 to the producer's bureau at the same level (120200), through the
    outbox with its own record, once. A producer sampled inside the area (330106 in 330100) is told nothing.
    The result notice orders the stop of making or selling the same product (Art. 45)."""
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order(channel)
        handle = await to_objection_window(client, order)
        await ts_env.sleep(timedelta(days=17))
        await settle_in_post_handling(handle)
    told = [r for r in store.rows["result_handovers"].values() if r["workflow_id"] == handle.id]
    sent = [m for m in store.outbox_for(handle.id) if m["step_id"] == "producer-bureau-notification"]
    notice = store.notices_for(handle.id)[0]["body"]
    if channel == "offline_production":
        assert (told, sent) == ([], [])
        assert "第四十五条" in notice and "立即停止生产、销售同一产品" in notice
        return
    [record], [message] = told, sent
    assert (record["action"], record["recipient"], record["step_id"]) == (
        "notify_producer_bureau", "行政区划代码 120200 的市场监督管理局", "producer-bureau-notification")
    assert "第四十四条第二款" in record["basis"] and record["reference"] == f"outbox:{message['id']}"
    assert record["data"]["producer"]["region"] == "120222" and record["data"]["organising_region"] == "330200"
    assert (message["channel"], message["recipient"]) == ("notification", "行政区划代码 120200 的市场监督管理局")
    assert len(store.calls["record_result_handover"]) == 1
    assert "第四十五条" in notice and "立即停止销售同一产品" in notice
