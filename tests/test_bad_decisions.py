"""Every kind of bad decision, via update (rejected with the reason, kept out of history) and via signal
(recorded as rejected; the workflow neither fails nor stalls). A repeated request id changes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities.records import audit_trail
from starter.client import DecisionRejected
from tests import factories as f
from tests.workflow_env import awaiting, running_worker, terminate_when_idle, to_testing, wait_for
from workflows.sample import SampleWorkflow

BAD: list[tuple[str, dict[str, Any], str]] = [
    ("wrong stage", f.delivered(), "not awaited: the sample waits for lab_report, not result_delivery"),
    ("wrong role", f.decision("lab_report", "pass", "sampler", data={"report_no": "R1"}),
     "role sampler may not decide lab_report=pass; allowed: lab"),
    ("unknown outcome", f.decision("lab_report", "maybe", "lab", data={"report_no": "R1"}),
     "unknown outcome 'maybe' for lab_report; allowed: pass, fail"),
    ("fail without items", f.decision("lab_report", "fail", "lab", data={"report_no": "R1"}),
     "data.failed_items: a fail must name at least one failed item"),
    ("malformed payload", f.decision("lab_report", "pass", "lab", data={"report_no": "R1", "colour": "red"}),
     "malformed data for lab_report: data.colour: Extra inputs are not permitted"),
    ("missing report number", f.decision("lab_report", "pass", "lab"),
     "malformed data for lab_report: data.report_no: Field required"),
    ("unknown kind", f.decision("lab_verdict", "pass", "lab"), "malformed decision: kind: Input should be"),
    ("no actor", {"kind": "lab_report", "outcome": "pass", "request_id": "rq-noactor", "data": {"report_no": "R"}},
     "malformed decision: actor: Field required"),
    ("unknown role", f.decision("lab_report", "pass", "boss", data={"report_no": "R1"}),
     "malformed decision: actor.role: Input should be"),
]


async def _accepted_updates(handle) -> int:  # type: ignore[no-untyped-def]
    history = await handle.fetch_history()
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)


async def test_bad_updates_are_rejected_with_the_reason_and_audited(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        order = f.order("offline_production")
        no = order["sample_no"]
        handle = await to_testing(client, order)
        for name, bad, reason in BAD:
            with pytest.raises(DecisionRejected) as err:
                await client.decide(no, f.copy_of(bad))
            assert reason in err.value.reason, name
        # A raw update (no client-side help) gets the same answer: a rejected receipt naming the reason,
        # admitted into history and audited by the workflow itself (nothing is sent twice).
        accepted_before = await _accepted_updates(handle)
        raw = await handle.execute_update(SampleWorkflow.submit_decision, f.delivered())
        assert raw["accepted"] is False
        assert "not awaited: the sample waits for lab_report" in raw["reason"]
        assert await _accepted_updates(handle) == accepted_before + 1
        # None of it moved or failed the sample: the right decision is still taken.
        await client.decide(no, f.report("pass"))
        status = await wait_for(handle, lambda s: s.stage == "retention")
        assert status.verdict == "pass"
        assert len([e for e in status.timeline if e.event == "rejected"]) == len(BAD) + 1
        await terminate_when_idle(handle)
    trail = await audit_trail(pool, handle.id)
    rejected = [r for r in trail if not r["accepted"]]
    assert len(rejected) == len(BAD) + 1  # one row per attempt: no second send to audit a refusal
    assert all(r["reason"] for r in rejected)
    assert {r["via"] for r in rejected} == {"update"}
    for name, _, reason in BAD:
        assert any(reason in r["reason"] for r in rejected), name


async def test_bad_signals_are_recorded_and_never_stall_the_sample(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        order = f.order("online")
        no = order["sample_no"]
        handle = await to_testing(client, order)
        for _, bad, _ in BAD:
            await handle.signal(SampleWorkflow.decide, f.copy_of(bad))
        await handle.signal(SampleWorkflow.decide, "not even an object")
        await client.decide(no, f.report("fail"), signal=True)
        status = await wait_for(handle, awaiting("result_delivery"))
        assert status.verdict == "fail_provisional"
        rejected = [e for e in status.timeline if e.event == "rejected"]
        assert len(rejected) == len(BAD) + 1
        for (name, _, reason), event in zip(BAD, rejected, strict=False):
            assert reason in event.text, name
        await terminate_when_idle(handle)
    trail = await audit_trail(pool, handle.id)
    assert sum(1 for r in trail if not r["accepted"]) == len(BAD) + 1
    assert [r["kind"] for r in trail if r["accepted"]][-1] == "lab_report"


async def test_repeated_request_id_gets_the_first_receipt_and_changes_nothing(
    ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    async with running_worker(ts_env.client, pool, task_queue) as client:
        order = f.order("offline_production")
        no = order["sample_no"]
        handle = await to_testing(client, order)
        report = f.report("fail")
        first = await client.decide(no, report)
        await wait_for(handle, awaiting("result_delivery"))
        again = await client.decide(no, f.copy_of(report))  # now out of stage, but a repeat: same receipt
        assert again == first
        await client.decide(no, f.copy_of(report), signal=True)
        delivery = f.delivered()
        await client.decide(no, delivery)
        status = await wait_for(handle, awaiting("objection"))
        # The repeated signal did not count as a second report nor as a rejected decision.
        assert [e.text for e in status.timeline if e.event == "decision"].count(
            "lab_report = fail by lab tester") == 1
        assert not [e for e in status.timeline if e.event == "rejected"]
        await terminate_when_idle(handle)
    trail = await audit_trail(pool, handle.id)
    assert [(r["kind"], r["accepted"]) for r in trail if r["request_id"] == report["request_id"]] == [
        ("lab_report", True)
    ]
