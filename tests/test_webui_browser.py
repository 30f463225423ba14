"""The monitors' guide in the real Temporal Web UI (issue 15): a dev server with its UI on free ports, a few
stories run with in-memory activities, then Debian's chromium (as tests/test_workbench_browser.py drives it)
opens the workflows list under two documented views and a sample's and a branch's page. The rows shown are
the view's, and the current details say the stage, what is awaited from whom by when, and link the sample.
Screenshots go to test-artefacts/webui/."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from codec import spotcheck_data_converter
from domain import visibility
from domain.status import Awaiting
from domain.windows import CHINA
from starter.binaries import temporal_cli
from starter.devserver import free_port
from starter.views import BY_NAME
from tests import factories as f
from tests.scenarios import to_final_fail_waived
from tests.test_workbench_browser import CHROMIUM, chromium
from tests.workflow_env import mocked_worker, wait_for

ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artefacts" / "webui"
LOADED = 90_000  # ms: the UI is a JS app, and the machine may be busy with three other test processes

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no chromium at {CHROMIUM}: `make browser` installs Debian's (apt-get, as root); not installable here",
)


@pytest_asyncio.fixture
async def ui_env() -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    """A dev server of this test's own with its Web UI (free ports): the views' rows are exactly its stories."""
    ui_port = free_port()
    env = await WorkflowEnvironment.start_local(
        data_converter=spotcheck_data_converter,
        dev_server_existing_path=temporal_cli(),
        search_attributes=visibility.ALL,
        ui=True,
        ui_port=ui_port,
        dev_server_extra_args=["--ui-disable-news-fetch"],
    )
    try:
        yield env, f"http://localhost:{ui_port}/namespaces/{env.client.namespace}"
    finally:
        await env.shutdown()


async def listed(page: Any, base: str, query: str, shot: str) -> list[str]:
    """The workflow ids the workflows page shows under `query` (URL-encoded in its `query=` parameter)."""
    await page.goto(f"{base}/workflows?query={quote(query, safe='')}", timeout=LOADED)
    await page.wait_for_load_state("networkidle", timeout=LOADED)
    await page.get_by_text(re.compile(r"^of \d+$")).first.wait_for()  # the table's pager: the rows are in
    await page.screenshot(path=str(ARTEFACTS / shot), full_page=True)
    return re.findall(r"Select Workflow (\S+)", await page.inner_text("body"))


async def details(page: Any, base: str, workflow_id: str, wanted: list[str], shot: str) -> str:
    """The current details as the workflow's page shows them (UI 2.54: its *User Metadata* tab renders each
    markdown field in a frame of its own), once they contain every text in `wanted`."""
    from playwright.async_api import Error as PlaywrightError
    await page.goto(f"{base}/workflows/{workflow_id}", timeout=LOADED)
    await page.get_by_role("tab", name="User Metadata").click()
    await page.get_by_text("Current Details").first.wait_for()
    deadline, shown = time.monotonic() + LOADED / 1000, ""
    while time.monotonic() < deadline:
        for frame in page.frames[1:]:
            if "/render?" not in frame.url:
                continue
            try:
                text = str(await frame.inner_text("body"))
            except PlaywrightError:  # the UI re-rendered the field (the workflow moved on): read it again
                continue
            if "stage" in text:
                shown = text
                if all(w in shown for w in wanted):
                    await page.screenshot(path=str(ARTEFACTS / shot), full_page=True)
                    return shown
        await asyncio.sleep(0.5)
    await page.screenshot(path=str(ARTEFACTS / shot), full_page=True)
    raise AssertionError(f"{workflow_id}: the details shown lack one of {wanted}:\n{shown}")


async def keep_as_the_guide_says(page: Any, name: str, query: str, columns: tuple[str, ...]) -> str:
    """docs/monitoring.md's steps on the listed view: *Configure Columns* (remove Run ID and Type, add the
    view's columns), then *Save as New* under the view's name. The table's text, once the columns show."""
    await page.get_by_role("button", name="Configure Columns").click()
    for column in ("Run ID", "Type"):
        await page.get_by_role("button", name=f"Remove {column} column").click()
    for column in columns:
        await page.get_by_role("button", name=f"Add {column} column").click()
    await page.get_by_role("button", name="Close Workflows Table configuration").click()
    await page.get_by_role("button", name="Save as New").click()
    await page.get_by_role("textbox").first.fill(name)
    await page.get_by_role("button", name="Save", exact=True).click()
    await page.get_by_role("button", name=name).first.wait_for()
    saved = json.loads(await page.evaluate("localStorage.getItem('saved-workflow-queries')"))
    assert [(v["name"], v["query"]) for v in saved["default"]] == [(name, query)]
    table = page.locator("table").first
    for column in columns:
        await table.get_by_role("columnheader", name=column).wait_for()
    return str(await table.inner_text())


def wait_text(a: Awaiting) -> str:
    """How the details name a wait: what (the kind), from whom, by which date (Asia/Shanghai)."""
    return f"({a.kind}) from {'/'.join(a.roles)} by {a.due.astimezone(CHINA).date()}"


async def counted(client: Client, query: str, ids: set[str]) -> None:
    """Until visibility has caught up with the stories (the UI lists from the same index)."""
    for _ in range(200):
        if {wf.id async for wf in client.list_workflows(query)} == ids:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{query}: never listed exactly {ids}")


async def test_the_web_ui_shows_the_views_rows_and_the_details_a_monitor_reads(
    ui_env: tuple[WorkflowEnvironment, str], task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, base = ui_env
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("SPOTCHECK_DEMO_MODE", "1")  # the overdue story runs on a compressed clock
    async with mocked_worker(env.client, task_queue) as (client, _), chromium() as browser:
        # Hangzhou, never sampled on a clock of ten days a second: the sampler is late within a second.
        late = f.order("offline_production", time_scale=864000.0)
        late_handle = await client.start_sample(late)
        # Hangzhou, a CCC product failed for good: its branches open, enforcement waiting for a filing decision.
        failed = f.order("offline_production")
        failed_handle = await to_final_fail_waived(client, failed)
        failed_status = await wait_for(failed_handle, lambda s: any(
            b.branch == "enforcement" and b.awaiting for b in s.branches), within=60)
        late_status = await wait_for(late_handle, lambda s: any(a.overdue for a in s.awaiting))
        enforcement = next(b for b in failed_status.branches if b.branch == "enforcement")

        # The failed sample's branches carry its attributes (Region 330100 too): the views still show one
        # row per sample, and one per open enforcement case.
        now = datetime.now(UTC)
        views = {"overdue-hangzhou": {late_handle.id}, "enforcement-open": {enforcement.workflow_id}}
        page = await browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(LOADED)
        for n, (name, ids) in enumerate(views.items(), 1):
            query = BY_NAME[name].resolved(now)
            await counted(env.client, query, ids)
            assert sorted(await listed(page, base, query, f"{n}-list-{name}.png")) == sorted(ids), name
            if name == "overdue-hangzhou":
                table = await keep_as_the_guide_says(page, name, query, BY_NAME[name].columns)
                await page.screenshot(path=str(ARTEFACTS / f"{n}-saved-{name}.png"), full_page=True)
                assert late["sample_no"] in table and "sampler" in table and "Run ID" not in table

        [late_wait] = late_status.awaiting
        shown = await details(page, base, late_handle.id, [
            "stage sampling", wait_text(late_wait), "overdue", "compressed demo clock"], "3-sample.png")
        assert late["sample_no"] in shown
        [filing] = enforcement.awaiting
        await details(page, base, enforcement.workflow_id, [
            f"stage {enforcement.stage}", wait_text(filing), f"sample: {failed_handle.id}"], "4-branch.png")
        # The sample's id is a link to its row in the workflows list.
        links = [fr.get_by_role("link", name=failed_handle.id) for fr in page.frames[1:] if "/render?" in fr.url]
        hrefs = [await link.get_attribute("href") for link in links if await link.count()]
        assert len(hrefs) == 1, hrefs
        [href] = hrefs
        assert href is not None and f"/workflows?query=WorkflowId%3D%22{failed_handle.id}%22" in href
        for handle in (late_handle, failed_handle):
            await handle.terminate("test over")
