"""A report as people read it: one self-contained HTML page (jinja2, inline SVG charts, no script, nothing fetched
from the network, Chinese labels, a print stylesheet), the same tables as an XLSX workbook or one table as CSV.
Plain functions of a `Report` (domain/reporting.py): the CLI and any activity call them alike."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup, escape

from activities.notices import TEMPLATES_DIR
from domain.reporting import DeadlineRow, RateRow, Report, StandardRow

REPORT_TEMPLATE = "report.html.j2"
BULLETIN_TEMPLATE = "bulletin.html.j2"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def bar_chart(bars: Sequence[tuple[str, float, str]], *, title: str, scale: float = 1.0,
              colour: str = "#2f6f9f") -> Markup:
    """A horizontal bar chart as inline SVG: (label, value in [0, scale], text shown at the bar's end)."""
    row, label_w, bar_w, text_w = 22, 200, 360, 150
    height = row * len(bars) + 8
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {label_w + bar_w + text_w} '
             f'{height}" width="{label_w + bar_w + text_w}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    for i, (label, value, shown) in enumerate(bars):
        y = 4 + i * row
        width = 0.0 if scale <= 0 else max(0.0, min(value / scale, 1.0)) * bar_w
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(label[:24])}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="14" fill="#eef2f5"/>'
            f'<rect x="{label_w}" y="{y + 3}" width="{width:.1f}" height="14" fill="{colour}"/>'
            f'<text x="{label_w + bar_w + 6}" y="{y + 15}">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def rate_chart(rows: Sequence[RateRow], title: str) -> Markup:
    return bar_chart([(r.label, r.rate or 0.0, f"{percent(r.rate)}（{r.tested}）") for r in rows if r.samples],
                     title=title)


def deadline_chart(rows: Sequence[DeadlineRow], title: str) -> Markup:
    return bar_chart([(r.label, r.rate or 0.0, f"{percent(r.rate)}（超期 {r.missed}）") for r in rows],
                     title=title, colour="#3d8b5a")


def standard_chart(rows: Sequence[StandardRow], title: str) -> Markup:
    top = rows[:15]
    most = max((r.samples for r in top), default=0)
    return bar_chart([(r.standard, float(r.samples), f"{r.samples} 批次") for r in top], title=title,
                     scale=float(most), colour="#b5473a")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR, encoding="utf-8"),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["percent"] = percent
    env.filters["number"] = number
    env.globals.update(rate_chart=rate_chart, deadline_chart=deadline_chart, standard_chart=standard_chart)
    return env


def render_html(report: Report) -> str:
    """The whole report: totals, statistics with charts, deadlines, outcomes, the agencies, the bulletin."""
    return _environment().get_template(REPORT_TEMPLATE).render(r=report)


def render_bulletin_html(report: Report) -> str:
    """The results bulletin alone (抽查结果公告), in the official layout."""
    return _environment().get_template(BULLETIN_TEMPLATE).render(r=report)


# --- tables: XLSX and CSV -----------------------------------------------------------------------------------

Column = tuple[str, Callable[[Any], Any]]

RATE_COLUMNS: list[Column] = [
    ("分组", lambda r: r.label), ("抽查批次", lambda r: r.samples), ("合格", lambda r: r.passed),
    ("不合格", lambda r: r.failed), ("拒检", lambda r: r.refused), ("未出结论", lambda r: r.pending),
    ("合格率", lambda r: None if r.rate is None else round(r.rate, 4)),
]
TABLES: dict[str, tuple[str, list[Column], Callable[[Report], Sequence[Any]]]] = {
    "category": ("按产品类别", RATE_COLUMNS, lambda r: r.by_category),
    "region": ("按地区", RATE_COLUMNS, lambda r: r.by_region),
    "channel": ("按渠道", RATE_COLUMNS, lambda r: r.by_channel),
    "price_range": ("按价格区间", RATE_COLUMNS, lambda r: r.by_price_range),
    "price_level": ("按价位（计划分层）", RATE_COLUMNS, lambda r: r.by_price_level),
    "size": ("按企业规模", RATE_COLUMNS, lambda r: r.by_size),
    "period": ("按月份", RATE_COLUMNS, lambda r: r.by_period),
    "standard": ("不合格项目按标准", [
        ("标准", lambda s: s.standard), ("不合格批次", lambda s: s.samples), ("不合格项次", lambda s: s.failed_items),
        ("不合格项目", lambda s: "、".join(s.items)),
    ], lambda r: r.by_standard),
    "deadlines_step": ("时限按环节", [
        ("环节", lambda d: d.label), ("按时", lambda d: d.met), ("超期", lambda d: d.missed),
        ("按时率", lambda d: None if d.rate is None else round(d.rate, 4)),
    ], lambda r: r.deadlines_by_step),
    "deadlines_region": ("时限按地区", [
        ("地区", lambda d: d.label), ("按时", lambda d: d.met), ("超期", lambda d: d.missed),
        ("按时率", lambda d: None if d.rate is None else round(d.rate, 4)),
    ], lambda r: r.deadlines_by_region),
    "outcomes": ("后处理结果", [("结果", lambda o: o.label), ("批次", lambda o: o.samples)], lambda r: r.outcomes),
    "agencies": ("承检机构评价", [
        ("排名", lambda a: a.rank), ("承检机构", lambda a: a.name), ("代码", lambda a: a.code),
        ("样品批次", lambda a: a.samples), ("出具报告", lambda a: a.reports),
        ("平均检验周期（工作日）", lambda a: None if a.mean_turnaround is None else round(a.mean_turnaround, 1)),
        ("计划检验期限（工作日）", lambda a: None if a.testing_days is None else round(a.testing_days, 1)),
        ("超期", lambda a: a.overdue),
        ("超期率", lambda a: None if a.overdue_rate is None else round(a.overdue_rate, 4)),
        ("初检不合格", lambda a: a.first_fails), ("复检推翻", lambda a: a.overturned),
        ("复检推翻率", lambda a: None if a.overturn_share is None else round(a.overturn_share, 4)),
        ("拒收样品", lambda a: a.rejections), ("得分", lambda a: a.score),
    ], lambda r: r.agencies),
    "bulletin": ("抽查结果公告", [
        ("序号", lambda b: b.no), ("产品名称", lambda b: b.product), ("标称生产企业", lambda b: b.producer),
        ("被抽样单位", lambda b: b.sampled_party), ("商标", lambda b: b.brand), ("规格型号", lambda b: b.model),
        ("生产日期或批号", lambda b: b.batch), ("抽查结果", lambda b: b.result),
        ("不合格项目", lambda b: b.failed_items), ("承检机构", lambda b: b.agency),
    ], lambda r: r.bulletin),
}


def table(report: Report, name: str) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of one table of the report by its name (a key of TABLES)."""
    _, columns, rows_of = TABLES[name]
    return [c for c, _ in columns], [[get(row) for _, get in columns] for row in rows_of(report)]


def render_csv(report: Report, name: str = "bulletin") -> str:
    """One table as CSV (UTF-8; Excel opens it with the byte-order mark the CLI writes)."""
    out = io.StringIO()
    writer = csv.writer(out)
    header, rows = table(report, name)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def render_xlsx(report: Report, names: Sequence[str] | None = None) -> bytes:
    """Every table (or those named) as one sheet each, with the report's title and totals on the first.
    Written in openpyxl's write-only mode: rows stream out, so a bulletin of 10,000 rows stays cheap."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    book = Workbook(write_only=True)

    def bold(sheet: Any, values: Sequence[Any], size: float = 11) -> list[Any]:
        cells = []
        for value in values:
            cell = WriteOnlyCell(sheet, value=value)
            cell.font = Font(bold=True, size=size)
            cells.append(cell)
        return cells

    first = book.create_sheet("汇总")
    t = report.totals
    first.append(bold(first, [report.title], 14))
    for label, value in (("生成日期", report.generated_on.isoformat()), ("抽查批次", t.samples), ("合格", t.passed),
                         ("不合格", t.failed), ("拒检", t.refused), ("未出结论", t.pending),
                         ("合格率", None if t.rate is None else round(t.rate, 4)),
                         ("时限按时", report.deadline_totals.met), ("时限超期", report.deadline_totals.missed)):
        first.append([label, value])
    for name in names or TABLES:
        title, _, _ = TABLES[name]
        sheet = book.create_sheet(title[:31])
        header, rows = table(report, name)
        for i, column in enumerate(header):
            sheet.column_dimensions[chr(ord("A") + i)].width = max(10, min(40, 2 * len(column) + 4))
        sheet.append(bold(sheet, header))
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
