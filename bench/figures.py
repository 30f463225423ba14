"""One function per figure of issue 9, each measuring one side (Spotcheck or the bare baseline) once: the
caller (bench/run.py) interleaves the trials and takes medians.

The driver waits for a workflow to reach a wait the same way on both sides (`_poll`): it asks its `status`
query (Spotcheck: the awaited decision kinds; bare: the awaited step) once, then again each time the workflow
completes a workflow task, which it learns from a long poll on the workflow's history (no look on a clock).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities.plans import PlanActivities
from bench.baseline import BareWorkflow, EmptyWorkflow
from bench.floors import StepWorkflow
from bench.stack import Stack, WorkerProcess
from domain.models import InspectionAgency, SampleOrder
from domain.plan_run import PlanInput, PlanOptions
from domain.plans import DrawnSample, OrganiserLevel, PlanDraw, PlanSpec, PlanTaskType
from domain.visibility import sample_start_options
from starter.client import SpotcheckClient
from starter.plans import Plans
from tests import factories as f

POLLERS = 16  # workflows polled at once while waiting for many to park
START_WINDOW = 32  # concurrent start calls
SETTLE = 1.0  # seconds after parking, before a measurement starts (publishing, audits finish)
MIB = 1024 * 1024
T = TypeVar("T")
TRANSIENT = (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE,
             RPCStatusCode.RESOURCE_EXHAUSTED)

# A pass lifecycle: the decisions it takes, each once its wait is open.
PASS_DECISIONS: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("sampling_record", f.sealed),
    ("sample_receipt", f.received),
    ("lab_report", lambda: f.report("pass")),
    ("disposal", f.disposal),
]


async def bounded(n: int, window: int, fn: Callable[[int], Awaitable[T]]) -> list[T]:
    """fn(0) … fn(n-1), at most `window` at a time, started in order."""
    sem = asyncio.Semaphore(window)

    async def one(i: int) -> T:
        async with sem:
            return await fn(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


class _Followed:
    """One workflow's history, followed by a long poll (`wait_new_event`): where the driver has read to."""

    def __init__(self, events: Any, seen: int) -> None:
        self.events = events
        self.seen = seen  # the last event id read


_FOLLOWED: dict[str, _Followed] = {}


async def _follow(handle: WorkflowHandle[Any, Any]) -> _Followed:
    """The workflow's history followed from now on (created before the driver first asks, so that no workflow
    task completed after the answer is missed)."""
    followed = _FOLLOWED.get(handle.id)
    if followed is None:
        client = handle._client
        raw = await client.workflow_service.describe_workflow_execution(DescribeWorkflowExecutionRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=handle.id)))
        followed = _FOLLOWED[handle.id] = _Followed(
            handle.fetch_history_events(wait_new_event=True).__aiter__(), raw.workflow_execution_info.history_length)
    return followed


async def _next_task_completed(followed: _Followed) -> None:
    """Until the workflow completes another workflow task (the server holds the request meanwhile: no look
    costs anything while the workflow waits for a timer, an activity or a decision)."""
    while True:
        event = await followed.events.__anext__()
        if event.event_id <= followed.seen:
            continue  # already there when the driver began to follow
        followed.seen = event.event_id
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return


async def _poll(handle: WorkflowHandle[Any, Any], ask: Callable[[], Awaitable[Any]], ready: Callable[[Any], bool],
                what: str, within: float) -> None:
    """Until `ready(ask())`: asked once, then again each time the workflow completes a workflow task (its
    history followed by a long poll), so a workflow is asked as often as it changes, never on a clock: a step
    that takes long (a timer, a slow activity) costs no looks."""
    deadline = time.monotonic() + within
    followed = await _follow(handle)
    while True:
        try:
            answer = await ask()
        except RPCError as err:  # a loaded server or worker can drop a look: look again
            if err.status not in TRANSIENT or time.monotonic() > deadline:
                raise
            answer = None
        if answer is not None and ready(answer):
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what}: still {answer!r:.300} after {within:.0f} s")
        try:
            await asyncio.wait_for(_next_task_completed(followed), left)
        except TimeoutError:
            pass  # out of time: raised at the next look unless the answer came
        except StopAsyncIteration:
            await asyncio.sleep(0.05)  # the workflow closed: its answer changes no more (not a busy loop)
        except RPCError as err:
            if err.status not in TRANSIENT:
                raise


class Side(Protocol):
    name: str

    def items(self, n: int) -> list[Any]: ...
    async def start(self, item: Any) -> WorkflowHandle[Any, Any]: ...
    async def parked(self, handle: WorkflowHandle[Any, Any]) -> None: ...


class SpotSide:
    """Samples on a Spotcheck worker: started with SpotcheckClient.start_sample, parked at the wait for the
    sampling record."""

    name = "spotcheck"

    def __init__(self, client: Client, worker: WorkerProcess) -> None:
        self.spot = SpotcheckClient(client, worker.task_queue)
        self.worker = worker

    def items(self, n: int) -> list[Any]:
        return [f.order("offline_production") for _ in range(n)]

    async def start(self, item: Any) -> WorkflowHandle[Any, Any]:
        return await self.spot.start_sample(item)

    async def awaiting(self, handle: WorkflowHandle[Any, Any], kind: str, within: float = 300) -> None:
        await _poll(handle, lambda: handle.query("status"), lambda s: any(a["kind"] == kind for a in s["awaiting"]),
                    f"{handle.id} awaiting {kind}", within)

    async def parked(self, handle: WorkflowHandle[Any, Any]) -> None:
        await self.awaiting(handle, "sampling_record")


class BareSide:
    """BareWorkflow(0) on the bare worker: parked at its wait for a signal."""

    name = "bare"

    def __init__(self, client: Client, worker: WorkerProcess) -> None:
        self.client = client
        self.worker = worker

    def items(self, n: int) -> list[Any]:
        return [0] * n

    async def start(self, item: Any) -> WorkflowHandle[Any, Any]:
        return await self.client.start_workflow(BareWorkflow.run, item, id=f"bare-{uuid.uuid4().hex}",
                                                task_queue=self.worker.task_queue)

    async def at_step(self, handle: WorkflowHandle[Any, Any], step: int, within: float = 300) -> None:
        await _poll(handle, lambda: handle.query(BareWorkflow.status), lambda s: s == step, f"{handle.id} at {step}", within)

    async def parked(self, handle: WorkflowHandle[Any, Any]) -> None:
        await self.at_step(handle, 0)


class StepSide(BareSide):
    """StepWorkflow (bench/floors.py) on the bare worker: parked at its wait with a timer."""

    name = "step"

    async def start(self, item: Any) -> WorkflowHandle[Any, Any]:
        return await self.client.start_workflow(StepWorkflow.run, id=f"step-{uuid.uuid4().hex}",
                                                task_queue=self.worker.task_queue)


@dataclass
class Parked:
    handles: list[WorkflowHandle[Any, Any]]
    starts_per_s: float
    parked_per_s: float


async def start_and_park(side: Side, n: int, window: int = START_WINDOW) -> Parked:
    """Start n workflows, `window` start calls at a time, and poll each until it waits (while the others
    still start). Rates from the first start call to the last start answered, and to the last parked."""
    items = side.items(n)
    loop = asyncio.get_running_loop()
    started: list[asyncio.Future[WorkflowHandle[Any, Any]]] = [loop.create_future() for _ in range(n)]

    async def start(i: int) -> None:
        try:
            started[i].set_result(await side.start(items[i]))
        except BaseException as e:
            started[i].set_exception(e)
            raise

    async def park(i: int) -> None:
        await side.parked(await started[i])

    async def starting() -> float:
        await bounded(n, window, start)
        return time.perf_counter()

    async def parking() -> float:
        await bounded(n, POLLERS, park)
        return time.perf_counter()

    t0 = time.perf_counter()
    t_started, t_parked = await asyncio.gather(starting(), parking())
    return Parked([s.result() for s in started], n / (t_started - t0), n / (t_parked - t0))


# --- 1. pass lifecycles per second and per CPU-second ---------------------------------------------------------


async def _measured(stack: Stack, worker: WorkerProcess, body: Awaitable[Any]) -> tuple[float, dict[str, float]]:
    """Wall seconds of `body` and the CPU seconds each part (worker, server, PostgreSQL, driver) spent on it."""
    before = stack.cpu([worker])
    t0 = time.perf_counter()
    await body
    wall = time.perf_counter() - t0
    after = stack.cpu([worker])
    return wall, {k: after[k] - before[k] for k in after}


def _lifecycle_figures(n: int, wall: float, cpu: dict[str, float]) -> dict[str, Any]:
    total = sum(cpu.values())
    return {"per_s": n / wall, "per_cpu_s": n / total, "cpu_ms_each": 1000 * total / n,
            "cpu_ms_parts": {k: 1000 * v / n for k, v in cpu.items()}}


async def spot_lifecycles(stack: Stack, side: SpotSide, n: int, concurrency: int) -> dict[str, Any]:
    """n pass lifecycles (start → 4 decisions by SpotcheckClient.decide → closed), `concurrency` at a time."""
    orders = side.items(n)

    async def lifecycle(i: int) -> None:
        handle = await side.start(orders[i])
        for kind, decision in PASS_DECISIONS:
            await side.awaiting(handle, kind)
            await side.spot.decide(orders[i]["sample_no"], decision())
        await handle.result()

    wall, cpu = await _measured(stack, side.worker, bounded(n, concurrency, lifecycle))
    return _lifecycle_figures(n, wall, cpu)


async def bare_lifecycles(stack: Stack, side: BareSide, n: int, concurrency: int) -> dict[str, Any]:
    """n BareWorkflow(4): each decision by update once its wait is open, a no-op activity each, closed."""
    steps = len(PASS_DECISIONS)

    async def lifecycle(i: int) -> None:
        handle = await side.client.start_workflow(BareWorkflow.run, steps, id=f"bare-{uuid.uuid4().hex}",
                                                  task_queue=side.worker.task_queue)
        for step in range(steps):
            await side.at_step(handle, step)
            await handle.execute_update(BareWorkflow.decide, step)
        await handle.result()

    wall, cpu = await _measured(stack, side.worker, bounded(n, concurrency, lifecycle))
    return _lifecycle_figures(n, wall, cpu)


# --- 2. decision round trip, 8 in flight ----------------------------------------------------------------------


async def _timed(n: int, in_flight: int, send: Callable[[int], Awaitable[None]]) -> list[float]:
    latencies: list[float] = []

    async def one(i: int) -> None:
        t = time.perf_counter()
        await send(i)
        latencies.append(time.perf_counter() - t)

    await bounded(n, in_flight, one)
    return latencies


async def spot_round_trips(side: SpotSide, n: int, in_flight: int, *, via_client: bool, refused: bool = False
                           ) -> list[float]:
    """Seconds of each sealing decision on n parked samples: a raw `execute_update("submit_decision")`, or
    `SpotcheckClient.decide()` (via_client). `refused`: a lab report instead, which a sample awaiting its
    sampling record refuses (received, answered and audited, but no step follows): the intake's own share."""
    parked = (await start_and_park(side, n)).handles
    await asyncio.sleep(SETTLE)

    async def send(i: int) -> None:
        if via_client:
            await side.spot.decide(parked[i].id.removeprefix("sample-"), f.sealed())
            return
        receipt = await parked[i].execute_update("submit_decision", f.report("pass") if refused else f.sealed())
        if receipt["accepted"] == refused:
            raise RuntimeError(f"{parked[i].id} answered {receipt}")

    return await _timed(n, in_flight, send)


async def bare_round_trips(side: BareSide, n: int, in_flight: int) -> list[float]:
    """Seconds of a no-op update on each of n parked bare workflows."""
    parked = (await start_and_park(side, n)).handles
    await asyncio.sleep(SETTLE)
    return await _timed(n, in_flight, lambda i: parked[i].execute_update(BareWorkflow.noop_update, i))  # type: ignore[arg-type,return-value]


async def step_floor_round_trips(side: BareSide, n: int, in_flight: int, *, audited: bool) -> list[float]:
    """Seconds of the `step` update on each of n parked StepWorkflows (bench/floors.py): the floor under a
    sealing decision's round trip, on the bare worker."""
    parked = (await start_and_park(StepSide(side.client, side.worker), n)).handles
    await asyncio.sleep(SETTLE)
    return await _timed(n, in_flight, lambda i: parked[i].execute_update(StepWorkflow.step, audited))  # type: ignore[arg-type,return-value]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1), linearly interpolated between the closest ranks."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# --- 4, 5. samples parked per second; concurrent starts per second ------------------------------------------


async def parked_rates(side: Side, n: int) -> dict[str, float]:
    """Starts per second (START_WINDOW concurrent start calls) and parked per second, for n workflows."""
    p = await start_and_park(side, n)
    return {"starts_per_s": p.starts_per_s, "parked_per_s": p.parked_per_s}


async def spot_start_samples(side: SpotSide, n: int) -> float:
    """Starts per second of one `SpotcheckClient.start_samples` call with n orders (then waits, untimed,
    until they are parked, so that the next trial starts on a quiet worker)."""
    orders = side.items(n)
    t0 = time.perf_counter()
    results = await side.spot.start_samples(orders)
    rate = n / (time.perf_counter() - t0)
    bad = [r.error for r in results if not r.ok]
    if bad:
        raise RuntimeError(f"start_samples refused {len(bad)} orders: {bad[0]}")
    handles = [side.spot.client.get_workflow_handle(r.workflow_id or "") for r in results]
    await bounded(n, POLLERS, lambda i: side.parked(handles[i]))
    return rate


async def empty_starts(side: BareSide, n: int, *, as_samples: bool = False) -> float:
    """Starts per second of n EmptyWorkflow, START_WINDOW concurrent start calls (then waits, untimed, for
    them to complete). `as_samples`: each started as a sample is (the floor under `start_samples`): a
    sample's order as its input (JSON), its search attributes, summary and details (sample_start_options),
    prepared before the clock starts."""
    starts: list[tuple[list[Any], dict[str, Any]]]
    if as_samples:
        orders = [SampleOrder.model_validate(f.order("offline_production")) for _ in range(n)]
        starts = [([o.model_dump(mode="json")], sample_start_options(o)) for o in orders]
    else:
        starts = [([], {"id": f"empty-{uuid.uuid4().hex}"}) for _ in range(n)]

    async def start(i: int) -> WorkflowHandle[Any, Any]:
        args, options = starts[i]
        return await side.client.start_workflow(EmptyWorkflow.run, args=args, task_queue=side.worker.task_queue,
                                                **options)

    t0 = time.perf_counter()
    handles = await bounded(n, START_WINDOW, start)
    rate = n / (time.perf_counter() - t0)
    await bounded(n, START_WINDOW, lambda i: handles[i].result())
    return rate


# --- a plan's starts (issue 12) -------------------------------------------------------------------------------


async def plan_starts(side: SpotSide, store: PlanActivities, n: int) -> float:
    """Samples started per second by one plan of n samples (PlanWorkflow at its highest rate and batch size):
    from the plan's start until its progress query says every start was requested (asked every 100 ms). Its
    draw is stored beforehand, untimed (the draw's cost is the planning's, not the starts'); afterwards the
    driver waits, untimed, until every sample has written its first record, so the next trial starts on a
    quiet worker."""
    plan_id = f"BENCH-{uuid.uuid4().hex[:8]}"
    spec = PlanSpec(plan_id=plan_id, name="bench", period="2030Q1", level=OrganiserLevel.PROVINCE, region="330000",
                    task_type=PlanTaskType.ROUTINE, budget_batches=n, start_rate_per_second=10_000, batch_size=1000,
                    inspection_agencies=[InspectionAgency(name="浙江省产品质量安全科学研究院", code="ZJPQ")])
    orders = [SampleOrder.model_validate(f.order("offline_production", plan_id=plan_id)) for _ in range(n)]
    await store.store_draw(PlanDraw(plan=spec, samples=[
        DrawnSample(seq=i, order=o, stratum={"channel": o.channel.value}, risk_score=1.0, reasons=["bench"])
        for i, o in enumerate(orders)]))
    plans = Plans(side.spot.client, side.worker.task_queue)
    t0 = time.perf_counter()
    await plans.start(PlanInput(spec=spec, options=PlanOptions(progress_every_seconds=3600)))
    while True:
        if (await plans.progress(plan_id)).start_requested >= n:
            break
        await asyncio.sleep(0.1)
    rate = n / (time.perf_counter() - t0)
    while True:
        if await store.pool.fetchval("SELECT count(*) FROM samples WHERE plan_id = $1", plan_id) >= n:
            return rate
        await asyncio.sleep(0.5)


# --- 3. memory ------------------------------------------------------------------------------------------------


async def rss_per_1000(stack: Stack, client: Client, kind: str, n: int, warm: int = 20) -> float:
    """MiB of worker RSS per 1,000 cached parked workflows: a fresh worker process of `kind` whose cache
    holds them all; RSS after `warm` parked (imports, first sandbox) and again after n more."""
    worker = await stack.start_worker(kind, max_cached=n + warm + 100)
    try:
        side: Side = SpotSide(client, worker) if kind == "spotcheck" else BareSide(client, worker)
        await start_and_park(side, warm)
        await asyncio.sleep(2 * SETTLE)
        before = worker.rss()
        await start_and_park(side, n)
        await asyncio.sleep(2 * SETTLE)
        return (worker.rss() - before) / MIB * 1000 / n
    finally:
        stack.stop_worker(worker)


async def open_samples(stack: Stack, client: Client, n: int, pairs: int, cache: int | None,
                       budget_s: float | None) -> dict[str, Any]:
    """Up to n open (parked) samples on one fresh Spotcheck worker whose cache holds `cache` workflows (None:
    the worker's own setting), parked batch by batch until n or `budget_s` seconds; the worker's RSS after
    each batch. Then `pairs` sealing decisions, one at a time, alternately on an evicted sample (among the
    first started) and on a cached one (among the last)."""
    worker = await stack.start_worker("spotcheck", max_cached=cache)
    try:
        cache = worker.max_cached_workflows
        side = SpotSide(client, worker)
        batch = max(10, min(500, cache // 2))  # parked batch by batch: the pollers only query cached samples
        handles: list[WorkflowHandle[Any, Any]] = []
        rss: list[tuple[int, float]] = [(0, worker.rss() / MIB)]
        t0 = time.perf_counter()
        while len(handles) < n and (budget_s is None or time.perf_counter() - t0 < budget_s):
            handles += (await start_and_park(side, min(batch, n - len(handles)))).handles
            rss.append((len(handles), worker.rss() / MIB))
        park_s = time.perf_counter() - t0
        await asyncio.sleep(2 * SETTLE)
        n = len(handles)
        rss.append((n, worker.rss() / MIB))
        # Growth per open sample once the cache is full: the least-squares slope over the counts from twice
        # the cache (else from the cache, else all), RSS moving a few MiB up and down between batches.
        beyond = [p for p in rss if p[0] >= 2 * cache]
        beyond = beyond if len(beyond) > 2 else [p for p in rss if p[0] >= cache]
        beyond = beyond if len({p[0] for p in beyond}) > 1 else rss
        slope = statistics.linear_regression([p[0] for p in beyond], [p[1] for p in beyond]).slope
        evicted_pool = handles[: max(1, n - cache - batch)]
        evicted = [evicted_pool[i * len(evicted_pool) // pairs] for i in range(pairs)]
        cached = handles[-pairs:]
        times: dict[str, list[float]] = {"evicted": [], "cached": []}
        for e, c in zip(evicted, cached, strict=True):
            for which, handle in (("evicted", e), ("cached", c)):
                t = time.perf_counter()
                receipt = await handle.execute_update("submit_decision", f.sealed())
                times[which].append(time.perf_counter() - t)
                if not receipt["accepted"]:
                    raise RuntimeError(f"{handle.id} refused the decision: {receipt}")
        return {
            "n": n, "cache": cache, "evicted": max(0, n - cache), "park_s": park_s, "rss_mib": rss[-1][1],
            "rss_points": rss, "slope_mib_per_open": slope, "slope_from": beyond[0][0],
            "evicted_ms": [1000 * t for t in times["evicted"]], "cached_ms": [1000 * t for t in times["cached"]],
        }
    finally:
        stack.stop_worker(worker)


# --- 6. history size ------------------------------------------------------------------------------------------

HISTORY_PATHS = {
    "pass → closed": "pass → closed (baseline)",
    "fail through every branch (sample only)": "online fail through every branch → closed",
}


async def history_sizes(dsn: str) -> dict[str, tuple[int, int]]:
    """(events, bytes) of each path of HISTORY_PATHS, by bench/history_size.py on the time-skipping server."""
    from bench.history_size import measure

    rows = await measure(list(HISTORY_PATHS.values()), dsn)
    by_name = {name: (events, size) for name, events, size in rows}
    return {label: by_name[name] for label, name in HISTORY_PATHS.items()}
