"""`spotcheck pool|signals|frame …` and `spotcheck plan draft`: the planning data a plan draws from, and the draw
shown before anything starts (issue 12). Against DATABASE_URL; tables and progress bars with rich.

    spotcheck pool import planning/pool.csv          # the product cycle pool (re-import: only changes)
    spotcheck pool list --region 330106 --overdue    # codes past their cycle in that area
    spotcheck pool show 08.01.01
    spotcheck signals import planning/demo-signals.csv
    spotcheck frame import planning/demo-frame.csv
    spotcheck plan draft examples/plans/2026Q4-province-linked.json [--json]"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from domain.bounds import error_lines, within
from domain.models import REGION_PATTERN

MAX_FILE_BYTES = 64 * 1024 * 1024
EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
_CHINA = ZoneInfo("Asia/Shanghai")
T = TypeVar("T")


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _read_text(path: str, what: str) -> str:
    """The file's text: bounded, UTF-8 (a BOM is dropped), one line naming the file when it cannot be read."""
    try:
        raw = Path(path).read_bytes() if path != "-" else sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ValueError(f"{what}: cannot read {path}: {err.strerror or type(err).__name__}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ValueError(f"{what}: larger than {MAX_FILE_BYTES // 2**20} MiB")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{what}: not UTF-8 at byte {err.start}") from None


async def _database() -> Any:
    from starter.cli import _database

    return await _database("the planning data are kept")


async def _import(args: argparse.Namespace) -> int:
    from activities import planning
    from domain.csv_rows import CsvRefused

    table = {"pool": planning.POOL, "signals": planning.SIGNALS, "frame": planning.FRAME}[args.kind]
    text = _read_text(args.file, "file")
    try:
        rows = table.parse(text, Path(args.file).name)
    except CsvRefused as err:
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        print(f"error: {args.file}: not imported ({len(err.problems)} problem(s) shown; nothing was written)",
              file=sys.stderr)
        return EXIT_REJECTED
    done = await _with_progress(table.name, len(rows), lambda db, advance: planning.import_rows(
        db, table, rows, advance))
    if done is None:
        return EXIT_USAGE
    print(f"{args.file}: {len(rows)} rows: {done.inserted} new, {done.updated} changed, {done.unchanged} unchanged")
    return EXIT_OK


async def _with_progress(description: str, total: int | None,
                         work: Callable[[Any, Callable[[int], None]], Awaitable[T]]) -> T | None:
    """`work(db, advance)` on the database under a progress bar (on a terminal); None without DATABASE_URL."""
    db = await _database()
    if db is None:
        return None
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task(description, total=total)
            return await work(db, lambda n: bar.advance(task, n))
    finally:
        await db.close()


def _today() -> date:
    return datetime.now(_CHINA).date()


async def _pool_list(args: argparse.Namespace) -> int:
    from activities.planning import read_pool, read_sampled
    from domain.pool import pool_status, sampled_in_area

    db = await _database()
    if db is None:
        return EXIT_USAGE
    try:
        pool, sampled = await read_pool(db), await read_sampled(db)
    finally:
        await db.close()
    on = args.at or _today()
    status = pool_status(pool, sampled_in_area(sampled, args.region), on)
    if args.overdue:
        status = [s for s in status if s.overdue]
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in status], ensure_ascii=False, indent=2))
        return EXIT_OK
    table = Table(title=f"产品循环池 · {args.region} · {on}（{sum(s.overdue for s in status)} 个超期）")
    for column in ("代码", "产品", "类别", "周期(月)", "上次抽查", "次数", "应抽日期", ""):
        table.add_column(column)
    for s in status:
        table.add_row(s.entry.product_code, s.entry.name, s.entry.category, str(s.entry.cycle_months),
                      str(s.last_sampled_on or "—"), str(s.count), str(s.due_by or "现在"),
                      "[red]超期[/red]" if s.overdue else "")
    _console().print(table)
    return EXIT_OK


async def _pool_show(args: argparse.Namespace) -> int:
    from activities.planning import load_policy, read_frame, read_pool, read_sampled, read_signals
    from domain.pool import pool_status, sampled_in_area
    from domain.risk import risk_scores

    on = args.at or _today()
    db = await _database()
    if db is None:
        return EXIT_USAGE
    try:
        entry = next((e for e in await read_pool(db) if e.product_code == args.code), None)
        if entry is None:
            print("error: code: not in the product cycle pool", file=sys.stderr)
            return EXIT_REJECTED
        policy = load_policy(on)
        sampled = await read_sampled(db)
        signals = [s for s in await read_signals(db, policy) if s.product_code == entry.product_code]
        frame = await read_frame(db, args.region, [entry.product_code])
    finally:
        await db.close()
    status = pool_status([entry], sampled_in_area(sampled, args.region), on)[0]
    scores = risk_scores(signals, on, policy.half_life_days, args.region)
    shown = {
        **status.model_dump(mode="json"),
        "region": args.region, "on": on.isoformat(),
        "risk_score": round(scores.code(entry.product_code), 4),
        "risk_sources": scores.code_sources.get(entry.product_code, {}),
        "frame": dict(Counter(c.channel.value for c in frame)),
        "sampled_by_region": {s.region: {"last_sampled_on": s.last_sampled_on.isoformat(), "count": s.count}
                              for s in sampled if s.product_code == entry.product_code},
    }
    if args.json:
        print(json.dumps(shown, ensure_ascii=False, indent=2))
        return EXIT_OK
    console = _console()
    console.print(f"[bold]{entry.product_code} {entry.name}[/bold]（{entry.category}）")
    console.print(f"标准：{'；'.join(entry.standards) or '—'}    周期：{entry.cycle_months} 个月"
                  + (f"    备注：{entry.note}" if entry.note else ""))
    console.print(f"{args.region}：上次抽查 {status.last_sampled_on or '从未'}，共 {status.count} 次，"
                  f"应抽日期 {status.due_by or '现在'}" + ("  [red]超期[/red]" if status.overdue else ""))
    console.print(f"风险分 {shown['risk_score']}（{scores.explain_code(entry.product_code) or '无信号'}，"
                  f"半衰期 {policy.half_life_days:g} 天）")
    console.print(f"抽样框：{sum(shown['frame'].values())} 个对象 " +
                  "，".join(f"{k} {v}" for k, v in sorted(shown["frame"].items())))
    return EXIT_OK


async def _plan_draft(args: argparse.Namespace) -> int:
    from activities.planning import draw_from_db
    from domain.plans import PlanSpec

    text = _read_text(args.file, "plan")
    try:
        spec = PlanSpec.model_validate_json(text)
    except ValidationError as err:
        print("error: " + "; ".join(within(error_lines(err, prefix="plan."))), file=sys.stderr)
        return EXIT_REJECTED
    draw = await _with_progress("drawing", None, lambda db, _: draw_from_db(db, spec))
    if draw is None:
        return EXIT_USAGE
    if args.json:
        print(draw.model_dump_json(indent=2))
        return EXIT_OK
    console = _console()
    table = Table(title=f"{spec.name}（{spec.plan_id}，{spec.period}，{len(draw.samples)}/{spec.budget_batches} 批次，"
                  f"seed {spec.seed}）", show_lines=True)
    for column in ("#", "抽样单编号", "产品", "被抽样单位", "渠道", "分层", "风险分", "抽取理由"):
        table.add_column(column)
    for s in draw.samples[: args.limit]:
        o = s.order
        place = o.platform.shop_name if o.platform else o.sampled_party.name
        table.add_row(str(s.seq), o.sample_no, f"{o.product.name}\n{o.product.brand} {o.product.model}",
                      f"{place}\n{o.sampled_party.region}", o.channel.value, " ".join(s.stratum.values()),
                      f"{s.risk_score:.2f}", "\n".join(s.reasons))
    console.print(table)
    if len(draw.samples) > args.limit:
        console.print(f"… and {len(draw.samples) - args.limit} more (--limit, or --json for all)")
    console.print(_strata_table(draw.samples))
    if draw.excluded:
        out = Table(title=f"未抽（{len(draw.excluded)}）")
        out.add_column("代码")
        out.add_column("理由")
        for e in draw.excluded:
            out.add_row(e.product_code, e.reason)
        console.print(out)
    return EXIT_OK


def _strata_table(samples: list[Any]) -> Table:
    table = Table(title="分层构成")
    table.add_column("维度")
    table.add_column("构成")
    dimensions: dict[str, Counter[str]] = {}
    for s in samples:
        for d, v in s.stratum.items():
            dimensions.setdefault(d, Counter())[v] += 1
    for d, counts in dimensions.items():
        table.add_row(d, "  ".join(f"{v} {n} ({n / len(samples):.0%})" for v, n in sorted(counts.items())))
    return table


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected YYYY-MM-DD") from None


def _region(value: str) -> str:
    if not re.fullmatch(REGION_PATTERN.strip("^$"), value):
        raise argparse.ArgumentTypeError("expected a 6-digit region code (GB/T 2260)")
    return value


def _subcommands(parser: argparse.ArgumentParser, dest: str) -> Any:
    """The parser's subcommands, added when it has none yet (`plan` is shared with the plan workflow's CLI)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest=dest, required=True)


def add_commands(sub: Any) -> None:
    """Register pool, signals, frame and `plan draft` on the `spotcheck` parser's subcommands."""
    pool = sub.add_parser("pool", help="the product cycle pool (产品循环池): import, list (overdue codes), show")
    pool_sub = pool.add_subparsers(dest="pool_command", required=True)
    for name, help_text in (("pool", "import or update the pool from CSV (see planning/pool.csv)"),
                            ("signals", "import risk signals from CSV (see planning/demo-signals.csv)"),
                            ("frame", "import the sampling frame from CSV (see planning/demo-frame.csv)")):
        parent = pool_sub if name == "pool" else _subcommands(
            sub.add_parser(name, help=help_text.replace("import ", "", 1)), f"{name}_command")
        imp = parent.add_parser("import", help=help_text)
        imp.add_argument("file", help="CSV file (UTF-8, a header row; # lines are comments), or - for stdin")
        imp.set_defaults(func=_import, kind=name)
    for name, func in (("list", _pool_list), ("show", _pool_show)):
        cmd = pool_sub.add_parser(name, help="every code, its last sampling in the region and whether overdue"
                                  if name == "list" else "one code: cycle, standards, sampling, risk, frame")
        if name == "show":
            cmd.add_argument("code")
        else:
            cmd.add_argument("--overdue", action="store_true", help="only codes past their cycle")
        cmd.add_argument("--region", type=_region, default="330000", help="the area (GB/T 2260; default %(default)s)")
        cmd.add_argument("--at", type=_iso_date, metavar="DATE", help="YYYY-MM-DD (default: today, China time)")
        cmd.add_argument("--json", action="store_true")
        cmd.set_defaults(func=func)
    plan = sub.choices.get("plan") or sub.add_parser("plan", help="sampling plans")
    draft = _subcommands(plan, "plan_command").add_parser(
        "draft", help="show a plan's draw (samples, why each, strata, exclusions) before anything starts")
    draft.add_argument("file", help="PlanSpec JSON (see examples/plans/)")
    draft.add_argument("--limit", type=int, default=200, help="rows shown in the table (default %(default)s)")
    draft.add_argument("--json", action="store_true", help="the whole draw (PlanDraw) as JSON")
    draft.set_defaults(func=_plan_draft)
