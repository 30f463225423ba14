"""Nothing that comes in can jam a sample (issue 7): any signal or update of any shape and size is taken
without a workflow task failure, refused with its reason and recorded as a summary; internal signals from
outside are refused and audited; the answer a caller gets always matches what the sample did.

The payloads are drawn by hypothesis (bounded here; HYPOTHESIS_PROFILE=long draws more, see
tests/test_fuzz_inputs.py) and thrown at one running sample each round."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor, Replayer

from activities.records import audit_trail, sample_rows
from codec import spotcheck_data_converter
from domain import intake, signing
from domain.intake import MAX_INPUT_BYTES
from starter.client import DecisionRejected
from tests import factories as f
from tests.workflow_env import (
    awaiting,
    flood,
    running_worker,
    search_attributes,
    status_of,
    terminate_when_idle,
    to_testing,
    wait_for,
)
from workflows.registry import all_workflows

# JSON of every shape, with the characters PostgreSQL and JSON encoders choke on.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(codec="utf-8", include_characters="\x00"), max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
# Junk that looks like a decision: a valid one with a field replaced.
FIELDS = ["kind", "outcome", "actor", "request_id", "reason", "data", "evidence", "signature"]
# …based on one that is refused anyway (not awaited, wrong role), so that no mutation can be accepted.
MUTATED = st.builds(lambda field, value: {**f.decision("disposal", "disposed", "sampler"), field: value},
                    st.sampled_from(FIELDS), JSON)
PAYLOADS = st.lists(JSON | MUTATED, min_size=12, max_size=12)


async def _workflow_task_failures(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)


@pytest.fixture
def internal_key() -> Iterator[None]:
    """The worker's keyring as a deployment has it: internal signals must be sealed by Spotcheck itself."""
    before = (signing.keyring(), signing.required())
    signing.configure({"internal-test": b"k" * 32, "dev-1": b"d" * 32}, require=False,
                      internal_key_id="internal-test")
    yield
    signing.configure(before[0], require=before[1])


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(payloads=PAYLOADS)
async def test_junk_by_signal_and_update_never_jams_a_sample(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, internal_key: None, payloads: list[Any]
) -> None:
    task_queue = f"tq-fuzz-{uuid.uuid4()}"
    async with running_worker(ts_env.client, pool, task_queue) as client:
        order = f.order("offline_production")
        handle = await to_testing(client, order)
        for payload in payloads:
            await handle.signal("decide", payload)
            receipt = await handle.execute_update("submit_decision", payload)
            assert receipt["accepted"] is False and receipt["reason"], payload
            assert len(receipt["reason"]) <= 300
        # Raw signals of every arity, and the internal ones a client may not send.
        await handle.signal("decide", args=[])
        await handle.signal("decide", args=[1, 2])
        await handle.signal("decide", "x" * (MAX_INPUT_BYTES + 1))
        await handle.signal("branch_update", None)
        await handle.signal("branch_update", {"branch": "credit", "workflow_id": "sample-x-credit", "stage": "x"})
        await handle.signal("operator_retry", {"anything": True})
        # The sample still answers and moves on with the right decision.
        await client.decide(order["sample_no"], f.report("pass"))
        status = await wait_for(handle, lambda s: s.stage == "retention")
        assert status.verdict == "pass"
        assert await _workflow_task_failures(handle) == 0
        await terminate_when_idle(handle)
    trail = await audit_trail(pool, handle.id)
    rejected = [r for r in trail if not r["accepted"]]
    assert rejected and all(r["reason"] for r in rejected)
    # A refused input is kept as a summary, never in full.
    assert all(len(str(r["decision"])) < 4000 for r in rejected)
    forged = [r for r in rejected if r["kind"] == "branch_update"]
    assert len(forged) == 2 and all("branch_update" in r["reason"] for r in forged)


async def test_a_caller_is_answered_what_the_sample_did(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    """A lab report sent right after the receipt (the old race: refused to the caller, then applied): the
    receipt it gets is always what the sample did with it."""
    async with running_worker(ts_env.client, pool, task_queue) as client:
        for _ in range(10):
            order = f.order("offline_production")
            no = order["sample_no"]
            handle = await client.start_sample(order)
            await wait_for(handle, awaiting("sampling_record"))
            await client.decide(no, f.sealed())
            await wait_for(handle, awaiting("sample_receipt"))
            report = f.report("fail")
            answers = await asyncio.gather(
                client.client.get_workflow_handle(handle.id).execute_update("submit_decision", f.received()),
                client.client.get_workflow_handle(handle.id).execute_update("submit_decision", report),
                return_exceptions=True,
            )
            assert not [a for a in answers if isinstance(a, BaseException)]
            taken = answers[1]["accepted"]
            if taken:
                status = await wait_for(handle, awaiting("result_delivery"))
            else:
                await asyncio.sleep(0.3)
                status = await status_of(handle)
                assert not any(e.event == "decision" and "lab_report" in e.text for e in status.timeline)
            applied = any(e.event == "decision" and e.text.startswith("lab_report") for e in status.timeline)
            assert applied == taken, answers[1]
            await terminate_when_idle(handle)


async def test_a_workflow_task_never_fails_on_a_forged_internal_signal(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, internal_key: None
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        order = f.order("offline_production")
        handle = await to_testing(client, order)
        for name in ("branch_update", "follow_merged_case", "enforcement_result"):
            for args in ([], [None], ["x"], [{"payload": {}, "seal": {"key_id": "internal-1", "mac": "00"}}], [1, 2]):
                await handle.signal(name, args=args)
        await client.decide(order["sample_no"], f.report("pass"))
        await wait_for(handle, lambda s: s.stage == "retention")
        assert await _workflow_task_failures(handle) == 0
        await terminate_when_idle(handle)


@pytest.mark.parametrize("delivered_on", ["2001-01-01", "9999-12-31"])
async def test_a_delivery_date_outside_the_sample_is_refused_naming_the_dates(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, delivered_on: str
) -> None:
    """A plausible typo in the delivery date used to kill the sample; it is refused and the sample waits."""
    async with running_worker(ts_env.client, pool, task_queue) as client:
        order = f.order("offline_production")
        no = order["sample_no"]
        handle = await to_testing(client, order)
        await client.decide(no, f.report("fail"))
        await wait_for(handle, awaiting("result_delivery"))
        bad = f.decision("result_delivery", "delivered", "case_officer", data={"delivered_on": delivered_on})
        receipt = await handle.execute_update("submit_decision", bad)
        assert receipt["accepted"] is False
        assert "data.delivered_on" in receipt["reason"]
        assert delivered_on not in receipt["reason"]
        await client.decide(no, f.delivered())
        await wait_for(handle, awaiting("objection"))
        assert await _workflow_task_failures(handle) == 0
        await terminate_when_idle(handle)


@pytest.mark.parametrize("demo", [False, True])
async def test_the_legal_clock_is_compressed_only_in_demo_or_test_mode(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, monkeypatch: pytest.MonkeyPatch, demo: bool
) -> None:
    """Any caller could compress the legal clock with `time_scale` (an objection window of 1.5 s): only a
    deployment in demo or test mode honours it, as recorded in the sample's own history."""
    monkeypatch.setenv("SPOTCHECK_DEMO_MODE", "1" if demo else "0")
    async with running_worker(ts_env.client, pool, task_queue) as client:
        order = f.order("offline_production", time_scale=86400.0)
        handle = await client.start_sample(order)
        status = await wait_for(handle, awaiting("sampling_record"))
        wait = status.awaiting[0]
        compressed = (wait.due - wait.due_at).total_seconds() > 86400
        assert compressed is demo
        assert any(e.event == "time_scale" for e in status.timeline) is not demo
        # The samples record, written where the wait opened with the policy read beside it, shows the wait
        # due when the workflow's own (capped or compressed) clock says.
        [row] = await sample_rows(pool, workflow_id=handle.id)
        assert (row["awaiting_kind"], row["next_deadline"]) == ("sampling_record", wait.due_at)
        await terminate_when_idle(handle)


async def test_a_long_history_continues_as_new_mid_lifecycle_and_loses_nothing(
    ts_env: WorkflowEnvironment, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of signals (or a long life) makes Temporal suggest continuing as new: the sample continues in
    a new run of the same workflow id at the wait it was in, with the deadlines, answers and parallel
    producer wait it had, and every decision, notice and message is recorded once."""
    from tests.workflow_env import mocked_worker

    monkeypatch.setattr(intake, "MAX_EVENTS_PER_RUN", 60)  # passed through the sandbox: the workflows see it
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("online")  # the labelled producer is another firm: its wait runs in parallel
        no = order["sample_no"]
        handle = await to_testing(client, order)
        await client.decide(no, f.report("fail"))
        before = await wait_for(handle, lambda s: {a.kind for a in s.awaiting} == {
            "result_delivery", "producer_confirmation"})
        async def continued() -> bool:
            return any(e.event == "continued" for e in (await status_of(handle)).timeline)

        await flood(handle, continued, first=30)  # junk: it grows the history and nothing else
        status = await wait_for(handle, lambda s: any(e.event == "continued" for e in s.timeline))
        assert {a.kind for a in status.awaiting} == {"result_delivery", "producer_confirmation"}
        # The same deadlines: the continued run waits on what the first one computed.
        assert {a.kind: a.due for a in status.awaiting} == {a.kind: a.due for a in before.awaiting}
        producer = f.decision("producer_confirmation", "confirmed", "case_officer")
        steps = [f.delivered(), producer, f.objection(), f.review("accepted"), f.report("pass", kind="retest_report")]
        for decision, next_kind in zip(steps, ["objection", None, "objection_review", "retest_report", None],
                                       strict=True):
            await client.decide(no, decision)
            if next_kind:
                await wait_for(handle, awaiting(next_kind))
        result = await wait_for(handle, lambda s: s.stage == "retention" and s.producer_answer is not None)
        await terminate_when_idle(handle)
    assert (result.verdict, result.producer_answer) == ("pass", "confirmed")
    continued = [e for e in result.timeline if e.event == "continued"]
    assert continued, "the sample continued as new"
    trail = store.audit_trail(handle.id)
    accepted = [r["kind"] for r in trail if r["accepted"]]
    assert sorted(accepted) == sorted({*accepted}), "each decision audited once"
    assert {"lab_report", "result_delivery", "objection", "objection_review", "retest_report",
            "producer_confirmation"} <= set(accepted)
    steps_issued = [n["step_id"] for n in store.notices_for(handle.id)]
    assert len(steps_issued) == len(set(steps_issued)), "each notice issued once"
    # The last run's history replays.
    history = await handle.fetch_history()
    await Replayer(workflows=all_workflows(), data_converter=spotcheck_data_converter).replay_workflow(history)


class _FailProjections(Interceptor):
    """Makes every write of the `samples` record (`project_sample`, and `open_wait` which writes it beside
    the wait's deadline) fail for good while `failing` is set, as data PostgreSQL refuses would."""

    def __init__(self) -> None:
        self.failing = True

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        outer = self

        class Inbound(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                if outer.failing and activity.info().activity_type in ("project_sample", "open_wait"):
                    raise ApplicationError("DataError: the data of this step cannot be written",
                                           type="UnstorableDataError", non_retryable=True)
                return await self.next.execute_activity(input)

        return Inbound(next)


async def test_a_write_that_cannot_succeed_waits_visibly_for_an_operator(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    """No activity retries forever on data that can never be written, and the sample never fails: it shows
    `needs_operator` (status, search attribute, an alert in the outbox) until an operator retries."""
    from tests.workflow_env import mocked_worker

    fail = _FailProjections()
    async with mocked_worker(ts_env.client, task_queue, interceptors=[fail]) as (client, store):
        order = f.order("offline_production")
        handle = await client.start_sample(order)
        status = await wait_for(handle, lambda s: s.needs_operator is not None)
        assert "the samples record of" in status.needs_operator and "cannot be written" in status.needs_operator
        assert (await search_attributes(handle))["NeedsOperator"] is True
        assert [m["channel"] for m in store.outbox_for(handle.id)] == ["operator"]
        await handle.signal("operator_retry")  # not mended yet: it fails again and waits again
        await wait_for(handle, lambda s: sum(e.event == "needs_operator" for e in s.timeline) == 2)
        fail.failing = False
        await handle.signal("operator_retry")
        status = await wait_for(handle, lambda s: s.needs_operator is None and awaiting("sampling_record")(s))
        for _ in range(100):  # the retried write done, the attribute follows in the same workflow task
            if (await search_attributes(handle))["NeedsOperator"] is False:
                break
            await asyncio.sleep(0.05)
        assert (await search_attributes(handle))["NeedsOperator"] is False
        assert await _workflow_task_failures(handle) == 0
        await terminate_when_idle(handle)


class _HoldAuditRows(Interceptor):
    """Holds every write of an audit row (`record_decision`, `audit_decision`, and `open_wait` taking rows
    along) until `release` is set, as a slow database would."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        outer = self

        class Inbound(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                kind = activity.info().activity_type
                if kind in ("record_decision", "audit_decision") or (kind == "open_wait" and input.args[0].audits):
                    await outer.release.wait()
                return await self.next.execute_activity(input)

        return Inbound(next)


async def test_the_answer_comes_at_once_and_the_decision_is_acted_on_once_audited(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    """A slow database never holds the caller: the audit row written beside the answer (with the next wait)
    takes longer than its fuse, goes the long way (an activity, held here), and the receipt comes meanwhile;
    the sample opens the wait the decision leads to only once the decision is on the audit trail."""
    from tests.workflow_env import mocked_worker

    hold = _HoldAuditRows()
    async with mocked_worker(ts_env.client, task_queue, interceptors=[hold]) as (client, store):
        order = f.order("offline_production")
        handle = await client.start_sample(order)
        await wait_for(handle, awaiting("sampling_record"))
        receipt = await asyncio.wait_for(client.decide(order["sample_no"], f.sealed()), 10)
        assert receipt is not None and receipt.accepted
        await asyncio.sleep(1.0)
        status = await status_of(handle)
        assert not status.awaiting and not store.audit_trail(handle.id)  # received, the next wait not open
        assert (await search_attributes(handle))["Stage"] == "sampling"  # nor shown to monitors
        hold.release.set()
        status = await wait_for(handle, awaiting("sample_receipt"))
        assert status.stage == "in_transit"
        assert [(r["kind"], r["accepted"]) for r in store.audit_trail(handle.id)] == [("sampling_record", True)]
        scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name
                     for e in (await handle.fetch_history()).events if e.HasField("activity_task_scheduled_event_attributes")]
        assert scheduled == ["audit_decision"]  # the long way, once
        await terminate_when_idle(handle)


async def test_the_answer_leaves_with_its_audit_row_written_and_the_decision_acted_on(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    """On a healthy database the receipt is sent in the workflow task that writes the audit row and acts on
    the decision: when the caller has it, the row is on the audit trail and the next wait is open, with no
    activity task and no second workflow task — the row written in the local activity that opens the wait.
    A refused decision opens no wait: its row is written on its own, in the task that answers."""
    from tests.workflow_env import local_activity_type, mocked_worker

    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        order = f.order("offline_production")
        handle = await client.start_sample(order)
        await wait_for(handle, awaiting("sampling_record"))
        before = len((await handle.fetch_history()).events)
        receipt = await client.decide(order["sample_no"], f.sealed())
        assert receipt is not None and receipt.accepted
        assert [(r["kind"], r["accepted"]) for r in store.audit_trail(handle.id)] == [("sampling_record", True)]
        status = await status_of(handle)
        assert status.stage == "in_transit" and [a.kind for a in status.awaiting] == ["sample_receipt"]
        events = (await handle.fetch_history()).events[before:]
        kinds = [e.WhichOneof("attributes").removesuffix("_event_attributes") for e in events]
        assert kinds.count("workflow_task_completed") == 1, kinds
        assert "activity_task_scheduled" not in kinds, kinds
        assert [local_activity_type(e) for e in events if local_activity_type(e)] == ["open_wait"]

        before = len((await handle.fetch_history()).events)
        with pytest.raises(DecisionRejected):
            await client.decide(order["sample_no"], f.report("pass"))  # the sample waits for its receipt
        assert [(r["kind"], r["accepted"]) for r in store.audit_trail(handle.id)] == [
            ("sampling_record", True), ("lab_report", False)]
        events = (await handle.fetch_history()).events[before:]
        kinds = [e.WhichOneof("attributes").removesuffix("_event_attributes") for e in events]
        assert kinds.count("workflow_task_completed") == 1 and "activity_task_scheduled" not in kinds, kinds
        assert [local_activity_type(e) for e in events if local_activity_type(e)] == ["audit_decision"]
        await terminate_when_idle(handle)
