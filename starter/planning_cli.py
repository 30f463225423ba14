"""`spotcheck pool|signals|frame …` and `spotcheck plan draft`: the planning data a plan draws from, and the draw
shown before anything starts (issue 12). Against DATABASE_URL; tables and progress bars with rich.

    spotcheck pool import planning/pool.csv          # the product cycle pool (re-import: only changes)
    spotcheck pool list --region 330106 --overdue    # codes past their cycle in that area
    spotcheck pool show 08.01.01
    spotcheck pool set 08.01.01 --cycle-months 6      # edit one code (the fields given)
    spotcheck signals import planning/demo-signals.csv
    spotcheck signals scores --region 330100          # the riskiest codes and enterprises, decayed to today
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

from domain.bounds import error_lines, within
from domain.models import REGION_PATTERN
from starter.cli import EXIT_OK, EXIT_REJECTED, database

MAX_FILE_BYTES = 64 * 1024 * 1024
_CHINA = ZoneInfo("Asia/Shanghai")
T = TypeVar("T")


# rich is imported where it is used: the other commands of `spotcheck` do not wait for it.


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _table(title: str, *columns: str) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


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


def _database() -> Any:
    return database("the planning data are kept")


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
    print(f"{args.file}: {len(rows)} rows: {done.inserted} new, {done.updated} changed, {done.unchanged} unchanged")
    return EXIT_OK


async def _with_progress(description: str, total: int | None,
                         work: Callable[[Any, Callable[[int], None]], Awaitable[T]]) -> T:
    """`work(db, advance)` on the database (DATABASE_URL) under a progress bar (on a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    async with _database() as db:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task(description, total=total)
            return await work(db, lambda n: bar.advance(task, n))


def _today() -> date:
    return datetime.now(_CHINA).date()


async def _pool_list(args: argparse.Namespace) -> int:
    from activities.planning import read_pool, read_sampled
    from domain.pool import pool_status, sampled_in_area

    async with _database() as db:
        pool, sampled = await read_pool(db), await read_sampled(db)
    on = args.at or _today()
    status = pool_status(pool, sampled_in_area(sampled, args.region), on)
    if args.overdue:
        status = [s for s in status if s.overdue]
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in status], ensure_ascii=False, indent=2))
        return EXIT_OK
    table = _table(f"产品循环池 · {args.region} · {on}（{sum(s.overdue for s in status)} 个超期）",
                   "代码", "产品", "类别", "周期(月)", "上次抽查", "次数", "应抽日期", "")
    for s in status:
        table.add_row(s.entry.product_code, s.entry.name, s.entry.category, str(s.entry.cycle_months),
                      str(s.last_sampled_on or "—"), str(s.count), str(s.due_by or "现在"),
                      _overdue_mark(s))
    _console().print(table)
    return EXIT_OK


async def _signal_scores(args: argparse.Namespace) -> int:
    """The highest risk scores of product codes and enterprises in the area, decayed to the day."""
    from activities.planning import load_policy, read_pool, read_signals
    from domain.risk import risk_scores

    on = args.at or _today()
    policy = load_policy(on)
    async with _database() as db:
        names = {e.product_code: e.name for e in await read_pool(db)}
        scores = risk_scores(await read_signals(db, policy), on, policy.half_life_days, args.region)
    top = {what: sorted(by.items(), key=lambda kv: (-kv[1], kv[0]))[: args.limit]
           for what, by in (("codes", scores.by_code), ("enterprises", scores.by_enterprise))}
    if args.json:
        print(json.dumps({"region": args.region, "on": on.isoformat(), "half_life_days": policy.half_life_days,
                          **{what: [{"key": k, "score": round(v, 4)} for k, v in rows] for what, rows in top.items()}},
                         ensure_ascii=False, indent=2))
        return EXIT_OK
    console = _console()
    for what, rows in top.items():
        code = what == "codes"
        table = _table(f"{'产品' if code else '企业'}风险分 · {args.region} · {on}（半衰期 {policy.half_life_days:g} 天）",
                       "代码" if code else "统一社会信用代码", "风险分", "来源")
        for key, value in rows:
            label = f"{key} {names.get(key, '')}" if code else key
            table.add_row(label, f"{value:.2f}", scores.explain_code(key) if code else scores.explain_enterprise(key))
        console.print(table)
    return EXIT_OK


def _overdue_mark(status: Any) -> str:
    if not status.overdue:
        return ""
    return "[red]超期[/red]" if status.due_by else "[yellow]从未抽查[/yellow]"


async def _pool_show(args: argparse.Namespace) -> int:
    from activities.planning import load_policy, read_frame, read_pool, read_sampled, read_signals
    from domain.pool import pool_status, sampled_in_area
    from domain.risk import risk_scores

    on = args.at or _today()
    async with _database() as db:
        entry = next((e for e in await read_pool(db) if e.product_code == args.code), None)
        if entry is None:
            print("error: code: not in the product cycle pool", file=sys.stderr)
            return EXIT_REJECTED
        policy = load_policy(on)
        sampled = await read_sampled(db)
        signals = [s for s in await read_signals(db, policy) if s.product_code == entry.product_code]
        frame = await read_frame(db, args.region, [entry.product_code])
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
                  f"应抽日期 {status.due_by or '现在'}  " + _overdue_mark(status))
    for region, seen in sorted(shown["sampled_by_region"].items()):
        console.print(f"  {region}：上次抽查 {seen['last_sampled_on']}，{seen['count']} 次")
    console.print(f"风险分 {shown['risk_score']}（{scores.explain_code(entry.product_code) or '无信号'}，"
                  f"半衰期 {policy.half_life_days:g} 天）")
    console.print(f"抽样框：{sum(shown['frame'].values())} 个对象 " +
                  "，".join(f"{k} {v}" for k, v in sorted(shown["frame"].items())))
    return EXIT_OK


async def _pool_set(args: argparse.Namespace) -> int:
    """Edit one code of the pool (the fields given), validated as a row of the pool's CSV."""
    from activities.planning import POOL, import_rows, read_pool
    from domain.pool import PoolEntry

    changes = {k: v for k, v in (("name", args.name), ("category", args.category), ("standards", args.standards),
                                 ("cycle_months", args.cycle_months), ("note", args.note)) if v is not None}
    async with _database() as db:
        entry = next((e for e in await read_pool(db) if e.product_code == args.code), None)
        if entry is None and not {"name", "category", "cycle_months"} <= changes.keys():
            print("error: code: not in the pool; a new code needs --name, --category and --cycle-months",
                  file=sys.stderr)
            return EXIT_REJECTED
        try:
            edited = PoolEntry.model_validate({**(entry.model_dump() if entry else {"product_code": args.code}),
                                               **changes})
        except ValidationError as err:
            print("error: " + "; ".join(within(error_lines(err))), file=sys.stderr)
            return EXIT_REJECTED
        done = await import_rows(db, POOL, [edited])
    print(f"{edited.product_code} {edited.name}: " + ("added" if done.inserted else "changed" if done.updated
                                                      else "unchanged"))
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
    if args.json:
        print(draw.model_dump_json(indent=2))
        return EXIT_OK
    console = _console()
    table = _table(f"{spec.name}（{spec.plan_id}，{spec.period}，{len(draw.samples)}/{spec.budget_batches} 批次，"
                   f"seed {spec.seed}）", "#", "抽样单编号", "产品", "被抽样单位", "渠道", "分层", "风险分", "抽取理由")
    table.show_lines = True
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
        out = _table(f"未抽（{len(draw.excluded)} 个产品）", "理由", "代码")
        by_reason: dict[str, list[str]] = {}
        for e in draw.excluded:
            by_reason.setdefault(e.reason, []).append(e.product_code)
        for reason, codes in by_reason.items():
            out.add_row(reason, " ".join(codes))
        console.print(out)
    return EXIT_OK


def _strata_table(samples: list[Any]) -> Any:
    table = _table("分层构成", "维度", "构成")
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


def _area_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--region", type=_region, default="330000", help="the area (GB/T 2260; default %(default)s)")
    cmd.add_argument("--at", type=_iso_date, metavar="DATE", help="YYYY-MM-DD (default: today, China time)")
    cmd.add_argument("--json", action="store_true")


def add_commands(sub: Any) -> None:
    """Register pool, signals, frame and `plan draft` on the `spotcheck` parser's subcommands."""
    pool = sub.add_parser("pool", help="the product cycle pool (产品循环池): import, set, list (overdue codes), show")
    pool_sub = pool.add_subparsers(dest="pool_command", required=True)
    for name, help_text in (("pool", "import or update the pool from CSV (see planning/pool.csv)"),
                            ("signals", "import risk signals from CSV (see planning/demo-signals.csv)"),
                            ("frame", "import the sampling frame from CSV (see planning/demo-frame.csv)")):
        parent = pool_sub if name == "pool" else _subcommands(
            sub.add_parser(name, help=help_text.replace("import ", "", 1)), f"{name}_command")
        imp = parent.add_parser("import", help=help_text)
        imp.add_argument("file", help="CSV file (UTF-8, a header row; # lines are comments), or - for stdin")
        imp.set_defaults(func=_import, kind=name)
    top = _subcommands(sub.choices["signals"], "signals_command").add_parser(
        "scores", help="the highest risk scores of codes and enterprises in an area, decayed to the day")
    top.add_argument("--limit", type=int, default=20, help="rows of each table (default %(default)s)")
    _area_options(top)
    top.set_defaults(func=_signal_scores)
    edit = pool_sub.add_parser("set", help="add or change one code (only the fields given)")
    edit.add_argument("code")
    edit.add_argument("--name")
    edit.add_argument("--category")
    edit.add_argument("--standards", help="semicolon-separated, e.g. 'GB 4706.1;GB 4706.19'")
    edit.add_argument("--cycle-months", dest="cycle_months", type=int)
    edit.add_argument("--note")
    edit.set_defaults(func=_pool_set)
    for name, func in (("list", _pool_list), ("show", _pool_show)):
        cmd = pool_sub.add_parser(name, help="every code, its last sampling in the region and whether overdue"
                                  if name == "list" else "one code: cycle, standards, sampling, risk, frame")
        if name == "show":
            cmd.add_argument("code")
        else:
            cmd.add_argument("--overdue", action="store_true", help="only codes past their cycle")
        _area_options(cmd)
        cmd.set_defaults(func=func)
    plan = sub.choices.get("plan") or sub.add_parser("plan", help="sampling plans")
    draft = _subcommands(plan, "plan_command").add_parser(
        "draft", help="show a plan's draw (samples, why each, strata, exclusions) before anything starts")
    draft.add_argument("file", help="PlanSpec JSON (see examples/plans/)")
    draft.add_argument("--limit", type=int, default=200, help="rows shown in the table (default %(default)s)")
    draft.add_argument("--json", action="store_true", help="the whole draw (PlanDraw) as JSON")
    draft.set_defaults(func=_plan_draft)
