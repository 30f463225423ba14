"""`spotcheck plan start|show|list|schedule|amend`: sampling plans (workflows/plan.py, starter/plans.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from domain.plan_run import Counts, Every, PlanInput, PlanOptions, PlanProgress
from starter.plans import Plans, parse_plan, parse_template

COLUMNS = ("drawn", "started", "sampling", "in_testing", "passed", "failed", "provisional_fail", "refused", "overdue",
           "cancelled", "not_started")
POLL = 0.5  # seconds between two looks at a plan that is starting its samples


def _read_json(path: str) -> Any:
    from starter.cli import _loads, _read_text, input_problem

    try:
        return _loads(_read_text(path))
    except (OSError, ValueError) as err:
        raise ValueError(input_problem(err, Path(path).name if path != "-" else "input")) from None


async def _plans(args: argparse.Namespace, signer: Any = None) -> Plans:
    from starter.cli import _connect

    spot = await _connect(args)
    return Plans(spot.client, spot.task_queue, signer)


def _print_json(value: Any) -> None:
    from starter.cli import _print_json as print_json

    print_json(value)


async def _start(args: argparse.Namespace) -> int:
    plan = parse_plan(_read_json(args.file))
    chosen = {k: v for k, v in {"progress_every_seconds": args.progress_every,
                                "follow_up_after_days": args.follow_up_after}.items() if v is not None}
    if chosen:
        plan = PlanInput(spec=plan.spec, options=PlanOptions.model_validate({**plan.options.model_dump(), **chosen}))
    plans = await _plans(args)
    await plans.start(plan)
    pid = plan.spec.plan_id
    if args.no_wait:
        print(f"plan {pid} started (workflow plan-{pid}); `spotcheck plan show {pid}` for its progress")
        return 0
    progress = await _until(plans, pid, lambda p: p.stage != "drawing")
    drawn = progress.totals.drawn
    print(f"plan {pid}: {drawn} samples drawn; starting them at most {plan.spec.start_rate_per_second:g}/s "
          f"in batches of {plan.spec.batch_size}")
    from rich.progress import Progress

    with Progress(transient=False) as bar:
        task = bar.add_task("starting samples", total=max(drawn, 1))
        while progress.stage == "starting":
            bar.update(task, completed=progress.start_requested)
            await asyncio.sleep(POLL)
            progress = await plans.progress(pid)
        bar.update(task, completed=progress.start_requested)
    print(f"plan {pid}: {progress.start_requested} samples started; stage {progress.stage}")
    return 0


async def _until(plans: Plans, pid: str, check: Any) -> PlanProgress:
    while True:
        progress = await plans.progress(pid)
        if check(progress):
            return progress
        await asyncio.sleep(POLL)


async def _show(args: argparse.Namespace) -> int:
    progress = await (await _plans(args)).progress(args.plan_id, refresh=args.refresh)
    if args.json:
        _print_json(progress.model_dump(mode="json"))
        return 0
    from rich.console import Console
    from rich.table import Table

    as_of = progress.as_of.isoformat(timespec="seconds") if progress.as_of else "not read yet"
    table = Table(title=f"plan {progress.plan_id} · stage {progress.stage} · as of {as_of}")
    table.add_column("stratum", no_wrap=True)
    for column in COLUMNS:
        table.add_column(column.replace("_", " "), justify="right")

    def row(name: str, c: Counts) -> None:
        table.add_row(name, *(str(getattr(c, column)) for column in COLUMNS))

    row("all", progress.totals)
    for dimension, values in progress.by_stratum.items():
        for value, counts in values.items():
            row(f"{dimension} = {value}", counts)
    # Piped (a file, a script): wide enough for every column instead of rich's 80.
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    return 0


async def _list(args: argparse.Namespace) -> int:
    rows = await (await _plans(args)).list(args.query or "")
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        print(f"{r['plan_id'] or r['workflow_id']:<32} {r['stage'] or '?':<18} {r['region'] or '':<7} {r['status']:<10} "
              f"{r['started']}")
    if not rows:
        print("no plans")
    return 0


async def _schedule(args: argparse.Namespace) -> int:
    scheduled = parse_template(_read_json(args.file), Every(args.every))
    name = args.name or str(scheduled.template.get("plan_id"))
    handle = await (await _plans(args)).schedule(name, scheduled)
    print(f"schedule {handle.id}: starts plan {scheduled.template.get('plan_id')}-<period> at the start of each "
          f"{scheduled.every.value} (Asia/Shanghai); `temporal schedule trigger --schedule-id {handle.id}` fires it now")
    return 0


async def _amend(args: argparse.Namespace) -> int:
    from starter.cli import _signer

    # As `spotcheck decide`: --key-file/--key-id, else $SPOTCHECK_SIGNING_KEYS (an unusable key: a usage error).
    receipt = await (await _plans(args, _signer(args))).amend(args.plan_id, _read_json(args.file))
    if args.json:
        _print_json(receipt.model_dump(mode="json"))
    elif receipt.accepted:
        print(json.dumps((receipt.outcome.model_dump(mode="json") if receipt.outcome else {}), ensure_ascii=False))
    if not receipt.accepted:
        print(f"error: amendment refused: {receipt.problem}", file=sys.stderr)
        return 1
    return 0


def add_commands(sub: Any) -> None:
    """`spotcheck plan …`, added to the CLI's subcommands (starter/cli.py)."""
    from starter.cli import _client_options, _signing_options

    plan = sub.add_parser("plan", help="sampling plans: draw, start their samples, follow their progress")
    plan_sub = plan.add_subparsers(dest="plan_command", required=True)
    start = plan_sub.add_parser("start", help="draw a plan (a PlanSpec JSON file) and start its samples")
    start.add_argument("file", help="path, or - for standard input")
    start.add_argument("--no-wait", action="store_true", help="start the plan and return at once")
    start.add_argument("--progress-every", type=float, metavar="SECONDS", help="read the samples' records this often")
    start.add_argument("--follow-up-after", type=int, metavar="DAYS",
                       help="a special campaign's follow-up plan of its failed enterprises after this many days")
    start.set_defaults(func=_start)
    show = plan_sub.add_parser("show", help="progress in total and by stratum")
    show.add_argument("plan_id")
    show.add_argument("--refresh", action="store_true", help="read the samples' records now (a running plan)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)
    lst = plan_sub.add_parser("list", help="every plan and its stage")
    lst.add_argument("--query", help="a further visibility query, e.g. \"Region = '330000'\"")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)
    schedule = plan_sub.add_parser("schedule", help="start a plan of each period on a Temporal Schedule")
    schedule.add_argument("file", help="the plan's template: a PlanSpec whose plan_id is the prefix (period ignored)")
    every = schedule.add_mutually_exclusive_group(required=True)
    for flag, value in (("--quarterly", Every.QUARTER), ("--monthly", Every.MONTH), ("--half-yearly", Every.HALF),
                        ("--yearly", Every.YEAR)):
        every.add_argument(flag, dest="every", action="store_const", const=value.value)
    schedule.add_argument("--name", help="the schedule's name (id plan-schedule-<name>; default: the plan id)")
    schedule.set_defaults(func=_schedule)
    amend = plan_sub.add_parser("amend", help="add or cancel samples (an Amendment JSON file), with reason and sender")
    amend.add_argument("plan_id")
    amend.add_argument("file", help="path, or - for standard input")
    amend.add_argument("--json", action="store_true")
    _signing_options(amend)
    amend.set_defaults(func=_amend)
    for p in (start, show, lst, schedule, amend):
        _client_options(p)
