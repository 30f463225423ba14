"""The workbench in a real browser: Debian's chromium driven by Playwright (`make browser` installs it; never
`playwright install`), against the app served by uvicorn on a free port, a real dev server and PostgreSQL
(the workflows' activities in memory). Screenshots go to test-artefacts/workbench/."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from domain.decisions import Role
from starter.devserver import free_port
from starter.gateway import build_app
from starter.gateway.serve import serve
from starter.gateway.workbench import Workbench
from starter.users import UserStore
from tests.test_gateway import SETTINGS
from tests.test_workbench import PASSWORD, added, at_lab_report, user
from tests.workflow_env import mocked_worker, wait_for

ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artefacts" / "workbench"
CHROMIUM = os.environ.get("SPOTCHECK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no chromium at {CHROMIUM}: `make browser` installs Debian's (apt-get, as root); not installable here",
)


@asynccontextmanager
async def served(env: WorkflowEnvironment, task_queue: str, pool: asyncpg.Pool, tmp: Path
                 ) -> AsyncIterator[tuple[str, Any, UserStore]]:
    users = UserStore(pool)
    async with mocked_worker(env.client, task_queue) as (client, _store):
        app = build_app(env.client, SETTINGS, task_queue=task_queue,
                        workbench=Workbench(users, "b" * 48, tmp / "evidence"))
        port = free_port()
        server = asyncio.create_task(serve(app, "127.0.0.1", port))
        try:
            yield f"http://127.0.0.1:{port}", client, users
        finally:
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in(page: Any, base: str, user_id: str) -> None:
    await page.goto(f"{base}/workbench")
    await page.fill("input[name=user_id]", user_id)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/workbench")


async def test_a_lab_user_reports_through_the_browser_and_another_region_sees_nothing(
    dev_env: WorkflowEnvironment, task_queue: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    async with served(dev_env, task_queue, pool, tmp_path) as (base, client, users), chromium() as browser:
        no = await at_lab_report(client)
        lab = await added(users, user(Role.LAB, region="330100"))
        page = await browser.new_page(viewport={"width": 1366, "height": 800})
        await sign_in(page, base, lab.id)
        row = page.locator(f"#inbox tr[data-sample='{no}'][data-kind='lab_report']")
        await row.wait_for()
        await page.screenshot(path=str(ARTEFACTS / "1-inbox.png"), full_page=True)

        await row.get_by_role("link", name="处理 Decide").click()
        await page.locator("form#decision").wait_for()
        await page.check("input[name=outcome][value=pass]")
        await page.fill("input[name='data.report_no']", "R-BROWSER-1")
        evidence = tmp_path / "report.txt"
        evidence.write_text("检验报告 R-BROWSER-1", encoding="utf-8")
        await page.set_input_files("input[name=evidence]", str(evidence))
        await page.screenshot(path=str(ARTEFACTS / "2-form.png"), full_page=True)
        await page.click("form#decision button[type=submit]")
        await page.wait_for_url(f"{base}/workbench/samples/{no}?decided=lab_report")
        await wait_for(client.client.get_workflow_handle(f"sample-{no}"), lambda s: s.stage == "retention")
        await page.reload()
        assert await page.locator("#stage").inner_text() == "retention"
        assert "lab_report = pass" in await page.locator("ol.timeline").inner_text()
        await page.screenshot(path=str(ARTEFACTS / "3-sample.png"), full_page=True)

        # One bulk decision of two items: both rows ticked, one form, a result per item.
        bulk = [await at_lab_report(client), await at_lab_report(client)]
        await page.goto(f"{base}/workbench")
        for no_b in bulk:
            await page.check(f"#inbox tr[data-sample='{no_b}'][data-kind='lab_report'] input[name=item]")
        await page.click("button[form=bulk]")
        await page.locator("form#bulk-decision").wait_for()
        await page.check("input[name=outcome][value=pass]")
        await page.fill("input[name='data.report_no']", "R-BULK-BROWSER")
        await page.click("form#bulk-decision button[type=submit]")
        await page.locator("#bulk-results").wait_for()
        for no_b in bulk:
            assert await page.locator(f"#bulk-results tr[data-sample='{no_b}']").get_attribute("data-result") == "accepted"
        await page.screenshot(path=str(ARTEFACTS / "6-bulk-result.png"), full_page=True)

        # A lab of another region, and a sampler of this one: neither the item nor the form.
        no2 = await at_lab_report(client)
        other = await added(users, user(Role.LAB, region="110000"))
        await sees_neither(browser, base, other.id, no2, 404, "4-other-region.png")
        sampler = await added(users, user(Role.SAMPLER, region="330100"))
        await sees_neither(browser, base, sampler.id, no2, 403, "5-other-role.png")


async def sees_neither(browser: Any, base: str, user_id: str, sample_no: str, status: int, shot: str) -> None:
    page = await (await browser.new_context()).new_page()
    await sign_in(page, base, user_id)
    assert await page.locator(f"tr[data-sample='{sample_no}']").count() == 0
    answer = await page.goto(f"{base}/workbench/samples/{sample_no}/decide/lab_report")
    assert answer is not None and answer.status == status
    assert await page.locator("form#decision").count() == 0
    await page.screenshot(path=str(ARTEFACTS / shot), full_page=True)
