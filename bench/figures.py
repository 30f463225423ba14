"""One function per figure of issue 9, each measuring one side (Spotcheck or the bare baseline) once: the
caller (bench/run.py) interleaves the trials and takes medians.

The driver waits for a workflow to reach a wait the same way on both sides: it polls the workflow's `status`
query every POLL seconds (Spotcheck: the awaited decision kinds; bare: the awaited step).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from temporalio.client import Client, WorkflowHandle

from bench.baseline import BareWorkflow, EmptyWorkflow
from bench.stack import Stack, WorkerProcess
from starter.client import SpotcheckClient
from tests import factories as f

POLL = 0.02  # seconds between two status queries of one workflow
POLLERS = 4  # workflows polled at once while waiting for many to park
START_WINDOW = 32  # concurrent start calls
SETTLE = 1.0  # seconds after parking, before a measurement starts (publishing, audits finish)
MIB = 1024 * 1024
T = TypeVar("T")

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


async def _poll(ask: Callable[[], Awaitable[Any]], ready: Callable[[Any], bool], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        answer = await ask()
        if ready(answer):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: still {answer!r:.300} after {within:.0f} s")
        await asyncio.sleep(POLL)


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
        await _poll(lambda: handle.query("status"), lambda s: any(a["kind"] == kind for a in s["awaiting"]),
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
        await _poll(lambda: handle.query(BareWorkflow.status), lambda s: s == step, f"{handle.id} at {step}", within)

    async def parked(self, handle: WorkflowHandle[Any, Any]) -> None:
        await self.at_step(handle, 0)


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


async def spot_round_trips(side: SpotSide, n: int, in_flight: int, *, via_client: bool) -> list[float]:
    """Seconds of each sealing decision on n parked samples: a raw `execute_update("submit_decision")`, or
    `SpotcheckClient.decide()` (via_client)."""
    parked = (await start_and_park(side, n)).handles
    await asyncio.sleep(SETTLE)

    async def send(i: int) -> None:
        if via_client:
            await side.spot.decide(parked[i].id.removeprefix("sample-"), f.sealed())
            return
        receipt = await parked[i].execute_update("submit_decision", f.sealed())
        if not receipt["accepted"]:
            raise RuntimeError(f"{parked[i].id} refused the decision: {receipt}")

    return await _timed(n, in_flight, send)


async def bare_round_trips(side: BareSide, n: int, in_flight: int) -> list[float]:
    """Seconds of a no-op update on each of n parked bare workflows."""
    parked = (await start_and_park(side, n)).handles
    await asyncio.sleep(SETTLE)
    return await _timed(n, in_flight, lambda i: parked[i].execute_update(BareWorkflow.noop_update, i))  # type: ignore[arg-type,return-value]


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


async def empty_starts(side: BareSide, n: int) -> float:
    """Starts per second of n EmptyWorkflow, START_WINDOW concurrent start calls (then waits, untimed, for
    them to complete)."""
    async def start(i: int) -> WorkflowHandle[Any, Any]:
        return await side.client.start_workflow(EmptyWorkflow.run, id=f"empty-{uuid.uuid4().hex}",
                                                task_queue=side.worker.task_queue)

    t0 = time.perf_counter()
    handles = await bounded(n, START_WINDOW, start)
    rate = n / (time.perf_counter() - t0)
    await bounded(n, START_WINDOW, lambda i: handles[i].result())
    return rate


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


async def open_samples(stack: Stack, client: Client, n: int, pairs: int, cache: int | None) -> dict[str, Any]:
    """n open (parked) samples on one fresh Spotcheck worker whose cache holds `cache` workflows (None: the
    worker's own setting; so most samples are evicted). Worker RSS at n/2 and at n open, extrapolated to
    100,000 along that slope; then `pairs` sealing decisions, one at a time, alternately on an evicted sample
    (one of the first started) and on a cached one (one of the last)."""
    worker = await stack.start_worker("spotcheck", max_cached=cache)
    try:
        cache = worker.max_cached_workflows
        side = SpotSide(client, worker)
        batch = max(10, min(500, cache // 2))  # parked batch by batch: the pollers only query cached samples
        handles: list[WorkflowHandle[Any, Any]] = []
        half: tuple[int, int] | None = None
        t0 = time.perf_counter()
        while len(handles) < n:
            handles += (await start_and_park(side, min(batch, n - len(handles)))).handles
            if half is None and len(handles) >= n // 2:
                half = (len(handles), worker.rss())
        park_s = time.perf_counter() - t0
        await asyncio.sleep(2 * SETTLE)
        rss = worker.rss()
        assert half is not None
        slope = (rss - half[1]) / max(1, n - half[0])
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
            "n": n, "cache": cache, "evicted_beyond_cache": n > cache, "park_s": park_s,
            "rss_mib": rss / MIB, "rss_half_mib": half[1] / MIB, "half_n": half[0],
            "rss_100k_mib": (rss + slope * (100_000 - n)) / MIB if n < 100_000 else rss / MIB,
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
