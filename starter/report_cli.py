"""`spotcheck report` and `spotcheck notice`: what oversight reads, from the records (DATABASE_URL).

- `spotcheck report plan [PLAN_ID] [--period 2026Q4] [--region 330100] [-o FILE.html|.xlsx|.csv]`: the statistics,
  the agencies' evaluation and the results bulletin; HTML by default, `--format xlsx` every table, `--format
  csv` one (`--table`).
- `spotcheck report bulletin PLAN_ID|--period P [-o FILE.html|.xlsx]`: the results bulletin alone.
- `spotcheck notice show SAMPLE_NO [N]` prints each notice issued for the sample and its branches (or the N-th);
  `spotcheck notice print SAMPLE_NO [N] [-o FILE.pdf]` writes them as PDF."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from domain.bounds import one_line
from domain.decisions import first_error
from domain.models import SAMPLE_NO_PATTERN
from domain.plans import PERIOD_PATTERN

FORMATS = ("html", "xlsx", "csv")


def _scope(args: argparse.Namespace) -> Any:
    from domain.reporting import ReportScope

    try:
        return ReportScope(plan_id=args.plan_id, period=args.period, region=args.region)
    except ValidationError as err:
        raise ValueError(first_error(err)) from None


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = Path(args.output).suffix.lower().lstrip(".") if args.output else ""
    return suffix if suffix in FORMATS else "html"


def _write(output: str | None, data: bytes, default: str) -> None:
    path = Path(output or default)
    path.write_bytes(data)
    print(f"wrote {path} ({len(data)} bytes)")


async def _report(args: argparse.Namespace) -> int:
    from activities.report_render import TABLES, render_bulletin_html, render_csv, render_html, render_xlsx
    from activities.reports import read_report
    from starter.cli import EXIT_OK, EXIT_USAGE, database

    scope = _scope(args)
    fmt = _format(args)
    bulletin = args.report_command == "bulletin"
    if fmt == "csv" and args.table not in TABLES:
        print(f"error: --table: one of {', '.join(TABLES)}", file=sys.stderr)
        return EXIT_USAGE
    async with database("the report is read") as pool:
        report = await read_report(pool, scope)
    stem = "bulletin" if bulletin else "report"
    if fmt == "xlsx":
        data = render_xlsx(report, ["bulletin"] if bulletin else None)
    elif fmt == "csv":
        # With a byte-order mark: Excel then reads the Chinese text as UTF-8.
        data = ("\ufeff" + render_csv(report, "bulletin" if bulletin else args.table)).encode("utf-8")
    else:
        data = (render_bulletin_html(report) if bulletin else render_html(report)).encode("utf-8")
    _write(args.output, data, f"{stem}.{fmt}")
    t = report.totals
    rate = "—" if t.rate is None else f"{t.rate * 100:.1f}%"
    print(f"{report.scope.title}: {t.samples} samples, {t.passed} passed, {t.failed} failed, {t.refused} refused, "
          f"{t.pending} without a final result; pass rate {rate}")
    return EXIT_OK


async def _notices(args: argparse.Namespace) -> list[dict[str, Any]] | int:
    """The sample's notices (or its N-th), or the exit code after saying why there are none."""
    from activities.notice_print import sample_notices
    from starter.cli import EXIT_REJECTED, database

    async with database("notices are read") as pool:
        notices = await sample_notices(pool, args.sample_no)
    if args.n is not None:
        notices = [n for n in notices if n["n"] == args.n]
    if not notices:
        which = f"notice {args.n} of sample" if args.n is not None else "notice issued for sample"
        print(f"error: no {which} {args.sample_no} (`spotcheck notice show {args.sample_no}` lists them)",
              file=sys.stderr)
        return EXIT_REJECTED
    return notices


async def _notice_show(args: argparse.Namespace) -> int:
    from activities.notice_print import with_authority_names
    from starter.cli import EXIT_OK

    notices = await _notices(args)
    if isinstance(notices, int):
        return notices
    for notice in notices:
        if args.n is None or len(notices) > 1:
            print(f"=== {notice['n']}. {one_line(notice['title'], 60)} · {notice['workflow_id']} / "
                  f"{notice['step_id']} · {notice['issued_at']:%Y-%m-%d %H:%M}")
        if not notice["intact"]:
            print("warning: the stored text no longer has its stored SHA-256", file=sys.stderr)
        print(with_authority_names(notice["body"]), end="")
        print(f"[存档 SHA-256 {notice['sha256']}]\n")
    return EXIT_OK


async def _notice_print(args: argparse.Namespace) -> int:
    from activities.notice_print import notice_pdf
    from starter.cli import EXIT_OK

    notices = await _notices(args)
    if isinstance(notices, int):
        return notices
    default = f"{args.sample_no}-{args.n}.pdf" if args.n is not None else f"{args.sample_no}-notices.pdf"
    _write(args.output, notice_pdf(notices), default)
    return EXIT_OK


def _sample_no(value: str) -> str:
    import re

    if len(value) > 64 or not re.fullmatch(SAMPLE_NO_PATTERN, value):
        raise argparse.ArgumentTypeError("not a sample number (letters, digits, . _ -; 3 to 64)")
    return value


def _period(value: str) -> str:
    import re

    if len(value) > 7 or not re.fullmatch(PERIOD_PATTERN, value):
        raise argparse.ArgumentTypeError("not a period: 2026, 2026H1, 2026Q4 or 2026M03")
    return value


def _region(value: str) -> str:
    if len(value) != 6 or not value.isdigit():
        raise argparse.ArgumentTypeError("not a region code (6 digits, GB/T 2260)")
    return value


def _plan_id(value: str) -> str:
    if not 1 <= len(value) <= 100 or not value.isprintable():
        raise argparse.ArgumentTypeError("not a plan id (1 to 100 printable characters)")
    return value


def add_commands(sub: Any) -> None:
    """Register `report` and `notice` on the CLI's subcommands."""
    report = sub.add_parser("report", help="statistics, agency evaluation and the results bulletin (DATABASE_URL)")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    for name, help_text in (("plan", "the whole report of a plan or a period: HTML, or its tables as XLSX/CSV"),
                            ("bulletin", "the results bulletin (抽查结果公告) alone, as HTML, XLSX or CSV")):
        p = report_sub.add_parser(name, help=help_text)
        p.add_argument("plan_id", nargs="?", type=_plan_id, metavar="PLAN_ID", help="the plan (its samples' plan_id)")
        p.add_argument("--period", type=_period, help="2026, 2026H1, 2026Q4 or 2026M03: samples ordered in it")
        p.add_argument("--region", type=_region, help="only samples taken inside this region's area (330100)")
        p.add_argument("--format", choices=FORMATS, help="default: from the -o suffix, else html")
        p.add_argument("--table", default="bulletin", help="with --format csv: which table (default bulletin)")
        p.add_argument("-o", "--output", help="the file to write (default report.<format> / bulletin.<format>)")
        p.set_defaults(func=_report)

    notice = sub.add_parser("notice", help="a sample's issued notices: show them, or print them to PDF")
    notice_sub = notice.add_subparsers(dest="notice_command", required=True)
    for name, help_text, func in (("show", "each notice's text, authorities named in full", _notice_show),
                                  ("print", "the notices (or the N-th) as one PDF", _notice_print)):
        p = notice_sub.add_parser(name, help=help_text)
        p.add_argument("sample_no", type=_sample_no, metavar="SAMPLE_NO")
        p.add_argument("n", nargs="?", type=int, metavar="N", help="only the N-th notice (1 = the first issued)")
        if name == "print":
            p.add_argument("-o", "--output", help="the PDF to write (default <SAMPLE_NO>[-N|-notices].pdf)")
        p.set_defaults(func=func)
