"""Issue 13: the oversight report's figures against the records (real PostgreSQL), its HTML, XLSX and CSV, the
CLI, and the pure rules behind it (periods, price bands, size classes, the agencies' ranking)."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from openpyxl import load_workbook
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from activities.holiday_files import current_calendar
from activities.notice_print import sample_notices, with_authority_names
from activities.report_render import render_bulletin_html, render_csv, render_html, render_xlsx
from activities.reports import ReportActivities, read_report, sample_fact
from domain.reporting import ReportScope, SampleFact, agencies, build_report, period_days
from domain.strata import EnterpriseSize, PriceRange, enterprise_size, price_range
from tests import factories as f
from tests.report_seed import seed_plan
from tests.scenarios import fail_then_objection_accepted, to_final_fail_waived
from tests.workflow_env import running_worker, to_testing, wait_for

ROOT = Path(__file__).resolve().parent.parent


# --- the pure rules -----------------------------------------------------------------------------------------


def test_periods_cover_their_days() -> None:
    assert period_days("2026") == (date(2026, 1, 1), date(2027, 1, 1))
    assert period_days("2026H2") == (date(2026, 7, 1), date(2027, 1, 1))
    assert period_days("2026Q4") == (date(2026, 10, 1), date(2027, 1, 1))
    assert period_days("2026Q1") == (date(2026, 1, 1), date(2026, 4, 1))
    assert period_days("2026M03") == (date(2026, 3, 1), date(2026, 4, 1))


def test_a_scope_needs_a_plan_or_a_period_and_refuses_bad_input_without_echoing_it() -> None:
    with pytest.raises(ValidationError, match="name a plan or a period"):
        ReportScope()
    with pytest.raises(ValidationError) as err:
        ReportScope(period="2026Q5<script>")
    assert "period" in str(err.value) and "<script>" not in str(err.value).split("input_value")[0]
    with pytest.raises(ValidationError):
        ReportScope(plan_id="x" * 101)
    assert ReportScope(plan_id="P1", period="2026Q4", region="330100").title == "抽查计划 P1 · 2026年第四季度 · 杭州市"


def test_price_ranges_and_size_classes() -> None:
    assert price_range(None) is PriceRange.UNKNOWN
    assert price_range(Decimal("49.99")) is PriceRange.UNDER_50
    assert price_range("50") is PriceRange.FROM_50
    assert price_range("999.99") is PriceRange.FROM_200
    assert price_range(5000) is PriceRange.FROM_5000
    assert price_range("NaN") is PriceRange.UNKNOWN
    assert enterprise_size("92330782MA2K1LMN3X") is EnterpriseSize.INDIVIDUAL
    assert enterprise_size("91330100MA2ABCDE1R") is EnterpriseSize.UNKNOWN
    assert enterprise_size("91330100MA2ABCDE1R", "medium") is EnterpriseSize.MEDIUM
    assert enterprise_size("91330100MA2ABCDE1R", "gigantic") is EnterpriseSize.UNKNOWN


def test_a_plans_stratum_gives_the_samples_size_and_price_level() -> None:
    order = f.order("offline_production")
    row = {"sample_no": order["sample_no"], "workflow_id": f"sample-{order['sample_no']}", "verdict": "pass",
           "o": order, "day": date(2026, 10, 1), "bulletin": None}
    cal = current_calendar()
    drawn = sample_fact(row, [], {}, set(), {"enterprise_size": "small", "price_band": "low"}, cal)
    assert (drawn.size, drawn.price_level, drawn.price_range) == (EnterpriseSize.SMALL, "low", PriceRange.FROM_50)
    unplanned = sample_fact(row, [], {}, set(), {"price_band": "cheapest"}, cal)
    assert (unplanned.size, unplanned.price_level) == (EnterpriseSize.UNKNOWN, None)
    report = build_report(ReportScope(plan_id="P"), [drawn, unplanned], [], date(2026, 12, 1))
    assert [(r.label, r.samples) for r in report.by_price_level] == [("低价位", 1)]
    assert "按价位（计划分层" in render_html(report)


def _fact(no: str, agency: str, **kw: object) -> SampleFact:
    base: dict[str, object] = dict(
        sample_no=no, plan_id="P", day=date(2026, 10, 1), region="330106", channel="online", task_type="routine",
        product_code="1303", product_name="移动电源", brand="B", model="M", batch=None, price_range=PriceRange.UNKNOWN,
        price_level=None,
        size=EnterpriseSize.UNKNOWN, sampled_party="S", producer="P", agency_code=agency, agency=agency,
        verdict="pass", lab_reported=True, turnaround=5)
    return SampleFact(**(base | kw))  # type: ignore[arg-type]


def test_an_agency_whose_fails_are_overturned_ranks_below_one_whose_are_not() -> None:
    rows = agencies([
        _fact("1", "A", verdict="fail", first_fail=True),
        _fact("2", "A"),
        _fact("3", "B", first_fail=True, overturned=True),
        _fact("4", "B", verdict="fail", first_fail=True),
        _fact("5", "C", lab_overdue=True, turnaround=30),
        _fact("6", "C"),
    ])
    assert [(r.code, r.rank) for r in rows] == [("A", 1), ("B", 2), ("C", 3)]
    b = rows[1]
    assert (b.first_fails, b.overturned, b.overturn_share, b.score) == (2, 1, 0.5, 75.0)
    assert rows[2].overdue_rate == 0.5 and rows[2].mean_turnaround == 17.5


# --- the report against the records ------------------------------------------------------------------------


async def _sql_counts(pool: asyncpg.Pool, plan: str) -> dict[str, object]:
    """What the records say, counted directly (independently of activities/reports.py)."""
    q4 = "(\"order\"->>'ordered_on')::date BETWEEN '2026-10-01' AND '2026-12-31'"
    sq4 = q4.replace('"order"', 's."order"')
    verdicts = dict(await pool.fetch(f"SELECT verdict, count(*) FROM samples WHERE plan_id = $1 AND {q4} GROUP BY 1",
                                     plan))
    by_channel = dict(await pool.fetch(
        f"SELECT channel, count(*) FROM samples WHERE plan_id = $1 AND {q4} AND verdict = 'fail' GROUP BY 1", plan))
    standards = dict(await pool.fetch(
        "SELECT i->>'standard', count(DISTINCT b.sample_no) FROM results_bulletin b JOIN samples s USING (sample_no),"
        f" jsonb_array_elements(b.entry->'failed_items') i WHERE s.plan_id = $1 AND {sq4}"
        " GROUP BY 1", plan))
    escalations = await pool.fetchval(
        "SELECT count(*) FROM outbox o JOIN samples s ON o.workflow_id LIKE s.workflow_id || '%' "
        f"WHERE o.channel = 'escalation' AND s.plan_id = $1 AND {sq4}", plan)
    defaults = await pool.fetchval(
        "SELECT count(*) FROM decisions d JOIN samples s ON d.workflow_id = s.workflow_id "
        f"WHERE d.via = 'default' AND d.accepted AND s.plan_id = $1 AND {sq4}", plan)
    rejections = dict(await pool.fetch(
        "SELECT s.\"order\"->'inspection_agency'->>'code', count(*) FROM decisions d JOIN samples s "
        "ON d.workflow_id = s.workflow_id WHERE d.kind = 'sample_receipt' AND d.outcome = 'rejected' AND d.accepted "
        f"AND s.plan_id = $1 AND {sq4} GROUP BY 1", plan))
    delisted = await pool.fetchval(
        "SELECT count(*) FROM platform_actions p JOIN samples s USING (sample_no) "
        "WHERE p.confirmation = 'delisted' AND s.plan_id = $1", plan)
    return {"verdicts": verdicts, "fails_by_channel": by_channel, "standards": standards,
            "missed": escalations + defaults, "rejections": rejections, "delisted": delisted}


async def test_the_report_counts_what_the_records_hold(pool: asyncpg.Pool) -> None:
    plan, seeder = await seed_plan(pool)
    scope = ReportScope(plan_id=plan, period="2026Q4")
    report = await read_report(pool, scope, today=date(2027, 1, 5))
    sql = await _sql_counts(pool, plan)
    verdicts = sql["verdicts"]
    assert isinstance(verdicts, dict)

    t = report.totals
    assert (t.samples, t.passed, t.failed, t.refused, t.pending) == (
        sum(verdicts.values()), verdicts.get("pass", 0), verdicts.get("fail", 0), verdicts.get("refused", 0),
        verdicts.get("pending", 0))
    assert (t.samples, t.passed, t.failed) == (6, 2, 2)  # the Q3 sample and the other plan's are left out
    assert t.rate == 0.5
    assert {r.key: r.failed for r in report.by_channel if r.failed} == sql["fails_by_channel"]
    assert {s.standard: s.samples for s in report.by_standard} == sql["standards"]
    assert report.by_standard[0].standard == "GB 4943.1-2022"  # the standard that fails most comes first
    assert report.deadline_totals.missed == sql["missed"] == 3  # two escalations, one default
    missed = {r.key: r.missed for r in report.deadlines_by_step if r.missed}
    assert missed == {"lab_report": 1, "rectification_report": 1, "producer_confirmation": 1}
    # Each answered wait counts: the rejected arrival and the accepted one after it are two.
    assert {r.key: (r.met, r.missed) for r in report.deadlines_by_step}["sample_receipt"] == (6, 0)
    outcomes = {o.key: o.samples for o in report.outcomes}
    assert outcomes["delisted"] == sql["delisted"] == 1
    assert (outcomes["penalised"], outcomes["recalled"], outcomes["certificate_suspended"]) == (1, 1, 1)
    assert outcomes["rectified"] == 0  # the rectification branch has not closed
    bands = {r.key: r.samples for r in report.by_price_range}
    assert (bands["under_50"], bands["50_200"], bands["1000_5000"], bands["5000_up"], bands["unknown"]) == (1, 2, 1, 1, 1)
    assert {r.key: r.samples for r in report.by_size}["individual"] >= 1

    by_agency = {a.code: a for a in report.agencies}
    assert {c: a.rejections for c, a in by_agency.items() if a.rejections} == sql["rejections"]
    a, b = by_agency["ZJPQ"], by_agency["HZQC"]
    assert (a.reports, a.overdue, a.first_fails, a.overturned) == (2, 1, 1, 0)
    assert (b.reports, b.overdue, b.first_fails, b.overturned) == (2, 0, 2, 1)
    assert a.mean_turnaround is not None and a.mean_turnaround > 4  # working days, the late report included

    assert [row.result for row in report.bulletin] == ["不合格", "不合格", "合格", "合格"]  # fails first
    assert len(report.bulletin) == t.passed + t.failed
    assert next(r for r in report.bulletin if r.result == "不合格" and "；" in r.failed_items).failed_items == "输出电压；标识"

    # Writing every record again (a retried activity) changes no figure.
    await seeder.again()
    assert (await read_report(pool, scope, today=date(2027, 1, 5))) == report

    # A region narrows to the samples taken inside it: the online sellers in Yiwu (330782) lie in Jinhua (330700).
    jinhua = await read_report(pool, ReportScope(plan_id=plan, period="2026Q4", region="330700"))
    assert jinhua.totals.samples == 2 and [r.label for r in jinhua.by_region] == ["义乌市"]
    # The plan alone (no period) takes its Q3 sample too; the summary for the plan's close says the same.
    summary = await ReportActivities(pool).plan_report_summary(plan)
    assert summary["samples"] == 7 and summary["passed"] == 3 and summary["outcomes"]["delisted"] == 1
    assert [x["code"] for x in summary["agencies"]] == [x.code for x in report.agencies]


async def test_html_xlsx_and_csv_show_the_same_figures(pool: asyncpg.Pool) -> None:
    plan, _ = await seed_plan(pool)
    report = await read_report(pool, ReportScope(plan_id=plan, period="2026Q4"))
    html = render_html(report)
    for text in ("产品质量监督抽查统计报告", "按销售渠道", "承检机构工作质量评价", "抽查结果公告", "GB 4943.1-2022",
                 "50.0%", "@media print", "<svg"):
        assert text in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    assert "<script" not in html
    bulletin_page = render_bulletin_html(report)
    assert "产品质量监督抽查结果公告" in bulletin_page and "输出电压；标识" in bulletin_page

    book = load_workbook(io.BytesIO(render_xlsx(report)))
    sheet = book["抽查结果公告"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("序号", "产品名称", "标称生产企业") and len(rows) - 1 == len(report.bulletin)
    totals = {r[0]: r[1] for r in book["汇总"].iter_rows(values_only=True)}
    assert (totals["抽查批次"], totals["合格"], totals["不合格"]) == (6, 2, 2)
    agencies_sheet = list(book["承检机构评价"].iter_rows(values_only=True))
    assert [r[2] for r in agencies_sheet[1:]] == [a.code for a in report.agencies]

    parsed = list(csv.reader(io.StringIO(render_csv(report, "channel"))))
    assert parsed[0][0] == "分组" and {r[0]: int(r[3]) for r in parsed[1:]}["直播带货"] == 1


async def test_a_plan_without_samples_reports_zeros(pool: asyncpg.Pool) -> None:
    summary = await ReportActivities(pool).plan_report_summary(f"P-none-{uuid.uuid4().hex[:8]}")
    assert (summary["samples"], summary["pass_rate"], summary["agencies"]) == (0, None, [])
    report = await read_report(pool, ReportScope(plan_id="P-none", period="2026Q4"))
    assert "本期无已确定结论的抽查结果" in render_html(report) and len(render_xlsx(report)) > 0


async def _cli(*args: str, dsn: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "starter.cli", *args, cwd=ROOT, env={**os.environ, "DATABASE_URL": dsn},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_cli_writes_the_report_and_refuses_bad_arguments(pool: asyncpg.Pool, postgres_dsn: str,
                                                                   tmp_path: Path) -> None:
    plan, _ = await seed_plan(pool)
    code, out, err = await _cli("report", "plan", plan, "--period", "2026Q4", "-o", str(tmp_path / "r.html"),
                                dsn=postgres_dsn)
    assert code == 0, err
    assert "6 samples, 2 passed, 2 failed, 1 refused, 1 without a final result; pass rate 50.0%" in out
    assert "承检机构工作质量评价" in (tmp_path / "r.html").read_text(encoding="utf-8")
    code, _, err = await _cli("report", "bulletin", plan, "-o", str(tmp_path / "b.xlsx"), dsn=postgres_dsn)
    assert code == 0, err
    assert len(list(load_workbook(tmp_path / "b.xlsx")["抽查结果公告"].iter_rows())) == 1 + 3 + 2
    code, _, err = await _cli("report", "plan", plan, "--format", "csv", "--table", "agencies", "-o",
                              str(tmp_path / "a.csv"), dsn=postgres_dsn)
    assert code == 0, err
    assert (tmp_path / "a.csv").read_text(encoding="utf-8-sig").startswith("排名,承检机构")

    code, _, err = await _cli("report", "plan", "--period", "2026Q9<b>", dsn=postgres_dsn)
    assert code == 2 and "--period" in err and "<b>" not in err
    code, _, err = await _cli("report", "plan", "--region", "33010", dsn=postgres_dsn)
    assert code == 2 and "--region" in err
    code, _, err = await _cli("report", "plan", dsn=postgres_dsn)
    assert code == 1 and "name a plan or a period" in err


async def test_real_samples_are_counted_as_their_records_say(ts_env: WorkflowEnvironment, pool: asyncpg.Pool,
                                                            task_queue: str) -> None:
    """Three samples run by the workflows with the real activities: a pass, a fail the re-test overturns, and
    a fail made final; the report reads what they wrote."""
    plan = f"P-{uuid.uuid4().hex[:10]}"
    orders = [f.order("offline_production", plan_id=plan) for _ in range(3)]
    passed, overturned, failed = (o["sample_no"] for o in orders)
    async with running_worker(ts_env.client, pool, task_queue) as client:
        handle = await to_testing(client, orders[0])
        await client.decide(passed, f.report("pass"))
        await wait_for(handle, lambda s: s.verdict == "pass")
        handle = await to_testing(client, orders[1])
        await fail_then_objection_accepted(client, handle, overturned)
        await client.decide(overturned, f.report("pass", kind="retest_report"))
        await wait_for(handle, lambda s: s.verdict == "pass")
        await to_final_fail_waived(client, orders[2])
        # The records are written by the workflows' activities: wait until the last of them is in.
        for _ in range(100):
            if await pool.fetchval("SELECT count(*) FROM samples s JOIN results_bulletin USING (sample_no)"
                                   " WHERE s.plan_id = $1 AND s.verdict = 'fail'", plan):
                break
            await asyncio.sleep(0.1)
        report = await read_report(pool, ReportScope(plan_id=plan))

    t = report.totals
    assert (t.samples, t.passed, t.failed, t.pending) == (3, 2, 1, 0)
    [agency] = report.agencies
    assert (agency.reports, agency.first_fails, agency.overturned, agency.overdue) == (3, 2, 1, 0)
    assert [(s.standard, s.samples) for s in report.by_standard] == [("GB 4943.1-2022", 1)]
    assert [(b.sample_no, b.failed_items) for b in report.bulletin if b.result == "不合格"] == [(failed, "输出电压")]
    taken = await pool.fetchval(
        "SELECT count(*) FROM decisions WHERE accepted AND via <> 'default' AND kind <> 'objection'"
        " AND (workflow_id = ANY($1) OR workflow_id LIKE ANY($2))",
        [f"sample-{o['sample_no']}" for o in orders], [f"sample-{o['sample_no']}-%" for o in orders])
    assert (report.deadline_totals.met, report.deadline_totals.missed) == (taken, 0)
    # The notices the workflow issued print with the bureau's name.
    notices = await sample_notices(pool, failed)
    assert notices and "杭州市市场监督管理局" in with_authority_names(notices[0]["body"])
