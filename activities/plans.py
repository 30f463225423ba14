"""A plan's side effects (workflows/plan.py): its draw stored in `plans`/`plan_samples`, its samples started in
batches with the worker's Temporal client, its amendments applied and recorded, its progress read from the
samples' records, its summary stored. Every write is idempotent: a retried draw finds the plan drawn, a
retried batch finds its samples started, a repeated amendment finds its record."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.db import Db, insert_once
from activities.planning import load_and_draw
from activities.reports import read_report
from domain.models import SampleOrder, workflow_id_for
from domain.plan_run import (
    AmendmentOutcome,
    AmendmentRecord,
    BatchResult,
    Counts,
    DrawCounts,
    PlanClosing,
    PlanInput,
    PlanProgress,
    StartBatch,
    fold_strata,
    plan_workflow_id,
)
from domain.plans import DrawnSample, PlanDraw, PlanSpec
from domain.reporting import ReportScope
from domain.visibility import sample_start_options

SAMPLE_WORKFLOW = "SampleWorkflow"  # workflows/sample.py SampleWorkflow.NAME (workflows/ is not imported here)
Draw = Callable[[PlanSpec], Awaitable[PlanDraw]]

_INSERT_SAMPLE = """
INSERT INTO plan_samples (plan_id, seq, sample_no, product_code, credit_code, "order", stratum, risk_score, reasons,
                          amendment)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT DO NOTHING
"""

_CANCEL = """
UPDATE plan_samples SET cancelled_at = $3, cancel_reason = $4, cancelled_by = $5
WHERE plan_id = $1 AND sample_no = ANY($2) AND cancelled_at IS NULL AND {} RETURNING sample_no
"""

# The categories of a plan's progress, in one place: one row per stratum, each category a filtered count.
_NOT_CANCELLED = "ps.cancelled_at IS NULL"
_PROGRESS = f"""
SELECT ps.stratum,
  count(*) AS drawn,
  count(*) FILTER (WHERE ps.started_at IS NULL AND {_NOT_CANCELLED}) AS not_started,
  count(*) FILTER (WHERE ps.started_at IS NOT NULL) AS started,
  count(*) FILTER (WHERE ps.cancelled_at IS NOT NULL) AS cancelled,
  count(*) FILTER (WHERE ps.started_at IS NOT NULL AND {_NOT_CANCELLED}
                   AND (s.stage IS NULL OR s.stage IN ('sampling', 'in_transit'))
                   AND coalesce(s.verdict, 'pending') = 'pending') AS sampling,
  count(*) FILTER (WHERE {_NOT_CANCELLED} AND s.stage IN ('received', 'testing', 'retest')) AS in_testing,
  count(*) FILTER (WHERE {_NOT_CANCELLED} AND s.verdict = 'pass') AS passed,
  count(*) FILTER (WHERE {_NOT_CANCELLED} AND s.verdict = 'fail') AS failed,
  count(*) FILTER (WHERE {_NOT_CANCELLED} AND s.verdict = 'fail_provisional') AS provisional_fail,
  count(*) FILTER (WHERE {_NOT_CANCELLED} AND s.verdict = 'refused') AS refused,
  count(*) FILTER (WHERE {_NOT_CANCELLED} AND s.overdue
                   AND s.verdict NOT IN ('pass', 'fail', 'refused')) AS overdue
FROM plan_samples ps LEFT JOIN samples s ON s.sample_no = ps.sample_no
WHERE ps.plan_id = $1
GROUP BY ps.stratum
"""


def _sample_row(plan_id: str, seq: int, s: DrawnSample, amendment: str | None) -> tuple[Any, ...]:
    # The plan's samples carry its id (the PlanId search attribute, the `samples` record), whatever the draw said.
    order = s.order.model_copy(update={"plan_id": plan_id})
    return (plan_id, seq, order.sample_no, order.product.classification_code, order.sampled_party.credit_code,
            order.model_dump(mode="json"), s.stratum, s.risk_score, list(s.reasons), amendment)


class PlanActivities:
    """`draw`: the draw to use (tests give a fixed one); by default activities/planning.py's, through the pool."""

    def __init__(self, pool: asyncpg.Pool, draw: Draw | None = None) -> None:
        self.pool = pool
        self.draw = draw or (lambda spec: load_and_draw(spec, pool))

    # --- the draw ------------------------------------------------------------------------------

    @activity.defn
    async def plan_draw(self, plan: PlanInput) -> DrawCounts:
        """Draw the plan and store every drawn sample, once: a plan already drawn (a retried or continued
        run, or a plan stored before its workflow started) gives back its stored counts."""
        spec = plan.spec
        if await self.pool.fetchval("SELECT drawn_at FROM plans WHERE plan_id = $1", spec.plan_id):
            return await self._counts(self.pool, spec.plan_id)
        draw = await self.draw(spec)
        return await self.store_draw(draw)

    async def store_draw(self, draw: PlanDraw) -> DrawCounts:
        """The `plans` row and a `plan_samples` row per drawn sample, in one transaction (not an activity:
        the bench stores a draw before it starts the plan)."""
        spec = draw.plan
        async with self.pool.acquire() as conn, conn.transaction():
            # Two attempts of one draw (a timed-out attempt still running) write one after the other.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", spec.plan_id)
            if not await conn.fetchval("SELECT drawn_at FROM plans WHERE plan_id = $1", spec.plan_id):
                await conn.execute(
                    """INSERT INTO plans (plan_id, period, level, region, task_type, follow_up_of, spec, excluded,
                                          workflow_id)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (plan_id) DO NOTHING""",
                    spec.plan_id, spec.period, spec.level.value, spec.region, spec.task_type.value, spec.follow_up_of,
                    spec.model_dump(mode="json"), [e.model_dump(mode="json") for e in draw.excluded],
                    plan_workflow_id(spec.plan_id),
                )
                await conn.executemany(_INSERT_SAMPLE, [_sample_row(spec.plan_id, s.seq, s, None) for s in draw.samples])
                await conn.execute("UPDATE plans SET drawn_at = now() WHERE plan_id = $1", spec.plan_id)
            counts = await self._counts(conn, spec.plan_id)
        drawn = {s.order.sample_no for s in draw.samples}
        counts.skipped = sorted(drawn - set(await self._sample_nos(spec.plan_id, drawn)))[:100]
        return counts

    async def _sample_nos(self, plan_id: str, sample_nos: set[str]) -> list[str]:
        rows = await self.pool.fetch("SELECT sample_no FROM plan_samples WHERE plan_id = $1 AND sample_no = ANY($2)",
                                     plan_id, list(sample_nos))
        return [r["sample_no"] for r in rows]

    async def _counts(self, db: Db, plan_id: str) -> DrawCounts:
        rows = await db.fetch("SELECT stratum, count(*) AS n, max(seq) AS last FROM plan_samples WHERE plan_id = $1 "
                              "GROUP BY stratum", plan_id)
        excluded = await db.fetchval("SELECT jsonb_array_length(excluded) FROM plans WHERE plan_id = $1", plan_id)
        by: dict[str, dict[str, int]] = {}
        for r in rows:
            for dimension, value in (r["stratum"] or {}).items():
                by.setdefault(dimension, {}).setdefault(str(value), 0)
                by[dimension][str(value)] += r["n"]
        return DrawCounts(drawn=sum(r["n"] for r in rows), next_seq=max((r["last"] + 1 for r in rows), default=0),
                          excluded=excluded or 0, by_stratum=by)

    # --- starting ------------------------------------------------------------------------------

    @activity.defn
    async def plan_start_batch(self, batch: StartBatch) -> BatchResult:
        """Start the samples with seq in [from_seq, to_seq) that are neither started nor cancelled, up to
        `concurrency` starts at once, each linked to its plan (PlanId, the order's plan_id). A sample found
        started already (a retried batch) counts as started; a start the server refuses fails the attempt,
        which is retried as a whole (the started ones are then found started)."""
        rows = await self.pool.fetch(
            'SELECT seq, "order" FROM plan_samples WHERE plan_id = $1 AND seq >= $2 AND seq < $3 '
            "AND started_at IS NULL AND cancelled_at IS NULL ORDER BY seq", batch.plan_id, batch.from_seq, batch.to_seq)
        client, task_queue = activity.client(), activity.info().task_queue
        gate = asyncio.Semaphore(max(1, batch.concurrency))
        result = BatchResult()

        async def start(order: SampleOrder) -> None:
            async with gate:
                try:
                    await client.start_workflow(
                        SAMPLE_WORKFLOW, order, task_queue=task_queue,
                        # A sample still running is taken as it is; one that has closed is not started again.
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                        **sample_start_options(order),
                    )
                    result.started += 1
                except WorkflowAlreadyStartedError:
                    result.already += 1
                activity.heartbeat()  # a worker that dies mid-batch is noticed within the heartbeat timeout

        orders = [SampleOrder.model_validate(r["order"]) for r in rows]
        await asyncio.gather(*(start(o) for o in orders))
        await self.pool.execute("UPDATE plan_samples SET started_at = now() WHERE plan_id = $1 AND seq = ANY($2) "
                                "AND started_at IS NULL", batch.plan_id, [r["seq"] for r in rows])
        return result

    # --- progress and closing ------------------------------------------------------------------

    @activity.defn
    async def plan_progress(self, plan_id: str) -> PlanProgress:
        """The plan's samples by where they are, as of now, from their records (`samples`)."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            as_of: datetime = await conn.fetchval("SELECT now()")
            rows = await conn.fetch(_PROGRESS, plan_id)
        totals, by = fold_strata(
            (r["stratum"] or {}, Counts(**{k: r[k] for k in Counts.model_fields})) for r in rows)
        return PlanProgress(plan_id=plan_id, as_of=as_of, totals=totals, by_stratum=by)

    @activity.defn
    async def plan_close(self, closing: PlanClosing) -> None:
        """The plan's progress summary and its closing report: the same totals the oversight report prints for
        the plan (`spotcheck report plan ID`), read from the records now (a retry reads and writes again)."""
        report = (await read_report(self.pool, ReportScope(plan_id=closing.plan_id))).summary()
        await self.pool.execute(
            "UPDATE plans SET closed_at = coalesce(closed_at, $2), summary = $3, report = $4 WHERE plan_id = $1",
            closing.plan_id, closing.closed_at, closing.summary.model_dump(mode="json"), report)

    # --- amendments ----------------------------------------------------------------------------

    @activity.defn
    async def plan_amend(self, record: AmendmentRecord) -> AmendmentOutcome:
        """Apply an accepted amendment and record it, or record a refused one; a request id already recorded
        gives back its first outcome and changes nothing."""
        stored = await self.pool.fetchval(
            "SELECT outcome FROM plan_amendments WHERE plan_id = $1 AND request_id = $2 AND accepted = $3",
            record.plan_id, record.request_id, record.accepted)
        if stored is not None:
            return AmendmentOutcome.model_validate(stored)
        a = record.amendment
        if not record.accepted or a is None:
            outcome = AmendmentOutcome()
        elif a.action == "add":
            outcome = await self._add(record)
        else:
            outcome = await self._cancel(record)
        await insert_once(self.pool, "plan_amendments", {
            "plan_id": record.plan_id, "request_id": record.request_id, "action": record.action,
            "accepted": record.accepted, "reason": a.reason if a else None, "problem": record.problem,
            "sender": record.sender, "key_id": record.key_id, "payload": record.payload,
            "outcome": outcome.model_dump(mode="json"), "received_at": record.received_at,
        }, key=["plan_id", "request_id", "accepted"])
        return outcome

    async def _add(self, record: AmendmentRecord) -> AmendmentOutcome:
        """Append the samples after the plan's last seq. A new draw is drawn as the plan `<plan_id>-S<first
        seq>` (its sample numbers then differ from the plan's own draw's) and stored under the plan's id. A
        retry after the rows were written (but not the amendment's record) adds nothing again."""
        a = record.amendment
        assert a is not None
        done = await self.pool.fetch("SELECT sample_no FROM plan_samples WHERE plan_id = $1 AND amendment = $2",
                                     record.plan_id, record.request_id)
        if done:
            return AmendmentOutcome(added=len(done), next_seq=await self._next_seq(self.pool, record.plan_id))
        first = await self._next_seq(self.pool, record.plan_id)
        if a.samples is not None:
            samples = a.samples
        else:
            assert a.draw is not None
            spec = PlanSpec.model_validate(await self.pool.fetchval("SELECT spec FROM plans WHERE plan_id = $1",
                                                                    record.plan_id))
            more = spec.model_copy(update={**a.draw.model_dump(), "plan_id": f"{spec.plan_id}-S{first}"})
            samples = (await self.draw(PlanSpec.model_validate(more.model_dump()))).samples
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", record.plan_id)
            first = await self._next_seq(conn, record.plan_id)
            await conn.executemany(_INSERT_SAMPLE, [_sample_row(record.plan_id, first + i, s, record.request_id)
                                                    for i, s in enumerate(samples)])
            added = await conn.fetch("SELECT sample_no FROM plan_samples WHERE plan_id = $1 AND amendment = $2",
                                     record.plan_id, record.request_id)
            next_seq = await self._next_seq(conn, record.plan_id)
        taken = {r["sample_no"] for r in added}
        return AmendmentOutcome(added=len(taken), skipped=sorted({s.order.sample_no for s in samples} - taken)[:100],
                                next_seq=next_seq)

    @staticmethod
    async def _next_seq(db: Db, plan_id: str) -> int:
        return int(await db.fetchval("SELECT coalesce(max(seq) + 1, 0) FROM plan_samples WHERE plan_id = $1", plan_id))

    async def _cancel(self, record: AmendmentRecord) -> AmendmentOutcome:
        """Not started: marked cancelled, so no batch ever starts it. Started and still running: its
        workflow terminated with the amendment's reason and sender, then marked. Closed, already cancelled
        or not of this plan: left as it is."""
        a = record.amendment
        assert a is not None and a.sample_nos is not None
        who = {"id": a.sender.id, "role": a.sender.role.value}
        marks = (record.received_at, a.reason, who)
        cancelled = await self.pool.fetch(_CANCEL.format("started_at IS NULL"), record.plan_id, a.sample_nos, *marks)
        started = await self.pool.fetch(
            "SELECT sample_no FROM plan_samples WHERE plan_id = $1 AND sample_no = ANY($2) AND cancelled_at IS NULL "
            "AND started_at IS NOT NULL", record.plan_id, a.sample_nos)
        terminated = [r["sample_no"] for r in started
                      if await self._terminate(r["sample_no"], record.plan_id, a.request_id, who, a.reason)]
        await self.pool.execute(_CANCEL.format("started_at IS NOT NULL"), record.plan_id, terminated, *marks)
        not_started = [r["sample_no"] for r in cancelled]
        return AmendmentOutcome(cancelled=sorted(not_started), terminated=sorted(terminated),
                                left=sorted(set(a.sample_nos) - {*not_started, *terminated})[:100])

    async def _terminate(self, sample_no: str, plan_id: str, request_id: str, who: dict[str, str],
                         reason: str) -> bool:
        """True when the sample was running and is now terminated (or was by an earlier attempt of this
        amendment); False when it had closed on its own."""
        handle = activity.client().get_workflow_handle(workflow_id_for(sample_no))
        why = json.dumps({"plan": plan_id, "amendment": request_id, "by": who, "reason": reason}, ensure_ascii=False)
        try:
            status = (await handle.describe()).status
            if status is WorkflowExecutionStatus.TERMINATED:  # by an earlier attempt of this amendment
                return True
            if status is not WorkflowExecutionStatus.RUNNING:
                return False
            await handle.terminate(reason=f"plan amendment: {why}")
            return True
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise ApplicationError(f"terminating {sample_no}: the server answered {err.status.name}") from None
