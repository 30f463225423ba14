"""Sampling plans (workflows/plan.py) on the real dev server and PostgreSQL: the draw stored once, the samples
started in batches and linked to their plan, amendments applied and recorded, progress read from the samples'
records, the summary stored at the close, a special campaign's follow-up plan, and a plan schedule firing.

The draw is the test's own (`fixed_draw`, registered in place of activities/planning.py's): orders from
tests/factories.py, strata by channel and by whether the enterprise is a Zhejiang one."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities import planning
from activities.plans import PlanActivities
from activities.registry import all_activities
from activities.reports import read_report
from domain import signing
from domain.models import SampleOrder
from domain.plan_run import (
    AMENDMENT_SIGNING,
    Every,
    PlanInput,
    PlanOptions,
    PlanProgress,
    ScheduledPlan,
    period_of,
    plan_workflow_id,
)
from domain.plans import DrawnSample, PlanDraw, PlanSpec
from domain.reporting import ReportScope
from starter import cli
from starter.client import Signer, SpotcheckClient
from starter.plans import Plans
from tests import factories as f
from tests.factories import EXAMPLES
from tests.workflow_env import HISTORIES, running_worker

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
CHANNELS = ("offline_production", "online", "offline_circulation")
ORGANISER = {"id": "organiser-1", "role": "case_officer"}


def plan_spec(plan_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    return {
        "plan_id": plan_id or f"P-{uuid.uuid4().hex[:10]}", "name": "2027年第一季度浙江省产品质量监督抽查",
        "period": "2027Q1", "level": "province", "region": "330000", "task_type": "routine", "budget_batches": 6,
        "seed": 7, "inspection_agencies": [{"name": "浙江省产品质量安全科学研究院", "code": "ZJPQ"}],
        "batch_size": 2, "start_rate_per_second": 100.0, **overrides,
    }


def drawn(plan_id: str, seq: int, time_scale: float) -> DrawnSample:
    channel = CHANNELS[seq % len(CHANNELS)]
    order = SampleOrder.model_validate(f.order(channel, plan_id=plan_id, time_scale=time_scale))
    return DrawnSample(seq=seq, order=order, stratum={"channel": channel, "zhejiang_made": "yes" if seq % 2 else "no"},
                       risk_score=1.0 + seq % 5, reasons=["近三年抽查不合格"])


def fixed_draw(time_scale: float = 1000.0) -> tuple[Callable[[PlanSpec], Awaitable[PlanDraw]], list[PlanSpec]]:
    """A draw of `budget_batches` test orders, and the specs it was asked to draw (to count the draws)."""
    asked: list[PlanSpec] = []

    async def draw(spec: PlanSpec) -> PlanDraw:
        asked.append(spec)
        return PlanDraw(plan=spec, samples=[drawn(spec.plan_id, i, time_scale) for i in range(spec.budget_batches)])

    return draw, asked


@asynccontextmanager
async def plan_worker(client: Client, pool: asyncpg.Pool, task_queue: str,
                      draw: Callable[[PlanSpec], Awaitable[PlanDraw]]) -> AsyncIterator[SpotcheckClient]:
    """The real worker, but the plan's activities draw with `draw`."""
    plans = PlanActivities(pool, draw)
    ours = {name: getattr(plans, name) for name in ("plan_draw", "plan_start_batch", "plan_progress", "plan_amend",
                                                      "plan_close")}
    acts = [ours.get(a.__temporal_activity_definition.name, a) for a in all_activities(pool)]  # type: ignore[attr-defined]
    async with running_worker(client, pool, task_queue, activities=acts) as spot:
        yield spot


async def until(check: Callable[[], Awaitable[Any]], within: float = 60.0, every: float = 0.2) -> Any:
    end = asyncio.get_running_loop().time() + within
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"timed out waiting for {check}")
        await asyncio.sleep(every)


async def plan_stage(plans: Plans, plan_id: str, stage: str) -> PlanProgress | None:
    p = await plans.progress(plan_id)
    return p if p.stage == stage else None


async def drive(spot: SpotcheckClient, sample_no: str, steps: list[dict[str, Any]]) -> None:
    """Send each decision once the sample awaits its kind (the demo's way: starter/demo.py)."""
    for step in steps:
        await until(lambda kind=step["kind"]: _awaits(spot, sample_no, kind), within=120, every=0.1)
        await spot.decide(sample_no, step)


async def _awaits(spot: SpotcheckClient, sample_no: str, kind: str) -> bool:
    return any(a.kind == kind for a in (await spot.status(sample_no)).awaiting)


REFUSED = [f.decision("sampling_record", "refused", "sampler", reason="拒绝抽样")]
PASSED = [f.sealed(), f.received(), f.report("pass")]
FAILED = [f.sealed(), f.received(), f.report("fail"), f.delivered(), f.objection("waived")]


def steps(path: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f.decision(d["kind"], d["outcome"], d["actor"]["role"], reason=d["reason"], data=d["data"]) for d in path]


async def sql_counts(pool: asyncpg.Pool, plan_id: str) -> dict[str, int]:
    """The verdicts in the samples' own records, for the plan's samples that were not cancelled."""
    rows = await pool.fetch("SELECT s.verdict, count(*) AS n FROM plan_samples ps JOIN samples s USING (sample_no) "
                            "WHERE ps.plan_id = $1 AND ps.cancelled_at IS NULL GROUP BY s.verdict", plan_id)
    return {r["verdict"]: r["n"] for r in rows}


async def test_a_plan_is_drawn_once_started_amended_and_closed_with_its_follow_up(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    client = dev_env.client
    draw, asked = fixed_draw()
    spec = PlanSpec.model_validate(plan_spec(task_type="special", start_rate_per_second=1.0))
    plans = Plans(client, task_queue)
    async with plan_worker(client, pool, task_queue, draw) as spot:
        handle = await plans.start(PlanInput(spec=spec, options=PlanOptions(progress_every_seconds=0.5,
                                                                            follow_up_after_days=0)))
        pid = spec.plan_id
        # Amendments: the last drawn sample cancelled before it starts, one explicit sample added.
        await until(lambda: pool.fetchval("SELECT drawn_at FROM plans WHERE plan_id = $1", pid))
        last = await pool.fetchval("SELECT sample_no FROM plan_samples WHERE plan_id = $1 AND seq = 5", pid)
        cancel = {"request_id": "rq-cancel-1", "action": "cancel", "reason": "该企业已停产", "sender": ORGANISER,
                  "sample_nos": [last, "NOT-OF-THIS-PLAN"]}
        receipt = await plans.amend(pid, cancel)
        assert receipt.accepted and receipt.outcome is not None
        assert (receipt.outcome.cancelled, receipt.outcome.left) == ([last], ["NOT-OF-THIS-PLAN"])
        assert (await plans.amend(pid, cancel)).recorded_at == receipt.recorded_at  # a repeat: the first receipt
        extra = drawn(pid, 0, 1000.0).model_dump(mode="json")
        added = await plans.amend(pid, {"request_id": "rq-add-1", "action": "add", "reason": "群众举报",
                                        "sender": ORGANISER, "samples": [extra]})
        assert added.accepted and added.outcome is not None and added.outcome.added == 1
        more = await plans.amend(pid, {"request_id": "rq-add-2", "action": "add", "reason": "风险监测发现新线索",
                                       "sender": ORGANISER, "draw": {"budget_batches": 2, "seed": 11}})
        assert more.outcome is not None and more.outcome.added == 2
        assert [(s.plan_id, s.seed, s.budget_batches) for s in asked[1:]] == [(f"{pid}-S7", 11, 2)]
        # Bad payloads are refused with the field named, recorded, and never stall the plan.
        bad = await plans.amend(pid, {"request_id": "rq-bad-1", "action": "cancel", "sender": ORGANISER,
                                      "sample_nos": [last], "secret": "x" * 50})
        assert not bad.accepted and bad.problem is not None and "reason" in bad.problem and "x" * 20 not in bad.problem
        odd = await client.get_workflow_handle(handle.id).execute_update("amend", args=[1, 2])
        assert odd["accepted"] is False and "input" in odd["problem"]
        fixed = await plans.amend(pid, {"request_id": "rq-bad-1", "action": "cancel", "reason": "更正", "sender": ORGANISER,
                                        "sample_nos": ["NOT-OF-THIS-PLAN"]})  # corrected: a refusal is no answer
        assert fixed.accepted and fixed.outcome is not None and fixed.outcome.left == ["NOT-OF-THIS-PLAN"]

        running = await until(lambda: plan_stage(plans, pid, "running"))
        assert running.start_requested == 8
        rows = await pool.fetch("SELECT sample_no, started_at, cancelled_at, cancel_reason, cancelled_by, amendment "
                                "FROM plan_samples WHERE plan_id = $1 ORDER BY seq", pid)
        started = [r["sample_no"] for r in rows if r["started_at"]]
        assert len(rows) == 9 and len(started) == 8 and last not in started
        cancelled = next(r for r in rows if r["sample_no"] == last)
        assert (cancelled["cancel_reason"], cancelled["cancelled_by"]) == ("该企业已停产", ORGANISER)
        assert [r["amendment"] for r in rows if r["amendment"]] == ["rq-add-1", "rq-add-2", "rq-add-2"]
        assert len(asked) == 2  # the plan drawn once, and the amendment's draw
        # Each started sample is linked to its plan (PlanId, and plan_id in its order).
        listed = await until(lambda: _count(client, f"PlanId = '{pid}' AND ProcessKind = 'sample'", 8))
        assert listed == 8
        recorded = await pool.fetch("SELECT plan_id, accepted, action, problem, sender FROM plan_amendments "
                                    "WHERE plan_id = $1 ORDER BY received_at", pid)
        assert [(r["action"], r["accepted"]) for r in recorded] == [("cancel", True), ("add", True), ("add", True),
                                                                    ("cancel", False), ("?", False), ("cancel", True)]
        assert recorded[3]["sender"] == ORGANISER and "reason" in recorded[3]["problem"]

        # A started sample cancelled: its workflow is terminated with the reason; the plan counts it cancelled.
        victim = started[0]
        stop = await plans.amend(pid, {"request_id": "rq-cancel-2", "action": "cancel", "reason": "重复抽样",
                                       "sender": ORGANISER, "sample_nos": [victim]})
        assert stop.outcome is not None and stop.outcome.terminated == [victim]
        assert (await client.get_workflow_handle(f"sample-{victim}").describe()).status == \
            WorkflowExecutionStatus.TERMINATED

        # The others: one fails for good, the rest are refused; then the plan closes with its summary.
        rest = [no for no in started if no != victim]
        await asyncio.gather(drive(spot, rest[0], steps(FAILED)), *(drive(spot, no, steps(REFUSED)) for no in rest[1:]))
        result: PlanProgress = await handle.result()
        assert (result.stage, result.totals.failed, result.totals.refused, result.totals.cancelled) == \
            ("follow_up_started", 1, 6, 2)
        assert result.totals == (await plans.progress(pid)).totals
        row = await pool.fetchrow("SELECT closed_at, summary, report FROM plans WHERE plan_id = $1", pid)
        assert row["closed_at"] is not None and PlanProgress.model_validate(row["summary"]).totals == result.totals
        assert await sql_counts(pool, pid) == {"fail": 1, "refused": 6}
        # The closing report is the oversight report's own summary of the plan (issue 13), from the records.
        assert row["report"] == (await read_report(pool, ReportScope(plan_id=pid))).summary()
        assert (row["report"]["failed"], row["report"]["refused"]) == (1, 6)
        # A special campaign: the follow-up plan of its failed enterprises, a plan of its own.
        follow = await until(lambda: pool.fetchrow("SELECT plan_id, follow_up_of FROM plans WHERE follow_up_of = $1",
                                                   pid))
        assert follow["plan_id"] == f"{pid}-FU"
        await client.get_workflow_handle(plan_workflow_id(follow["plan_id"])).terminate("test over")


async def _count(client: Client, query: str, want: int) -> int | None:
    n = (await client.count_workflows(query)).count
    return n if n == want else None


async def test_a_200_sample_plan_runs_to_completion(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    """200 samples on a compressed clock, each driven to a verdict: the plan closes by itself, and its
    progress by stratum is what the samples' records say."""
    client = dev_env.client
    draw, _ = fixed_draw(time_scale=1000.0)
    # Batches of 5: 40 start activities, each at least 6 events, so the plan continues as new while it starts.
    spec = PlanSpec.model_validate(plan_spec(budget_batches=200, batch_size=5, start_rate_per_second=200.0,
                                             time_scale=1000.0))
    plans = Plans(client, task_queue)
    async with plan_worker(client, pool, task_queue, draw) as spot:
        # A short history per run (200 events): the plan continues as new on its way.
        handle = await plans.start(PlanInput(spec=spec, options=PlanOptions(progress_every_seconds=2,
                                                                            continue_after_events=200)))
        pid = spec.plan_id
        await until(lambda: plan_stage(plans, pid, "running"), within=120)
        nos = [r["sample_no"] for r in await pool.fetch("SELECT sample_no FROM plan_samples WHERE plan_id = $1 "
                                                       "ORDER BY seq", pid)]
        paths = [FAILED if i % 20 == 0 else REFUSED if i % 5 == 1 else PASSED for i in range(len(nos))]
        gate = asyncio.Semaphore(24)

        async def one(no: str, path: list[dict[str, Any]]) -> None:
            async with gate:
                await drive(spot, no, steps(path))

        await asyncio.gather(*(one(no, p) for no, p in zip(nos, paths, strict=True)))
        result: PlanProgress = await asyncio.wait_for(handle.result(), 180)
        first = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
        assert (await first.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW
        if os.environ.get("SPOTCHECK_RECORD_HISTORIES"):  # the first run and the last, for tests/test_replay.py
            for i, run in enumerate((first, client.get_workflow_handle(handle.id))):
                name = f"test_a_200_sample_plan_runs_to_completion-{i}__{handle.id}.json"
                (HISTORIES / name).write_text((await run.fetch_history()).to_json(), encoding="utf-8")
    want = {"fail": paths.count(FAILED), "refused": paths.count(REFUSED), "pass": paths.count(PASSED)}
    assert await sql_counts(pool, pid) == want
    t = result.totals
    assert (t.drawn, t.started, t.passed, t.failed, t.refused, t.not_started) == \
        (200, 200, want["pass"], want["fail"], want["refused"], 0)
    assert result.stage == "closed" and result.as_of is not None
    # By stratum: what the records say, per channel.
    rows = await pool.fetch("SELECT ps.stratum->>'channel' AS channel, s.verdict, count(*) AS n FROM plan_samples ps "
                            "JOIN samples s USING (sample_no) WHERE ps.plan_id = $1 GROUP BY 1, 2", pid)
    for r in rows:
        by = result.by_stratum["channel"][r["channel"]]
        assert {"pass": by.passed, "fail": by.failed, "refused": by.refused}[r["verdict"]] == r["n"]
    summary = await pool.fetchval("SELECT summary FROM plans WHERE plan_id = $1", pid)
    assert PlanProgress.model_validate(summary) == result


async def test_a_schedule_fires_the_plan_of_its_period_once(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    client = dev_env.client
    draw, asked = fixed_draw()
    prefix = f"Q-{uuid.uuid4().hex[:8]}"
    scheduled = ScheduledPlan(template={k: v for k, v in plan_spec(prefix, budget_batches=2).items() if k != "period"},
                              every=Every.QUARTER)
    plans = Plans(client, task_queue)
    async with plan_worker(client, pool, task_queue, draw):
        schedule = await plans.schedule(prefix, scheduled)
        try:
            desc = await schedule.describe()
            assert desc.id == f"plan-schedule-{prefix}" and desc.schedule.spec.time_zone_name == "Asia/Shanghai"
            await schedule.trigger()
            await asyncio.sleep(1.5)
            await schedule.trigger()  # a second firing in the same quarter starts nothing new
            fired = await until(lambda: _runs(schedule, 2), within=60)
            pid = f"{prefix}-{period_of(datetime.now(UTC), Every.QUARTER)}"
            assert [await client.get_workflow_handle(w).result() for w in fired] == [pid, pid]
            started = await until(lambda: plan_stage(plans, pid, "running"))
            assert started.start_requested == 2 and len(asked) == 1
            assert await pool.fetchval("SELECT period FROM plans WHERE plan_id = $1", pid) == pid.rsplit("-", 1)[1]
            await plans.handle(pid).terminate("test over")
        finally:
            await schedule.delete()


async def _runs(schedule: Any, n: int) -> list[str] | None:
    actions = (await schedule.describe()).info.recent_actions
    ids = [a.action.workflow_id for a in actions]
    return ids if len(ids) >= n else None



async def test_the_plan_commands(dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`spotcheck plan start` (its progress bar while the samples start), `show` (table and --json), `list`; a
    bad plan file is refused naming the field, before any server is asked."""
    example = json.loads((EXAMPLES / "plans" / "province-quarterly.json").read_text(encoding="utf-8"))
    pid = f"CLI-{uuid.uuid4().hex[:8]}"
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({**example, "plan_id": pid, "budget_batches": 5, "batch_size": 2}), encoding="utf-8")
    server = ["--address", dev_env.client.service_client.config.target_host, "--task-queue", task_queue]
    draw, _ = fixed_draw()
    async with plan_worker(dev_env.client, pool, task_queue, draw):
        args = cli.build_parser().parse_args(["plan", "start", str(plan_file), "--progress-every", "0.5", *server])
        assert await args.func(args) == cli.EXIT_OK
        out = capsys.readouterr().out
        assert f"plan {pid}: 5 samples drawn" in out and f"plan {pid}: 5 samples started; stage running" in out
        args = cli.build_parser().parse_args(["plan", "show", pid, "--json", "--refresh", *server])
        assert await args.func(args) == cli.EXIT_OK
        shown = PlanProgress.model_validate_json(capsys.readouterr().out)
        assert (shown.totals.started, sum(c.started for c in shown.by_stratum["channel"].values())) == (5, 5)
        args = cli.build_parser().parse_args(["plan", "show", pid, *server])
        assert await args.func(args) == cli.EXIT_OK
        assert "channel = online" in capsys.readouterr().out
        args = cli.build_parser().parse_args(["plan", "list", "--json", "--query", f"PlanId = '{pid}'", *server])
        assert await args.func(args) == cli.EXIT_OK
        assert [(r["plan_id"], r["stage"]) for r in json.loads(capsys.readouterr().out)] == [(pid, "running")]
        amendment = tmp_path / "amend.json"
        amendment.write_text(json.dumps({"request_id": "cli-1", "action": "cancel", "reason": "抽样单位已注销",
                                         "sender": ORGANISER, "sample_nos": ["NOT-IN-PLAN"]}), encoding="utf-8")
        args = cli.build_parser().parse_args(["plan", "amend", pid, str(amendment), "--json", *server])
        assert await args.func(args) == cli.EXIT_OK
        assert json.loads(capsys.readouterr().out)["outcome"]["left"] == ["NOT-IN-PLAN"]
        amendment.write_text(json.dumps({"request_id": "cli-2", "action": "cancel", "sender": ORGANISER}),
                             encoding="utf-8")
        args = cli.build_parser().parse_args(["plan", "amend", pid, str(amendment), *server])
        assert await args.func(args) == 1
        assert "amendment refused: reason" in capsys.readouterr().err
        await Plans(dev_env.client, task_queue).handle(pid).terminate("test over")
    plan_file.write_text(json.dumps({**example, "batch_size": 0, "secret": "s3cr3t"}), encoding="utf-8")
    assert await asyncio.to_thread(cli.main, ["plan", "start", str(plan_file), "--address", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert "spec.batch_size" in err and "spec.secret" in err and "s3cr3t" not in err


async def test_a_plan_drawn_from_the_pool_and_frame_starts_its_samples(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    """The worker's own draw (activities/planning.py) on the shipped pool and the demo frame and signals."""
    for table, name in ((planning.POOL, "pool.csv"), (planning.FRAME, "demo-frame.csv"),
                        (planning.SIGNALS, "demo-signals.csv")):
        await planning.import_rows(pool, table, table.parse((ROOT / "planning" / name).read_text(encoding="utf-8"),
                                                            name))
    example = json.loads((EXAMPLES / "plans" / "2026Q4-province-linked.json").read_text(encoding="utf-8"))
    spec = PlanSpec.model_validate({**example, "plan_id": f"R-{uuid.uuid4().hex[:8]}", "period": "2028Q2",
                                    "budget_batches": 30, "batch_size": 10})
    plans = Plans(dev_env.client, task_queue)
    async with running_worker(dev_env.client, pool, task_queue):
        await plans.start(PlanInput(spec=spec, options=PlanOptions(progress_every_seconds=0.5)))
        running = await until(lambda: plan_stage(plans, spec.plan_id, "running"), within=120)
        rows = await pool.fetch('SELECT "order", stratum, reasons FROM plan_samples WHERE plan_id = $1', spec.plan_id)
        assert 0 < len(rows) <= 30 and running.start_requested == len(rows) == running.totals.drawn
        assert all(r["order"]["plan_id"] == spec.plan_id and r["stratum"] and r["reasons"] for r in rows)
        assert sum(c.drawn for c in running.by_stratum["channel"].values()) == len(rows)
        await plans.handle(spec.plan_id).terminate("test over")


# --- proven senders -------------------------------------------------------------------------------------

KEY, SECRET = "organiser-desk-1", b"s" * 32


@pytest.fixture
def signatures_required() -> Iterator[None]:
    """The worker (in this process) configured as `spotcheck worker` is: signatures required, one desk key."""
    saved = (signing._keyring, signing._required, signing._internal_key_id)
    signing.configure({KEY: SECRET}, require=True)
    yield
    signing._keyring, signing._required, signing._internal_key_id = saved


async def test_where_signatures_are_required_only_a_proven_amendment_is_applied(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], signatures_required: None,
) -> None:
    """Unsigned, forged, signed for another plan, or a decision's signature: each refused with the reason and
    recorded as refused (the key proves nothing, so none is recorded). Signed for this plan, by the client or
    by `spotcheck plan amend --key-file`: applied, with the key on the record."""
    client = dev_env.client
    draw, _ = fixed_draw()
    spec = PlanSpec.model_validate(plan_spec(budget_batches=2))
    pid, now = spec.plan_id, datetime.now(UTC)
    unsigned = Plans(client, task_queue)
    async with plan_worker(client, pool, task_queue, draw):
        await unsigned.start(PlanInput(spec=spec))

        def cancel(rid: str) -> dict[str, Any]:
            return {"request_id": rid, "action": "cancel", "reason": "该企业已停产", "sender": ORGANISER,
                    "sample_nos": ["NOT-OF-THIS-PLAN"]}

        mismatch = "signature: does not match (forged, altered, or signed for another plan)"
        tries = {
            "rq-unsigned": (cancel("rq-unsigned"), "signature: missing"),
            "rq-forged": (signing.sign(cancel("rq-forged"), plan_workflow_id(pid), KEY, b"f" * 32, now,
                                       AMENDMENT_SIGNING), mismatch),
            "rq-other-plan": (signing.sign(cancel("rq-other-plan"), plan_workflow_id(f"{pid}-X"), KEY, SECRET, now,
                                           AMENDMENT_SIGNING), mismatch),
            # The same fields, signed with the deployment's key for this plan, but as a decision.
            "rq-decision": (signing.sign(cancel("rq-decision"), plan_workflow_id(pid), KEY, SECRET, now), mismatch),
        }
        for rid, (raw, reason) in tries.items():
            receipt = await unsigned.amend(pid, raw)
            assert (receipt.accepted, receipt.problem, receipt.outcome) == (False, reason, None), rid

        signed = await Plans(client, task_queue, Signer(KEY, SECRET)).amend(pid, cancel("rq-signed"))
        assert signed.accepted and signed.outcome is not None and signed.outcome.left == ["NOT-OF-THIS-PLAN"]
        # A repeat of the accepted request id, unsigned: refused, not answered with the first receipt.
        again = await unsigned.amend(pid, cancel("rq-signed"))
        assert (again.accepted, again.problem) == (False, "signature: missing")

        # The CLI signs with a key file (as `spotcheck decide --key-file` does).
        keys, amendment = tmp_path / "keys.json", tmp_path / "amend.json"
        keys.write_text(json.dumps({KEY: base64.b64encode(SECRET).decode()}), encoding="utf-8")
        amendment.write_text(json.dumps(cancel("rq-cli")), encoding="utf-8")
        server = ["--address", client.service_client.config.target_host, "--task-queue", task_queue]
        args = cli.build_parser().parse_args(["plan", "amend", pid, str(amendment), "--key-file", str(keys), *server])
        assert await args.func(args) == cli.EXIT_OK
        assert json.loads(capsys.readouterr().out)["left"] == ["NOT-OF-THIS-PLAN"]
        amendment.write_text(json.dumps(cancel("rq-cli-unsigned")), encoding="utf-8")
        args = cli.build_parser().parse_args(["plan", "amend", pid, str(amendment), *server])
        assert await args.func(args) == 1
        assert "amendment refused: signature: missing" in capsys.readouterr().err
        await unsigned.handle(pid).terminate("test over")

    rows = await pool.fetch("SELECT request_id, accepted, problem, sender, key_id, payload FROM plan_amendments "
                            "WHERE plan_id = $1", pid)
    recorded = {(r["request_id"], r["accepted"]): r for r in rows}
    assert sorted(recorded) == sorted([*((rid, False) for rid in tries), ("rq-signed", True), ("rq-signed", False),
                                       ("rq-cli", True), ("rq-cli-unsigned", False)])
    for rid, (_, reason) in tries.items():
        row = recorded[(rid, False)]
        assert (row["problem"], row["key_id"], row["sender"]) == (reason, None, ORGANISER)
        assert "该企业已停产" not in json.dumps(row["payload"], ensure_ascii=False)  # a summary, never the content
    assert [recorded[(rid, True)]["key_id"] for rid in ("rq-signed", "rq-cli")] == [KEY, KEY]
