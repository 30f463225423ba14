"""Issue 13: the HTML report in Debian's chromium (driven as tests/test_workbench_browser.py does): it opens
from a file with no request beyond itself and no console error, shows its figures, tables and charts, and
prints each section on its own page. Screenshots go to test-artefacts/reports/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from activities.report_render import render_bulletin_html, render_html
from activities.reports import read_report
from domain.reporting import ReportScope
from tests.report_seed import seed_plan
from tests.test_workbench_browser import CHROMIUM, chromium

ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artefacts" / "reports"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no chromium at {CHROMIUM}: `make browser` installs Debian's (apt-get, as root); not installable here",
)


async def _open(browser: Any, path: Path) -> tuple[Any, list[str], list[str]]:
    """A page showing `path`, with the console errors and the requests it made."""
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    await page.goto(path.as_uri())
    await page.wait_for_load_state("load")
    return page, errors, requests


async def test_the_report_opens_offline_without_errors_and_prints_by_section(pool: asyncpg.Pool,
                                                                            tmp_path: Path) -> None:
    plan, _ = await seed_plan(pool)
    report = await read_report(pool, ReportScope(plan_id=plan, period="2026Q4"))
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    html, bulletin = tmp_path / "report.html", tmp_path / "bulletin.html"
    html.write_text(render_html(report), encoding="utf-8")
    bulletin.write_text(render_bulletin_html(report), encoding="utf-8")

    async with chromium() as browser:
        page, errors, requests = await _open(browser, html)
        await page.screenshot(path=str(ARTEFACTS / "report.png"), full_page=True)
        assert errors == [] and requests == [html.as_uri()]
        assert await page.title() == report.title
        text = await page.inner_text("body")
        for shown in ("批次合格率\n50.0%", "按销售渠道", "直播带货", "GB 4943.1-2022", "承检机构工作质量评价",
                      "杭州市质量技术监督检测院", "抽查结果公告", "输出电压；标识"):
            assert shown in text
        # Every pass-rate chart draws a bar per group with samples; a 50 % bar is half the track.
        charts = await page.locator("svg.chart").count()
        assert charts >= 9
        widths = await page.locator("svg.chart").first.locator("rect").evaluate_all(
            "rs => rs.map(r => Number(r.getAttribute('width')))")
        assert widths and max(widths) == 360

        # Printed: each numbered section starts a page, the first excepted.
        await page.emulate_media(media="print")
        breaks = await page.locator("h2").evaluate_all("hs => hs.map(h => getComputedStyle(h).breakBefore)")
        assert breaks[0] == "auto" and set(breaks[1:]) == {"page"}
        await page.screenshot(path=str(ARTEFACTS / "report-print.png"), full_page=True)

        page, errors, requests = await _open(browser, bulletin)
        await page.screenshot(path=str(ARTEFACTS / "bulletin.png"), full_page=True)
        assert errors == [] and requests == [bulletin.as_uri()]
        header = await page.locator("table.bulletin th").all_inner_texts()
        assert header == ["序号", "产品名称", "标称生产企业", "被抽样单位", "商标", "规格型号", "生产日期或批号",
                          "抽查结果", "不合格项目", "承检机构"]
        assert await page.locator("table.bulletin tbody tr").count() == len(report.bulletin) == 4
        assert await page.locator("table.bulletin tr.fail").count() == 2
