"""The contracts every post-handling branch keeps, stated once for all of them (docs/design.md §3-4):

(a) bad decisions never stall a branch: each is refused with the reason, by update (a receipt, and
    `SpotcheckClient.decide` raises DecisionRejected) and by signal, shows as rejected in the timeline, is
    audited once per request id, and the branch waits on at its stage for the right decision, which it takes;
(b) records, notices and outbox messages exist exactly once after worker restarts mid-branch;
(c) a missed deadline escalates (Overdue, an escalation notice and outbox message) once, a replay of the
    history does not escalate again, and the late decision is still taken;
(d) a long history continues as new at every wait, which the new run resumes with its deadline, and the
    branch ends as it would have, nothing lost or doubled.

Each branch runs on the time-skipping server, started on its own (its sample does not exist, which a branch
tolerates). What differs per branch is the table CONTRACTS; what is particular to one branch stays in its
tests/test_branch_<branch>.py, which uses `refused` here for its own bad decisions at later waits."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.records import audit_trail, notices_for, outbox_for
from domain import intake
from domain.branches import BRANCHES, Branch, BranchInput, BranchSpec, BranchStatus, branch_workflow_id
from domain.decisions import ROLE_MATRIX, DecisionKind, Role
from domain.status import BranchReport
from starter.client import DecisionRejected, SpotcheckClient
from tests import factories as f
from tests.workflow_env import (
    _describe,
    audited_locally,
    branch_status,
    flood,
    local_results,
    running_worker,
    search_attributes,
    terminate_when_idle,
)
from tests.workflow_env import wait_for_branch as until
from workflows.registry import all_workflows

d = f.decision
Bad = tuple[str, dict[str, Any], str]  # (what is wrong, the decision, a part of the reason it is refused for)


@dataclass(frozen=True)
class Contract:
    """What the contracts need to know of one branch."""

    steps: tuple[dict[str, Any], ...]  # a good decision for each of its waits in turn, from the first
    context: dict[str, Any] = field(default_factory=dict)  # its BranchInput.context
    signal: tuple[str, Any] | None = None  # sent with the start
    late: int = 0  # the step whose deadline (c) lets pass: the first wait that escalates
    bad: tuple[Bad, ...] = ()  # its own bad decisions at the first wait, beside the common ones (a)
    row: dict[str, Any] = field(default_factory=dict)  # its records row once the steps are taken (b)


CASE_NO = "杭市监立〔2026〕88号"
CERTIFICATE = "2023011609765432"  # the CCC certificate of examples/orders/online.json
COLOUR = {"colour": "red"}  # no payload has it


def extra_field(kind: str) -> str:
    return f"malformed data for {kind}: data.colour: Extra inputs are not permitted"


CONTRACTS: dict[Branch, Contract] = {
    # Order 18 ch. 6: the report, a failed 复查 (its wait escalates), the provincial 公告; the branch then waits
    # for the second 复查 window to open (test_branch_rectification runs on through 整顿 to the revocation).
    Branch.RECTIFICATION: Contract(
        steps=(d("rectification_report", "submitted", "enterprise"),
               d("re_inspection", "fail", "case_officer", reason="复查不合格", data={"report_no": "FJ-1"}),
               d("provincial_announcement", "announced", "case_officer",
                 data={"announcement_no": "浙市监公告〔2026〕7号"})),
        late=1,  # the correction period simply ends (test_branch_rectification); the 复查 escalates
        bad=(("a 复查 before the report", d("re_inspection", "pass", "case_officer"),
              "not awaited: the sample waits for rectification_report, not re_inspection"),
             ("a suspension order before any 复查", d("suspension_order", "ordered", "enforcement", data={"days": 30}),
              "not awaited: the sample waits for rectification_report, not suspension_order")),
        row={"re_inspection_outcome": "fail", "announcement_no": "浙市监公告〔2026〕7号", "closed_outcome": None},
    ),
    # The first wait, a repair application, has no deadline of its own and is refused for the shortest period: a heavy
    # penalty sent with the start opens the serious-dishonesty review, which has both.
    Branch.CREDIT: Contract(
        steps=(d("serious_dishonesty_review", "listed", "credit_officer", reason="重大行政处罚"),),
        signal=("enforcement_result", {"heavy": True, "fine_amount": "200000"}),
        row={"serious_dishonesty": "listed", "removed_at": None},  # listed for a year
    ),
    Branch.ENFORCEMENT: Contract(
        steps=(d("case_filing", "filed", "enforcement", data={"case_no": CASE_NO}),
               d("case_outcome", "crime_suspected", "enforcement", reason="涉嫌犯罪"),
               d("crime_transfer_decision", "transfer", "enforcement", reason="经局长批准移送"),
               d("crime_transfer_receipt", "received", "public_security")),
        context={"reason": "final_fail"},
        bad=(("no case number", d("case_filing", "filed", "enforcement"), "data.case_no: a filed case must carry"),
             ("not filed without a reason", d("case_filing", "not_filed", "enforcement"),
              "reason: required for case_filing=not_filed"),
             ("malformed data", d("case_filing", "filed", "enforcement", data={"case_no": CASE_NO, "court": 1}),
              "malformed data for case_filing: data.court: Extra inputs are not permitted")),
        row={"case_no": CASE_NO, "crime_decision": "transfer", "closed_outcome": "transferred"},
    ),
    Branch.RECALL: Contract(
        steps=(d("defect_assessment", "defect", "case_officer", data={"defect": "输出电压超限，存在过热起火风险"}),
               d("recall_decision", "ordered", "case_officer"),
               d("recall_plan", "submitted", "enterprise", data={"plan_no": "ZH-1", "units": 500}),
               d("recall_progress", "in_progress", "enterprise", data={"recovered": 100}),
               d("recall_progress", "completed", "enterprise", data={"recovered": 480}),
               d("recall_summary", "submitted", "enterprise", data={"report_no": "ZJ-S1", "recovered": 480})),
        bad=(("malformed data", d("defect_assessment", "defect", "case_officer", data=COLOUR),
              extra_field("defect_assessment")),),
        row={"assessment": "defect", "recall_type": "ordered", "closed_outcome": "recalled"},
    ),
    Branch.CERTIFICATION: Contract(
        steps=(d("certificate_action", "revoked", "case_officer"),),
        context={"certification_body": "中国质量认证中心"},
        bad=(("none without a reason", d("certificate_action", "none", "certification_body"),
              "reason: required for certificate_action=none"),
             ("another certificate", d("certificate_action", "revoked", "certification_body",
                                       data={"certificate_no": "2020010000000001"}),
              f"data.certificate_no: 2020010000000001 is not this product's certificate ({CERTIFICATE})"),
             ("malformed date", d("certificate_action", "revoked", "certification_body",
                                  data={"effective_on": "next week"}),
              "malformed data for certificate_action: data.effective_on"),
             ("malformed data", d("certificate_action", "revoked", "certification_body", data=COLOUR),
              extra_field("certificate_action"))),
        row={"certificate_no": CERTIFICATE, "action": "revoked"},
    ),
    Branch.PLATFORM: Contract(
        steps=(d("delist_confirmation", "delisted", "platform"),),
        bad=(("refused without a reason", d("delist_confirmation", "refused", "platform"),
              "reason: required for delist_confirmation=refused"),
             ("malformed data", d("delist_confirmation", "delisted", "platform", data=COLOUR),
              extra_field("delist_confirmation"))),
        row={"confirmation": "delisted", "closed_outcome": "delisted"},
    ),
    Branch.LEAD: Contract(
        steps=(d("lead_outcome", "confirmed", "case_officer"),),
        context={"lead_no": 1, "lead": {"type": "unknown_origin", "description": "无厂名厂址，来源不明",
                                        "evidence": [{"name": "商品详情页截图.png", "sha256": "1" * 64}]}},
        bad=(("unfounded without a reason", d("lead_outcome", "unfounded", "enforcement"),
              "reason: required for lead_outcome=unfounded"),
             ("malformed data", d("lead_outcome", "confirmed", "enforcement", data=COLOUR),
              extra_field("lead_outcome"))),
        row={"type": "unknown_origin", "routed_to": "执法稽查", "outcome": "confirmed"},
    ),
}

each_branch = pytest.mark.parametrize("spec", list(BRANCHES.values()), ids=lambda spec: spec.branch.value)


def test_every_branch_states_its_contracts() -> None:
    """A new branch cannot be added without saying how its contracts are run."""
    assert set(CONTRACTS) == set(BRANCHES)
    for branch, contract in CONTRACTS.items():
        kinds = {k.value for k in BRANCHES[branch].kinds}
        assert contract.steps and 0 <= contract.late < len(contract.steps), branch
        assert {s["kind"] for s in contract.steps} | {b["kind"] for _, b, _ in contract.bad} <= kinds, branch
        assert contract.row, branch


# --- driving a branch ------------------------------------------------------------------------------------


async def start(client: Client, task_queue: str, spec: BranchSpec) -> tuple[WorkflowHandle[Any, BranchReport], str]:
    contract = CONTRACTS[spec.branch]
    inp = f.branch_input(spec.branch.value, context=dict(contract.context))
    signal = {"start_signal": contract.signal[0], "start_signal_args": [contract.signal[1]]} if contract.signal else {}
    handle = await client.start_workflow(
        spec.workflow, BranchInput.model_validate(inp), id=branch_workflow_id(inp["sample_workflow_id"], spec.branch),
        task_queue=task_queue, result_type=BranchReport, **signal,
    )
    return handle, inp["order"]["sample_no"]


def events(s: BranchStatus, name: str) -> list[str]:
    return [e.text for e in s.timeline if e.event == name]


def awaits(kind: str) -> Callable[[BranchStatus], bool]:
    return lambda s: any(a.kind == kind for a in s.awaiting)


def wait_of(s: BranchStatus, kind: str) -> Any:
    return next(a for a in s.awaiting if a.kind == kind)


async def settled(handle: WorkflowHandle[Any, Any]) -> BranchStatus:
    """Once nothing is in flight (no activity, no workflow task): a worker may stop without cutting one off."""
    for _ in range(200):
        raw = await _describe(handle)
        if not raw.pending_activities and not raw.HasField("pending_workflow_task"):
            break
        await asyncio.sleep(0.05)
    return await branch_status(handle)


async def take(
    spot: SpotcheckClient, handle: WorkflowHandle[Any, Any], no: str, contract: Contract, step: int,
    *, signal: bool = False,
) -> BranchStatus:
    """Once its wait is open, send the good decision of `step` (by update: accepted); it is taken, and the
    branch settled after it."""
    await until(handle, awaits(contract.steps[step]["kind"]))
    receipt = await spot.decide(no, f.copy_of(contract.steps[step]), signal=signal, workflow_id=handle.id)
    assert signal or (receipt is not None and receipt.accepted)
    await until(handle, lambda s: len(events(s, "decision")) == step + 1)
    return await settled(handle)


async def shows(handle: WorkflowHandle[Any, Any], **expected: Any) -> None:
    """Poll the search attributes until they show `expected`: they are published after the state changes."""
    for _ in range(100):
        attrs = await search_attributes(handle)
        if all(attrs.get(k) == v for k, v in expected.items()):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"search attributes {attrs} never showed {expected}")


async def leave(handle: WorkflowHandle[Any, Any]) -> None:
    """A branch still open at the end of a test is terminated (a closed one is left as it is)."""
    if not (await settled(handle)).closed:
        await terminate_when_idle(handle)


async def refused(spot: SpotcheckClient, handle: WorkflowHandle[Any, Any], no: str, cases: Sequence[Bad]) -> None:
    """A branch's own bad decisions at its current wait: each refused with the reason by update, recorded as
    rejected when signalled, and the branch still waits where it was."""
    before = await branch_status(handle)
    seen = len(events(before, "rejected"))
    for name, bad, reason in cases:
        with pytest.raises(DecisionRejected) as err:
            await spot.decide(no, f.copy_of(bad), workflow_id=handle.id)
        assert reason in err.value.reason, name
        await spot.decide(no, f.copy_of(bad), signal=True, workflow_id=handle.id)
    s = await until(handle, lambda s: len(events(s, "rejected")) == seen + 2 * len(cases))
    texts = events(s, "rejected")[seen:]
    for (name, _, reason), by_update, by_signal in zip(cases, texts[::2], texts[1::2], strict=True):
        assert reason in by_update and reason in by_signal and " via signal: " in by_signal, name
    assert (s.stage, [a.kind for a in s.awaiting]) == (before.stage, [a.kind for a in before.awaiting])


# --- (a) bad decisions never stall a branch ----------------------------------------------------------------


def common_bad(spec: BranchSpec, good: dict[str, Any], s: BranchStatus) -> list[Bad]:
    """The bad decisions every branch refuses at its first wait, made from the good decision there."""
    kind, outcome = DecisionKind(good["kind"]), good["outcome"]
    allowed = ROLE_MATRIX[kind][outcome]
    role = next(r for r in Role if r not in allowed)
    awaited = sorted(a.kind for a in s.awaiting)
    # One of its own kinds not awaited now; a single-kind branch gets another branch's.
    other = next(k for k in [*spec.kinds, *(k for b in BRANCHES.values() for k in b.kinds)] if k.value not in awaited)
    other_outcome, roles = next(iter(ROLE_MATRIX[other].items()))
    no_actor = d(kind.value, outcome, "case_officer", data=good["data"])
    del no_actor["actor"]
    return [
        ("wrong role", d(kind.value, outcome, role.value, reason=good["reason"], data=good["data"]),
         f"role {role} may not decide {kind}={outcome}; allowed: {', '.join(sorted(allowed))}"),
        ("unknown outcome", d(kind.value, "no_such_outcome", min(allowed).value),
         f"unknown outcome 'no_such_outcome' for {kind}"),
        ("not awaited", d(other.value, other_outcome, min(roles).value),
         f"not awaited: the sample waits for {', '.join(awaited)}, not {other}"),
        ("malformed", no_actor, "malformed decision: actor: Field required"),
    ]


@each_branch
async def test_bad_decisions_by_update_and_signal_never_stall_the_branch(
    spec: BranchSpec, ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    contract = CONTRACTS[spec.branch]
    good = contract.steps[0]
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start(ts_env.client, task_queue, spec)
        before = await until(handle, awaits(good["kind"]))
        cases = [*common_bad(spec, good, before), *contract.bad]
        reasons = []  # each case's, as the workflow words it
        for name, bad, reason in cases:
            # The workflow admits every update and answers it with a receipt; the client raises on a refusal.
            answer = await handle.execute_update("submit_decision", f.copy_of(bad))
            assert answer["accepted"] is False and reason in answer["reason"], name
            with pytest.raises(DecisionRejected) as err:
                await spot.decide(no, f.copy_of(bad), workflow_id=handle.id)
            assert err.value.reason == answer["reason"], name
            await handle.signal("decide", f.copy_of(bad))
            reasons.append(answer["reason"])
            # A signal is only accepted by the server when `signal` returns: the next update may reach the
            # workflow in the same task and be applied first. Wait for it, so the timeline's order is the
            # order sent.
            so_far = 3 * len(reasons)  # two updates and a signal per case
            await until(handle, lambda s, n=so_far: len(events(s, "rejected")) == n)  # type: ignore[misc]
        # Not even an object: the client will not send it; sent all the same, it is refused like the rest.
        with pytest.raises(DecisionRejected, match="a decision must be a JSON object"):
            await spot.decide(no, "not a decision", workflow_id=handle.id)  # type: ignore[arg-type]
        answer = await handle.execute_update("submit_decision", "not a decision")
        assert answer["accepted"] is False and answer["reason"].startswith("malformed decision"), answer
        await handle.signal("decide", "not a decision")
        sent = [(via, why) for why in reasons for via in ("update", "update", "signal")]  # every attempt, in order
        sent += [("update", answer["reason"]), ("signal", answer["reason"])]
        s = await until(handle, lambda s: len(events(s, "rejected")) == len(sent))
        assert [t.split(" via ", 1)[1] for t in events(s, "rejected")] == [f"{via}: {why}" for via, why in sent]
        assert (s.stage, s.awaiting) == (before.stage, before.awaiting)  # still waiting, deadlines unchanged
        await take(spot, handle, no, contract, 0, signal=True)  # a good one by signal is taken like one by update
        await leave(handle)
    history = await handle.fetch_history()
    updates = sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED for e in history.events)
    assert updates == 2 * len(cases) + 1
    trail = await audit_trail(pool, handle.id)
    # Audited once per request id, however often it was sent; what is no object has none: a row a send.
    assert sorted((r["request_id"], r["reason"]) for r in trail if not r["accepted"] and r["kind"] != "?") \
        == sorted((bad["request_id"], why) for (_, bad, _), why in zip(cases, reasons, strict=True))
    assert sorted(r["via"] for r in trail if r["kind"] == "?") == ["signal", "update"]
    assert [(r["kind"], r["request_id"]) for r in trail if r["accepted"]] == [(good["kind"], good["request_id"])]


# --- (b) exactly once after a worker restart ---------------------------------------------------------------

EFFECTS = {"render_notice": "notices", "queue_outbox": "outbox", "hand_over": "outbox", "record_decision": "audit",
           "audit_decision": "audit"}


async def effects_in_history(client: Client, handle: WorkflowHandle[Any, Any]) -> dict[str, list[str]]:
    """The key of every notice, outbox message and audit row the workflow's history asked for."""
    asked: dict[str, list[str]] = defaultdict(list)
    for event in (await handle.fetch_history()).events:
        # Newer runs render notices as local activities: the stored notice comes back in the marker.
        asked["notices"] += [r["step_id"] for r in await local_results(client, event, "render_notice")]
        asked["audit"] += [r["request_id"] for r in await audited_locally(client, event)]
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if (what := EFFECTS.get(attrs.activity_type.name)) is not None:
                [arg] = await client.data_converter.decode(attrs.input.payloads)
                asked[what].append(arg["request_id"] if what == "audit" else arg["step_id"])
    return asked


@each_branch
async def test_records_and_notices_exactly_once_after_a_worker_restart(
    spec: BranchSpec, dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    # On the real dev server: the time-skipping server hands tasks to the polls a stopped worker left behind,
    # and each costs a workflow task timeout (10 s); here no time needs to pass.
    contract, client = CONTRACTS[spec.branch], dev_env.client
    last = len(contract.steps) - 1
    # The first worker stops before the last step; a new one replays the whole history and takes it. What the
    # server left on the stopped worker's sticky queue goes to the new one after a second.
    async with running_worker(client, pool, task_queue, sticky_queue_schedule_to_start_timeout=timedelta(seconds=1)
                              ) as spot:
        handle, no = await start(client, task_queue, spec)
        for step in range(last):
            await take(spot, handle, no, contract, step)
        await until(handle, awaits(contract.steps[last]["kind"]))
        await settled(handle)
    async with running_worker(client, pool, task_queue) as spot:
        await take(spot, handle, no, contract, last)
        await leave(handle)
    rows = {t: await pool.fetch(f"SELECT * FROM {t} WHERE workflow_id = $1", handle.id) for t in spec.records}
    assert {t: len(r) for t, r in rows.items()} == dict.fromkeys(spec.records, 1)
    row = rows[spec.records[0]][0]
    assert {k: row[k] for k in contract.row} == contract.row
    asked = await effects_in_history(client, handle)
    for what in ("notices", "outbox", "audit"):
        assert len(set(asked[what])) == len(asked[what]), what  # asked for once each
    assert [n["step_id"] for n in await notices_for(pool, handle.id)] == asked["notices"]
    assert sorted(m["step_id"] for m in await outbox_for(pool, handle.id)) == sorted(asked["outbox"])
    trail = await audit_trail(pool, handle.id)
    assert sorted(r["request_id"] for r in trail) == sorted(asked["audit"])
    assert [r["request_id"] for r in trail if r["accepted"]] == [s["request_id"] for s in contract.steps]


# --- (c) a missed deadline escalates ---------------------------------------------------------------------------


@each_branch
async def test_a_missed_deadline_escalates_and_the_late_decision_is_still_taken(
    spec: BranchSpec, ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    contract = CONTRACTS[spec.branch]
    kind = contract.steps[contract.late]["kind"]
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start(ts_env.client, task_queue, spec)
        for step in range(contract.late):
            await take(spot, handle, no, contract, step)
        s = await until(handle, awaits(kind))
        assert not wait_of(s, kind).overdue
        await ts_env.sleep(wait_of(s, kind).due_at - await ts_env.get_current_time() + timedelta(hours=1))
        late = await until(handle, lambda s: awaits(kind)(s) and wait_of(s, kind).overdue)
        assert late.stage == s.stage and len(events(late, "escalated")) == 1
        await shows(handle, Overdue=True, Stage=f"{spec.branch}:{s.stage}")
        await take(spot, handle, no, contract, contract.late)
        await shows(handle, Overdue=False)
        await leave(handle)
    notices = [n["template"] for n in await notices_for(pool, handle.id)]
    assert notices.count("deadline_escalation") == 1
    chasers = [(m["channel"], m["payload"]["kind"]) for m in await outbox_for(pool, handle.id)
               if m["channel"] in ("reminder", "escalation")]
    assert chasers == [("reminder", kind), ("escalation", kind)]
    # A worker that takes the branch over replays the escalation from the history, without running it again.
    replayer = Replayer(workflows=all_workflows(), data_converter=ts_env.client.data_converter)
    assert (await replayer.replay_workflow(await handle.fetch_history())).replay_failure is None


# --- (d) a long history continues as new --------------------------------------------------------------------


@each_branch
async def test_a_long_history_continues_as_new_at_every_wait_and_loses_nothing(
    spec: BranchSpec, ts_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flood of signals (or a long life) makes the history long: at every wait the branch continues as new
    under the same workflow id, resumes that wait with the deadline it had, and ends as it would have, each
    record, notice and audit row once."""
    monkeypatch.setattr(intake, "MAX_EVENTS_PER_RUN", 40)  # passed through the sandbox: the workflows see it
    contract = CONTRACTS[spec.branch]
    async with running_worker(ts_env.client, pool, task_queue) as spot:
        handle, no = await start(ts_env.client, task_queue, spec)
        for step, decision in enumerate(contract.steps):
            kind = decision["kind"]
            s = await until(handle, awaits(kind))
            due, runs = wait_of(s, kind).due, len(events(s, "continued"))
            async def continued(r: int = runs) -> bool:
                return len(events(await branch_status(handle), "continued")) > r

            await flood(handle, continued)  # junk: it only grows the history
            s = await until(handle, lambda s, k=kind, r=runs: len(events(s, "continued")) > r and awaits(k)(s))
            assert wait_of(s, kind).due == due, "the continued run waits on the same deadline"
            await take(spot, handle, no, contract, step)
        await leave(handle)  # the credit listing runs on for its year: left where the steps leave it
    rows = {t: await pool.fetch(f"SELECT * FROM {t} WHERE workflow_id = $1", handle.id) for t in spec.records}
    assert {t: len(r) for t, r in rows.items()} == dict.fromkeys(spec.records, 1)
    row = rows[spec.records[0]][0]
    assert {k: row[k] for k in contract.row} == contract.row
    steps = [n["step_id"] for n in await notices_for(pool, handle.id)]
    assert len(steps) == len(set(steps))
    trail = await audit_trail(pool, handle.id)
    assert [r["request_id"] for r in trail if r["accepted"]] == [s["request_id"] for s in contract.steps]
    replayer = Replayer(workflows=all_workflows(), data_converter=ts_env.client.data_converter)
    assert (await replayer.replay_workflow(await handle.fetch_history())).replay_failure is None
