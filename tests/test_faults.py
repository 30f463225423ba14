"""Faults on the real stack, with servers of this test's own (the session's shared ones are untouched): an
embedded PostgreSQL in a tmp folder, a Temporal dev server on a SQLite file, the worker as a subprocess.

Four samples are driven through their lifecycle while the worker is SIGKILLed (with audit writes and
projections in flight), PostgreSQL is stopped while decisions keep coming, and the Temporal server is stopped
and started again on its SQLite file; rejected decisions and re-sends arrive throughout. At the end the rows
in PostgreSQL and the workflow histories are counted against each other and against what the client was
answered: every decision has exactly one audit row, every notice and outbox message one row, every activity
completed, no workflow task failed, no sample asks for an operator, each sample at its expected stage."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

import codec
from activities.db import create_pool
from activities.records import audit_trail, notices_for, outbox_for
from domain import visibility
from domain.decisions import Receipt
from domain.status import SampleStatus
from starter.client import DecisionRejected, Signer, SpotcheckClient
from starter.devserver import DevServer, free_port
from starter.postgres import EmbeddedPostgres
from tests import factories as f
from tests.test_integration_stack import Stack
from tests.workflow_env import audited_locally, local_activity_type, local_results

pytestmark = pytest.mark.integration

TASK_QUEUE = "faults"
# Long enough that the activities' back-off (1, 2, 4, 8, 16 s, then 30 s) reaches its cap while it lasts; the
# bounded retry policy (workflows/calls.py: 40 attempts) must ride it out with no operator hand-off.
PG_OUTAGE = 25.0
TRANSIENT = (RPCError, WorkflowQueryFailedError, WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError)


class Servers:
    """PostgreSQL, the Temporal dev server and the worker of this test, each stopped and started at will."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pgdata = folder / "pgdata"
        port = free_port()
        ui_port = next(p for p in iter(free_port, None) if p != port)
        self.temporal = DevServer(folder / "temporal", port=port, ui_port=ui_port, search_attributes=visibility.ALL)
        self.pg: EmbeddedPostgres | None = None
        self.stack: Stack | None = None

    async def start(self) -> Client:
        self.temporal.start()
        self.pg = await asyncio.to_thread(EmbeddedPostgres, self.pgdata, keep=True)
        await self.temporal.wait_ready()
        plain = await Client.connect(self.temporal.address)
        (self.folder / "worker").mkdir()
        self.stack = Stack(WorkflowEnvironment.from_client(plain), self.pg.dsn, TASK_QUEUE, self.folder / "worker")
        self.stack.start_worker()
        # The client encrypts with the worker's keyring (Stack made it), on the same connection.
        keyring = codec.load_keyring(self.stack.env[codec.ENV])
        return Client(plain.service_client, namespace="default", data_converter=codec.data_converter(keyring))

    @property
    def worker(self) -> Stack:
        assert self.stack is not None
        return self.stack

    @property
    def dsn(self) -> str:
        return self.worker.env["DATABASE_URL"]

    async def stop_postgres(self) -> None:
        assert self.pg is not None
        pg, self.pg = self.pg, None
        await asyncio.to_thread(pg.stop)

    async def start_postgres(self) -> None:
        self.pg = await asyncio.to_thread(EmbeddedPostgres, self.pgdata, keep=True)
        assert self.pg.dsn == self.dsn  # same data dir, same socket: the worker's DATABASE_URL still holds

    async def restart_temporal(self) -> None:
        await asyncio.to_thread(self.temporal.stop)  # SIGTERM: a clean shutdown, SQLite flushed
        self.temporal.start()
        await self.temporal.wait_ready()

    def close(self) -> None:
        worker = self.stack.worker if self.stack else None
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
        self.temporal.stop()
        if self.pg is not None:
            self.pg.stop()
        shutil.rmtree(self.pgdata, ignore_errors=True)


@dataclass
class Ledger:
    """What the client was told: request ids accepted or rejected per workflow, and the decisions signalled
    (valid ones expected accepted, junk expected rejected)."""

    accepted: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    rejected: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    receipts: dict[str, Receipt] = field(default_factory=dict)
    resent: int = 0  # sends repeated after a transport error (same request id)


class Driver:
    """Sends decisions and reads status as a client does through faults: a transport error (server down,
    worker away) is retried with the same request id, and the ledger keeps what was answered."""

    def __init__(self, client: Client, signer: Signer) -> None:
        self.spot = SpotcheckClient(client, TASK_QUEUE, signer)
        self.ledger = Ledger()

    async def status(self, no: str) -> SampleStatus | None:
        try:
            return await asyncio.wait_for(self.spot.status(no), 5)
        except TRANSIENT:
            return None

    async def wait(self, no: str, check: Callable[[SampleStatus], bool], within: float = 75) -> SampleStatus:
        end = time.monotonic() + within
        status = None
        while time.monotonic() < end:
            status = await self.status(no)
            if status is not None and check(status):
                return status
            await asyncio.sleep(0.25)
        seen = f"stage {status.stage}, awaiting {[a.kind for a in status.awaiting]}" if status else "no answer"
        raise AssertionError(f"sample {no} not in the expected state within {within:.0f} s: {seen}")

    async def send(self, no: str, decision: dict[str, Any], *, signal: bool = False, valid: bool = True) -> None:
        """One decision, re-sent through transport errors; `valid` is what the workflow must make of it."""
        wf = f"sample-{no}"
        rid = decision["request_id"]
        end = time.monotonic() + 90
        while True:
            try:
                receipt = await asyncio.wait_for(self.spot.decide(no, f.copy_of(decision), signal=signal), 30)
                break
            except DecisionRejected:
                assert not valid, f"{decision['kind']} refused for {no}"
                self.ledger.rejected[wf].add(rid)
                return
            except TRANSIENT:
                if time.monotonic() > end:
                    raise
                self.ledger.resent += 1
                await asyncio.sleep(0.5)
        if receipt is None:  # a signal: the workflow decides
            (self.ledger.accepted if valid else self.ledger.rejected)[wf].add(rid)
            return
        assert valid and receipt.accepted, (no, decision["kind"], receipt)
        first = self.ledger.receipts.setdefault(rid, receipt)
        assert receipt == first, f"a re-sent {decision['kind']} got another receipt: {receipt} vs {first}"
        self.ledger.accepted[wf].add(rid)

    async def each(self, sends: list[Awaitable[None]]) -> None:
        await asyncio.gather(*sends)

    async def junk(self, numbers: list[str], stop: asyncio.Event) -> int:
        """A steady stream of decisions that are never taken (a disposal from a sampler, a role that may not
        decide it), by update and by signal, until `stop`: each must be refused and audited once."""
        sent = 0
        while not stop.is_set():
            no = numbers[sent % len(numbers)]
            await self.send(no, f.decision("disposal", "disposed", "sampler"), signal=sent % 3 == 0, valid=False)
            sent += 1
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
        return sent


def awaiting(kind: str) -> Callable[[SampleStatus], bool]:
    return lambda s: any(a.kind == kind for a in s.awaiting)


def objection(order: dict[str, Any], outcome: str) -> dict[str, Any]:
    d = f.objection(outcome)
    d["actor"]["organisation"] = order["sampled_party"]["credit_code"]  # a signed enterprise names itself
    return d


async def test_nothing_lost_or_doubled_through_worker_kills_a_database_outage_and_a_temporal_restart(
    tmp_path: Path,
) -> None:
    servers = Servers(tmp_path)
    stop_junk = asyncio.Event()
    junk: asyncio.Task[int] | None = None
    timings: dict[str, float] = {}
    began = time.monotonic()

    def lap(name: str) -> None:
        timings[name] = round(time.monotonic() - began, 1)

    try:
        client = await servers.start()
        stack = servers.worker
        driver = Driver(client, Signer.from_key_file(Path(stack.env["SPOTCHECK_SIGNING_KEYS"])))
        orders = {name: f.order("offline_production") for name in "ABCD"}
        no = {name: o["sample_no"] for name, o in orders.items()}
        # A: lab pass → retention. B: fail, objection accepted, re-test pass → retention. C: as B, every
        # decision by signal. D: fail, objection waived → post-handling with its branches.
        by_signal = {"C"}
        for order in orders.values():
            await driver.spot.start_sample(order)
        await driver.each([driver.wait(n, awaiting("sampling_record")) for n in no.values()])
        lap("ready")
        junk = asyncio.create_task(driver.junk(list(no.values()), stop_junk))

        async def step(names: str, make: Callable[[str], dict[str, Any]]) -> dict[str, dict[str, Any]]:
            sent = {name: make(name) for name in names}
            await driver.each([driver.send(no[n], d, signal=n in by_signal) for n, d in sent.items()])
            return sent

        async def until(names: str, check: Callable[[SampleStatus], bool]) -> None:
            await driver.each([driver.wait(no[n], check) for n in names])

        # 1. The worker is SIGKILLed right after the sealing records are answered (audit rows and projections
        #    in flight: they time out and run again), and twice more while a repeat and junk arrive.
        sealed = await step("ABCD", lambda _: f.sealed())
        stack.kill_worker()
        repeat = asyncio.create_task(driver.send(no["A"], sealed["A"]))
        for pause in (1.0, 3.0, 3.0):
            await asyncio.sleep(pause)
            if stack.worker is not None and stack.worker.poll() is None:
                stack.kill_worker()
            stack.start_worker()
        await repeat
        await until("ABCD", awaiting("sample_receipt"))
        lap("worker kills")
        await step("ABCD", lambda _: f.received())
        await until("ABCD", awaiting("lab_report"))
        lap("received")

        # 2. PostgreSQL stops; the lab reports arrive (and are answered: the audit row follows later), one is
        #    sent again, junk keeps coming; the activities retry until it is back.
        await servers.stop_postgres()
        reports = await step("ABCD", lambda n: f.report("pass" if n == "A" else "fail"))
        await driver.send(no["B"], reports["B"])
        await asyncio.sleep(PG_OUTAGE)
        await servers.start_postgres()
        lap("postgres back")
        await until("A", lambda s: s.stage == "retention")
        await until("BCD", awaiting("result_delivery"))
        lap("database outage")

        # 3. The result deliveries go out and Temporal stops at once; decisions sent while it is down are
        #    re-sent until it answers again, on the same SQLite file.
        deliveries = asyncio.create_task(step("BCD", lambda _: f.delivered()))
        await asyncio.sleep(0.2)
        await servers.restart_temporal()
        lap("temporal back")
        await deliveries
        await until("BCD", awaiting("objection"))
        lap("temporal restart")

        # 4. The rest of the way.
        await step("BCD", lambda n: objection(orders[n], "waived" if n == "D" else "filed"))
        await until("BC", awaiting("objection_review"))
        await step("BC", lambda _: f.review("accepted"))
        await until("BC", awaiting("retest_report"))
        await step("BC", lambda _: f.report("pass", kind="retest_report"))
        stop_junk.set()
        junk_sent = await junk
        lap("decided")
        final = {n: await driver.wait(no[n], lambda s: s.stage == "retention") for n in "ABC"}
        final["D"] = await driver.wait(no["D"], lambda s: s.stage == "post_handling" and len(s.branches) >= 4)
        await settle(client)
        lap("settled")

        # --- counting ----------------------------------------------------------------------------------------
        for n in "ABC":
            assert final[n].verdict == "pass", (n, final[n].verdict)
        assert final["D"].verdict == "fail"
        assert {"rectification", "credit", "enforcement", "recall"} <= {b.branch for b in final["D"].branches}
        assert all(s.needs_operator is None for s in final.values())
        assert (await client.count_workflows("NeedsOperator = true")).count == 0

        pool = await create_pool(servers.dsn)
        try:
            facts = {wf: await history_facts(client, wf) async for wf in workflow_ids(client)}
            summary = await count(pool, facts, driver.ledger, {n: f"sample-{no[n]}" for n in no})
        finally:
            await pool.close()
        lap("counted")
        print(f"\nfaults: {timings}; junk decisions {junk_sent}, re-sends {driver.ledger.resent}; {summary}")
    finally:
        stop_junk.set()
        if junk is not None and not junk.done():
            junk.cancel()
        servers.close()


async def workflow_ids(client: Client) -> Any:
    async for wf in client.list_workflows(""):
        yield wf.id


async def settle(client: Client, within: float = 60) -> None:
    """Until no workflow has an activity or workflow task pending, twice in a row."""
    end = time.monotonic() + within
    quiet = 0
    busy: list[str] = []
    while time.monotonic() < end:
        busy = []
        async for wf in client.list_workflows(""):
            raw = await client.workflow_service.describe_workflow_execution(
                DescribeWorkflowExecutionRequest(namespace=client.namespace, execution=wf.raw_info.execution)
            )
            if raw.pending_activities or raw.HasField("pending_workflow_task"):
                busy.append(wf.id)
        quiet = quiet + 1 if not busy else 0
        if quiet >= 2:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"still busy after {within:.0f} s: {busy}")


@dataclass
class Facts:
    """What one workflow's history says."""

    status: WorkflowExecutionStatus | None = None
    task_failures: int = 0
    activity_failures: int = 0
    scheduled: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    local: Counter[str] = field(default_factory=Counter)  # local activities recorded (their markers)
    notices: list[str] = field(default_factory=list)  # step ids of notices stored by local activities
    audited: list[dict[str, Any]] = field(default_factory=list)  # audit rows written by local activities
    completed: int = 0
    max_attempt: int = 0
    update_receipts: list[dict[str, Any]] = field(default_factory=list)
    signalled: list[Any] = field(default_factory=list)
    task_timeouts: int = 0


async def history_facts(client: Client, workflow_id: str) -> Facts:
    handle = client.get_workflow_handle(workflow_id)
    facts = Facts(status=(await handle.describe()).status)
    decode = client.data_converter.decode
    for e in (await handle.fetch_history()).events:
        t = e.event_type
        if t == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            facts.task_failures += 1
        elif t == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            facts.task_timeouts += 1
        elif t in (EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED, EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT):
            facts.activity_failures += 1
        elif t == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            a = e.activity_task_scheduled_event_attributes
            facts.scheduled[a.activity_type.name].extend(await decode(a.input.payloads))
        elif t == EventType.EVENT_TYPE_MARKER_RECORDED:
            facts.notices += [r["step_id"] for r in await local_results(client, e, "render_notice")]
            facts.audited += await audited_locally(client, e)
            if (local := local_activity_type(e)) is not None:
                facts.local[local] += 1
        elif t == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            facts.max_attempt = max(facts.max_attempt, e.activity_task_started_event_attributes.attempt)
        elif t == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            facts.completed += 1
        elif t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            outcome = e.workflow_execution_update_completed_event_attributes.outcome
            if outcome.HasField("success"):
                facts.update_receipts.extend(await decode(outcome.success.payloads))
        elif t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            s = e.workflow_execution_signaled_event_attributes
            if s.signal_name == "decide":
                facts.signalled.extend(await decode(s.input.payloads))
    return facts


EXPECTED_NOTICES = {"A": ["inspection_result"], "B": ["inspection_result", "objection_decision"],
                    "C": ["inspection_result", "objection_decision"], "D": ["inspection_result"]}
EXPECTED_STAGE = {"A": "retention", "B": "retention", "C": "retention", "D": "post_handling"}


async def count(pool: Any, facts: dict[str, Facts], ledger: Ledger, samples: dict[str, str]) -> str:
    """Rows against histories against the ledger, for every workflow on the server; a summary line."""
    assert set(samples.values()) <= set(facts), "a sample's workflow is missing"
    audit_rows = notice_rows = outbox_rows = 0
    for wf, h in facts.items():
        assert h.status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED), (wf, h.status)
        assert h.task_failures == 0, f"{wf}: {h.task_failures} workflow task failures"
        assert h.activity_failures == 0, f"{wf}: {h.activity_failures} activities failed for good"
        assert h.completed == sum(map(len, h.scheduled.values())), f"{wf}: an activity never completed"

        # The audit trail: one row per (request id, accepted), exactly the ones the workflow wrote.
        rows = await audit_trail(pool, wf)
        keys = [(r["request_id"], r["accepted"]) for r in rows]
        assert len(keys) == len(set(keys)), f"{wf}: doubled audit rows {Counter(keys).most_common(3)}"
        written = [(d["request_id"], d["accepted"]) for d in
                   [*h.scheduled.get("record_decision", []), *h.scheduled.get("audit_decision", []), *h.audited]]
        assert set(keys) == set(written), f"{wf}: audit rows {sorted(set(keys) ^ set(written))} differ from history"
        doubled = [k for k, c in Counter(written).items() if c > 1 and k[1]]
        assert not doubled, f"{wf}: an accepted decision audited twice: {doubled}"
        # …and every answer the workflow gave, by update or to a signal, is in it.
        for receipt in h.update_receipts:
            assert (receipt["request_id"], receipt["accepted"]) in set(keys), (wf, receipt)
        ids = {rid for rid, _ in keys}
        for raw in h.signalled:
            assert raw["request_id"] in ids, (wf, raw)
        assert {rid for rid, ok in keys if ok} == ledger.accepted.get(wf, set()), f"{wf}: accepted decisions"
        assert {rid for rid, ok in keys if not ok} == ledger.rejected.get(wf, set()), f"{wf}: rejected decisions"
        audit_rows += len(rows)

        # Notices and outbox messages: one row per step, exactly the steps the workflow took.
        notices = await notices_for(pool, wf)
        steps = [n["step_id"] for n in notices]
        assert len(steps) == len(set(steps)), f"{wf}: doubled notices"
        asked = [*(r["step_id"] for r in h.scheduled.get("render_notice", [])), *h.notices]
        assert len(asked) == len(set(asked)), f"{wf}: a notice asked for twice"
        assert set(steps) == set(asked), f"{wf}: notices"
        outbox = await outbox_for(pool, wf)
        queued = [m["step_id"] for m in outbox]
        assert len(queued) == len(set(queued)), f"{wf}: doubled outbox messages"
        expected = [*h.scheduled.get("queue_outbox", []), *h.scheduled.get("hand_over", [])]
        assert set(queued) == {m["step_id"] for m in expected}, f"{wf}: outbox"
        notice_rows += len(notices)
        outbox_rows += len(outbox)

    for name, wf in samples.items():
        h = facts[wf]
        templates = [n["template"] for n in await notices_for(pool, wf)]
        assert sorted(templates) == EXPECTED_NOTICES[name], (name, templates)
        rows = await pool.fetch("SELECT stage, seq FROM samples WHERE workflow_id = $1", wf)
        # Each projection is one local activity (lean runs; newer ones write it where a wait opens, beside
        # the wait's deadline): the row holds the last, numbered by their count.
        projections = h.local["project_sample"] + h.local["open_wait"]
        assert projections > 0 and not h.scheduled.get("project_sample"), name
        assert [(r["stage"], r["seq"]) for r in rows] == [(EXPECTED_STAGE[name], projections)], (name, rows)

    max_attempt = max(h.max_attempt for h in facts.values())
    assert max_attempt > 2, "the database outage made no activity retry: the fault did not bite"
    timeouts = sum(h.task_timeouts for h in facts.values())
    return (f"{len(facts)} workflows, {audit_rows} audit rows, {notice_rows} notices, {outbox_rows} outbox rows, "
            f"most attempts of an activity {max_attempt}, workflow task timeouts {timeouts}")
