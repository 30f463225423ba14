"""A wait whose deadline was counted over an unpublished year is marked estimated (status, `sample show`, the
Web UI details, the EstimatedDeadline attribute); once the year is loaded and the workflow is told
(`calendar_updated`), the deadline is computed again and the timer really moves: the wait does not escalate at
the old date and does at the new one. Time-skipping server; `spotcheck calendar load` on the dev server."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment

from activities.calendar import CHINA, add_working_days
from activities.holiday_files import CALENDAR_DIR_ENV, read_year, save_year
from domain.holidays import Calendar
from starter import cli
from tests import factories as f
from tests.workflow_env import (
    mocked_worker,
    search_attributes,
    status_of,
    terminate_when_idle,
    to_testing,
    wait_for,
)

FIXTURE_2027 = Path(__file__).resolve().parent / "fixtures" / "calendar-2027.toml"
SPRING_FESTIVAL_2027 = date(2027, 2, 9)  # a Tuesday inside the fixture's Spring Festival (Feb 5-13)


@pytest.fixture
def calendar_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "calendar"
    monkeypatch.setenv(CALENDAR_DIR_ENV, str(folder))
    return folder


def _loaded(folder: Path) -> bool:
    return folder.exists()


def _days_to(start: date, target: date, cal: Calendar) -> int:
    """The testing_working_days that make the lab's deadline fall on `target`, counting on `cal`."""
    for n in range(1, 121):
        if add_working_days(start, n, cal)[0] >= target:
            return n
    pytest.skip(f"{target} is more than 120 working days away: the 2027 fixture year lies too far ahead")


async def estimated_sample(env: WorkflowEnvironment, client: Any) -> tuple[Any, Any]:
    today = (await env.get_current_time()).astimezone(CHINA).date()
    if today >= date(2027, 1, 1):
        pytest.skip("the 2027 fixture year is no longer ahead: move the fixture to a later year")
    length = _days_to(today, SPRING_FESTIVAL_2027, Calendar([]))
    order = f.order("offline_production", testing_working_days=length)
    handle = await to_testing(client, order)
    return handle, order


async def _show(address: str, task_queue: str, sample_no: str, capsys: pytest.CaptureFixture[str]) -> str:
    args = cli.build_parser().parse_args(["sample", "show", sample_no, "--address", address,
                                          "--task-queue", task_queue])
    assert await args.func(args) == cli.EXIT_OK
    return capsys.readouterr().out


async def test_loading_a_year_moves_a_spring_festival_deadline(
    ts_env: WorkflowEnvironment, task_queue: str, calendar_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        handle, order = await estimated_sample(ts_env, client)
        status = await status_of(handle)
        [wait] = status.awaiting
        old_due, old_due_at = wait.due.astimezone(CHINA).date(), wait.due_at
        assert wait.estimated and old_due in (date(2027, 2, 9), date(2027, 2, 10), date(2027, 2, 11))

        # Estimated wherever a person looks: sample show, the Web UI details, the search attribute.
        shown = await _show(ts_env.client.service_client.config.target_host, task_queue, order["sample_no"], capsys)
        assert f"by {old_due} [estimated: the 2027 holiday schedule is not published yet]" in shown
        meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert f"by **{old_due}** (estimated: the 2027 holiday schedule is not published yet)" in meta.current_details
        assert (await search_attributes(handle))["EstimatedDeadline"] is True

        # Past the reminder, so that the timer under way is the due date's own.
        remind_at = next(d.remind_at for d in status.deadlines if d.rule_id == "lab_testing")
        assert remind_at is not None
        await ts_env.sleep(remind_at - await ts_env.get_current_time() + timedelta(hours=1))
        await wait_for(handle, lambda s: bool(store.outbox_for(handle.id)))

        # The year is published: load it and tell the workflow.
        save_year(read_year(FIXTURE_2027), FIXTURE_2027.read_text(encoding="utf-8"))
        await client.tell_calendar_updated(handle.id, 2027)
        status = await wait_for(handle, lambda s: any(e.event == "deadline_moved" for e in s.timeline))
        [wait] = status.awaiting
        new_due = wait.due.astimezone(CHINA).date()
        assert not wait.estimated and new_due >= old_due + timedelta(days=7)  # past the festival
        moved = next(e.text for e in status.timeline if e.event == "deadline_moved")
        assert f"{old_due} (estimated) → {new_due}" in moved
        assert [d.due_date for d in status.deadlines if d.rule_id == "lab_testing"] == [new_due]
        assert (await search_attributes(handle))["EstimatedDeadline"] is False
        # A second, stray or repeated signal, with any payload, changes nothing.
        await handle.signal("calendar_updated", "junk")
        await handle.signal("calendar_updated")

        # The timer moved: past the old date nothing happens…
        await ts_env.sleep(old_due_at - await ts_env.get_current_time() + timedelta(hours=1))
        status = await status_of(handle)
        assert not any(a.overdue for a in status.awaiting)
        assert not any(e.event == "escalated" for e in status.timeline)
        # …and past the new one the wait escalates.
        await ts_env.sleep(wait.due_at - await ts_env.get_current_time() + timedelta(hours=1))
        status = await wait_for(handle, lambda s: any(a.overdue for a in s.awaiting))
        assert sum(e.event == "escalated" for e in status.timeline) == 1
        assert sum(e.event == "deadline_moved" for e in status.timeline) == 1
        await terminate_when_idle(handle)
    # The wait's deadline (computed where the wait opens, with the sample's record) and the one recount.
    asked = [c.deadline for c in store.calls["open_wait"]] + store.calls["compute_deadline"]
    assert [c.rule_id for c in asked].count("lab_testing") == 2


async def test_calendar_load_finds_and_recomputes_open_estimated_waits(
    dev_env: WorkflowEnvironment, task_queue: str, calendar_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = dev_env.client.service_client.config.target_host
    async with mocked_worker(dev_env.client, task_queue) as (client, _store):
        handle, order = await estimated_sample(dev_env, client)
        await wait_for(handle, lambda s: bool(s.awaiting) and s.awaiting[0].estimated)
        for _ in range(100):  # visibility follows the workflow's upsert a moment later
            if handle.id in [wf.id async for wf in dev_env.client.list_workflows("EstimatedDeadline = true")]:
                break
            await wait_for(handle, lambda s: True, within=1)

        args = cli.build_parser().parse_args(["list", "--address", address, "--namespace", dev_env.client.namespace,
                                              "--query", f"SampleNo = '{order['sample_no']}'"])
        assert await args.func(args) == cli.EXIT_OK
        assert f"ESTIMATED: {order['sample_no']} wait on a date" in capsys.readouterr().out

        # Dry run: only validated.
        args = cli.build_parser().parse_args(["calendar", "load", str(FIXTURE_2027), "--dry-run"])
        assert await args.func(args) == cli.EXIT_OK
        assert "valid: 2027" in capsys.readouterr().out and not _loaded(calendar_dir)

        args = cli.build_parser().parse_args(["calendar", "load", str(FIXTURE_2027), "--address", address,
                                              "--namespace", dev_env.client.namespace, "--task-queue", task_queue])
        assert await args.func(args) == cli.EXIT_OK
        out = capsys.readouterr().out
        assert f"loaded 2027 into {calendar_dir}" in out and handle.id in out
        status = await wait_for(handle, lambda s: any(e.event == "deadline_moved" for e in s.timeline))
        assert not status.awaiting[0].estimated
        await terminate_when_idle(handle)

    args = cli.build_parser().parse_args(["calendar", "show"])
    assert cli._calendar_show(args) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "2026  shipped  《国务院办公厅关于2026年部分节假日安排的通知》(国办发明电〔2025〕7号, 2025-11-04)" in out
    assert "2027  loaded   " in out and "test fixture, not an official schedule" in out


async def test_calendar_load_refuses_a_bad_file_naming_the_field(
    tmp_path: Path, calendar_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "2027.toml"
    bad.write_text(FIXTURE_2027.read_text(encoding="utf-8").replace("2027-02-20", "2027-02-17"), encoding="utf-8")
    args = cli.build_parser().parse_args(["calendar", "load", str(bad)])
    assert await args.func(args) == cli.EXIT_REJECTED
    err = capsys.readouterr().err
    assert err.strip() == "error: file: holidays.1: make_up_days: 2027-02-17 is a weekday already"
    assert not _loaded(calendar_dir)


async def test_an_escalation_over_an_estimated_date_says_so(
    ts_env: WorkflowEnvironment, task_queue: str, calendar_dir: Path
) -> None:
    async with mocked_worker(ts_env.client, task_queue) as (client, store):
        handle, _order = await estimated_sample(ts_env, client)
        [wait] = (await status_of(handle)).awaiting
        await ts_env.sleep(wait.due_at - await ts_env.get_current_time() + timedelta(hours=1))
        await wait_for(handle, lambda s: any(a.overdue for a in s.awaiting))
        await terminate_when_idle(handle)
    [notice] = [n for n in store.notices_for(handle.id) if n["template"] == "deadline_escalation"]
    due = wait.due.astimezone(CHINA).date()
    assert f"应于{due.year}年{due.month}月{due.day}日（预计，2027年节假日安排尚未公布）前办结" in notice["body"]
