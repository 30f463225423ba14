"""`make bench`: every figure of issue 9 beside its bare-Temporal baseline in one run, trials interleaved
(Spotcheck and bare alternate which goes first), written to bench/RESULTS.md (bench/report.py).

    make bench                                 # the full run (10 to 15 minutes on 2 shared cores)
    make bench BENCH_ARGS=--quick              # every figure with tiny sizes (under 2 minutes)
    make bench BENCH_ARGS="--open 100000"      # the 100,000 open samples for real (long)
    make bench BENCH_ARGS="--only plan --plan 10000"   # issue 12: a 10,000-sample plan's starts (long)
    .venv/bin/python -m bench --help
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client

from activities.db import create_pool
from activities.plans import PlanActivities
from bench import figures as fig
from bench.report import Environment, write_results
from bench.stack import stack
from worker import connect

HERE = Path(__file__).resolve().parent


@dataclass
class Sizes:
    trials: int = 8  # five read a round trip between 2.25× and 2.87× across runs of the same code
    lifecycles: int = 16  # pass lifecycles per trial
    lifecycle_concurrency: int = 8
    round_trips: int = 40  # decisions per trial
    in_flight: int = 8
    parked: int = 40  # workflows started and parked per trial
    starts: int = 150  # start_samples / empty workflow starts per trial (60 made a trial last under half a second)
    memory: int = 1000  # cached workflows per side for the RSS figure (300 spread one side 99-116 MiB per 1,000)
    memory_trials: int = 3  # one trial swung the bare side between 62 and 76 MiB per 1,000
    open: int = 3000  # open samples on one worker, at most…
    open_budget_s: float | None = 240  # …parked within this many seconds (None: all of them)
    open_cache: int | None = 200  # that worker's max_cached_workflows (None: the worker's own setting)
    latency_pairs: int = 40  # evicted/cached decision pairs
    warmup: int = 4  # untimed lifecycles per side before the first trial
    # samples of one plan / empty workflows started per trial (issue 12); 10,000 with --plan 10000 (about 35 min:
    # the untimed wait for the samples to park dominates), too long for make bench's 15-minute budget
    # 1,000 (one batch) × 4 trials: 2,000 × 3 took 381 s of a 932 s run on a loaded machine (the floors added)
    plan: int = 1_000
    plan_trials: int = 4  # two trials of the same code read 0.70 to 1.01 across runs: a median of four


QUICK = Sizes(trials=2, lifecycles=4, lifecycle_concurrency=4, round_trips=8, parked=8, starts=10, memory=20,
              open=60, open_budget_s=None, open_cache=10, latency_pairs=2, warmup=1, plan=100, plan_trials=1)


@dataclass
class Trials:
    """Each figure's values, one per trial and side, in the order measured."""

    values: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def add(self, figure: str, side: str, value: Any) -> None:
        self.values.setdefault(figure, {}).setdefault(side, []).append(value)


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


async def interleaved(trials: int, results: Trials, figure: str,
                      **sides: Callable[[], Awaitable[Any]]) -> None:
    """Run each side once per trial, the order alternating (ABBA…) so that drift hits both alike, and keep
    each value under `figure` and the side's name."""
    names = list(sides)
    for t in range(trials):
        for name in names if t % 2 == 0 else names[::-1]:
            results.add(figure, name, await sides[name]())


class Phases:
    """Says what runs, and how long the previous step took."""

    def __init__(self) -> None:
        self.t = time.monotonic()

    def next(self, what: str) -> None:
        now = time.monotonic()
        say(f"{what}  (previous step {now - self.t:.0f} s)")
        self.t = now


FIGURES = ("lifecycles", "round_trip", "parked", "starts", "plan", "rss", "open", "history")


async def measure(sizes: Sizes, results: Trials, env: Environment, only: frozenset[str] = frozenset(FIGURES)) -> None:
    phase = Phases()
    async with stack() as s:
        env.server_command = s.server_cmdline()
        env.postgres_version = await _postgres_version(s.dsn)
        client = await connect(s.address, "default")  # Spotcheck's client (pydantic data converter)
        bare_client = await Client.connect(s.address, namespace="default")  # the SDK's defaults
        spot = fig.SpotSide(client, await s.start_worker("spotcheck"))
        bare = fig.BareSide(bare_client, await s.start_worker("bare"))
        env.worker_cache = spot.worker.max_cached_workflows
        phase.next(f"servers up ({s.address}); Spotcheck worker caches {env.worker_cache} workflows; warm-up")
        await fig.spot_lifecycles(s, spot, sizes.warmup, sizes.warmup)
        await fig.bare_lifecycles(s, bare, sizes.warmup, sizes.warmup)

        n, k = sizes.lifecycles, sizes.lifecycle_concurrency
        if "lifecycles" in only:
            phase.next(f"1. pass lifecycles: {sizes.trials} trials × {n}, {k} at a time")
            await interleaved(sizes.trials, results, "lifecycles",
                              spotcheck=lambda: fig.spot_lifecycles(s, spot, n, k),
                              bare=lambda: fig.bare_lifecycles(s, bare, n, k))

        n, k = sizes.round_trips, sizes.in_flight
        if "round_trip" in only:
            phase.next(f"2. decision round trips: {sizes.trials} trials × {n}, {k} in flight")
            await interleaved(sizes.trials, results, "round_trip",
                              spotcheck=lambda: fig.spot_round_trips(spot, n, k, via_client=False),
                              decide=lambda: fig.spot_round_trips(spot, n, k, via_client=True),
                              refused=lambda: fig.spot_round_trips(spot, n, k, via_client=False, refused=True),
                              bare=lambda: fig.bare_round_trips(bare, n, k),
                              step_floor=lambda: fig.step_floor_round_trips(bare, n, k, audited=False),
                              step_floor_audited=lambda: fig.step_floor_round_trips(bare, n, k, audited=True))

        if "parked" in only:
            phase.next(f"4. samples parked: {sizes.trials} trials × {sizes.parked}")
            await interleaved(sizes.trials, results, "parked",
                              spotcheck=lambda: fig.parked_rates(spot, sizes.parked),
                              bare=lambda: fig.parked_rates(bare, sizes.parked))

        if "starts" in only:
            phase.next(f"5. concurrent starts: {sizes.trials} trials × {sizes.starts}")
            await interleaved(sizes.trials, results, "starts",
                              spotcheck=lambda: fig.spot_start_samples(spot, sizes.starts),
                              bare=lambda: fig.empty_starts(bare, sizes.starts),
                              floor=lambda: fig.empty_starts(bare, sizes.starts, as_samples=True))

        if "plan" in only:
            phase.next(f"7. a plan's starts: {sizes.plan_trials} trials × {sizes.plan:,}")
            store = PlanActivities(await create_pool(s.dsn))
            try:
                await interleaved(sizes.plan_trials, results, "plan",
                                  spotcheck=lambda: fig.plan_starts(spot, store, sizes.plan),
                                  bare=lambda: fig.empty_starts(bare, sizes.plan))
            finally:
                await store.pool.close()

        # Memory last among the live figures: fresh worker processes, the shared ones stopped meanwhile.
        s.stop_worker(spot.worker)
        s.stop_worker(bare.worker)
        if "rss" in only:
            phase.next(f"3. RSS per 1,000 cached: {sizes.memory_trials} trial(s) × {sizes.memory} per side")
            await interleaved(sizes.memory_trials, results, "rss",
                              bare=lambda: fig.rss_per_1000(s, bare_client, "bare", sizes.memory),
                              spotcheck=lambda: fig.rss_per_1000(s, client, "spotcheck", sizes.memory))

        if "open" in only:
            phase.next(f"3. {sizes.open} open samples on one worker")
            results.add("open", "spotcheck", await fig.open_samples(s, client, sizes.open, sizes.latency_pairs,
                                                                    sizes.open_cache, sizes.open_budget_s))

        if "history" in only:
            phase.next("6. history sizes (time-skipping server)")
            results.add("history", "spotcheck", await fig.history_sizes(s.dsn))
        phase.next("done; stopping the servers")


async def _postgres_version(dsn: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: every figure, for a smoke test")
    p.add_argument("--trials", type=int, help="trials per side of each interleaved figure")
    p.add_argument("--open", type=int, metavar="N", help="open samples on one worker (default: 3000 or as many "
                   "as park in 240 s, cache 200; with --open: all N, the worker's own cache)")
    p.add_argument("--open-cache", type=int, metavar="N", help="that worker's max_cached_workflows")
    p.add_argument("--memory", type=int, metavar="N", help="cached workflows per side for RSS per 1,000")
    p.add_argument("--plan", type=int, metavar="N", help="samples of the plan (and empty workflows) per trial")
    p.add_argument("--only", metavar="FIGURES", help="comma-separated figures to measure (lifecycles, round_trip, "
                   "parked, starts, plan, rss, open, history); the others are left out of the results")
    p.add_argument("--out", type=Path, help="where to write the results (default bench/RESULTS.md; "
                   "with --quick bench/RESULTS-quick.md)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    sizes = Sizes(**asdict(QUICK)) if args.quick else Sizes()
    if args.open is not None:
        sizes.open, sizes.open_budget_s, sizes.open_cache = args.open, None, None
    for name in ("trials", "open_cache", "memory", "plan"):
        if getattr(args, name) is not None:
            setattr(sizes, name, getattr(args, name))
    if args.trials is not None:
        sizes.plan_trials = min(sizes.plan_trials, args.trials)
    out = args.out or HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    command = "make bench" + (f" BENCH_ARGS={shlex.quote(shlex.join(argv))}" if argv else "")
    env = Environment.now(command, sizes)
    results = Trials()
    t0 = time.monotonic()
    only = frozenset(FIGURES) if not args.only else frozenset(f.strip() for f in args.only.split(","))
    if only - set(FIGURES):
        raise SystemExit(f"--only: unknown figure(s) {', '.join(sorted(only - set(FIGURES)))}; "
                         f"known: {', '.join(FIGURES)}")
    asyncio.run(measure(sizes, results, env, only))
    env.finish(time.monotonic() - t0)
    write_results(out, env, results.values)
    say(f"wrote {out} in {env.runtime_s:.0f} s")
    return 0
