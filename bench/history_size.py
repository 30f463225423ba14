"""History size of each core path, on the time-skipping server with a real PostgreSQL.

Temporal keeps every event of a workflow's history; a sample lives for months, so its event count is what
bounds replay time and the per-workflow history limit (50,000 events / 50 MB). Figures are reported as
ratios against the simplest complete path (pass → closed) measured in the same run.

    .venv/bin/python -m bench.history_size     # every path; `make bench` measures two of them (bench/figures.py)
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from activities.db import apply_migrations, create_pool
from starter.client import SpotcheckClient
from starter.postgres import EmbeddedPostgres
from tests import factories as f
from tests.scenarios import fail_then_objection_accepted, full_online_fail
from tests.workflow_env import (
    awaiting,
    running_worker,
    settle_in_post_handling,
    time_skipping_env,
    to_testing,
    wait_for,
)

Scenario = Callable[[SpotcheckClient, WorkflowEnvironment], Awaitable[Any]]


async def _to_testing(client: SpotcheckClient, channel: str) -> tuple[Any, str]:
    order = f.order(channel)
    return await to_testing(client, order), order["sample_no"]


async def _retained_and_closed(client: SpotcheckClient, env: WorkflowEnvironment, handle: Any, no: str) -> Any:
    """A passed sample's return, awaited from the verdict (due when its retention period ends), to closed."""
    await wait_for(handle, awaiting("disposal"))
    await client.decide(no, f.disposal())
    await handle.result()
    return handle


async def pass_closed(client: SpotcheckClient, env: WorkflowEnvironment) -> Any:
    handle, no = await _to_testing(client, "offline_production")
    await client.decide(no, f.report("pass"))
    return await _retained_and_closed(client, env, handle, no)


async def fail_no_objection(client: SpotcheckClient, env: WorkflowEnvironment) -> Any:
    handle, no = await _to_testing(client, "offline_production")
    await client.decide(no, f.report("fail"))
    await wait_for(handle, awaiting("result_delivery"))
    await client.decide(no, f.delivered())
    await wait_for(handle, awaiting("objection"))
    await env.sleep(timedelta(days=17))
    await settle_in_post_handling(handle)  # up to the branches opening; they are measured separately
    return handle


async def online_objection_retest_pass(client: SpotcheckClient, env: WorkflowEnvironment) -> Any:
    handle, no = await _to_testing(client, "online")
    await fail_then_objection_accepted(client, handle, no)
    await client.decide(no, f.report("pass", kind="retest_report"))
    return await _retained_and_closed(client, env, handle, no)


def _overdue(kind: str) -> Callable[[Any], bool]:
    return lambda s: any(a.kind == kind and a.overdue for a in s.awaiting)


async def overdue_everywhere(client: SpotcheckClient, env: WorkflowEnvironment) -> Any:
    """Every wait runs past its reminder and deadline before the decision comes."""
    order = f.order("offline_production")
    no = order["sample_no"]
    handle = await client.start_sample(order)
    steps = [("sampling_record", f.sealed()), ("sample_receipt", f.received()), ("lab_report", f.report("fail")),
             ("result_delivery", f.delivered())]
    for kind, decision in steps:
        await wait_for(handle, awaiting(kind))
        await env.sleep(timedelta(days=45))
        await wait_for(handle, _overdue(kind))
        await client.decide(no, decision)
    await wait_for(handle, awaiting("objection"))
    await env.sleep(timedelta(days=17))
    await settle_in_post_handling(handle)
    return handle


async def full_online_fail_sample(client: SpotcheckClient, env: WorkflowEnvironment) -> Any:
    """Issue 3's acceptance path; the sample's own history (each branch has its own)."""
    return (await full_online_fail(client, env))["sample"]


SCENARIOS: dict[str, Scenario] = {
    "pass → closed (baseline)": pass_closed,
    "fail, no objection → branches opened": fail_no_objection,
    "online fail, objection, re-test pass → closed": online_objection_retest_pass,
    "every wait overdue, then fail → branches opened": overdue_everywhere,
    "online fail through every branch → closed": full_online_fail_sample,
}


async def measure(names: list[str] | None = None, dsn: str | None = None) -> list[tuple[str, int, int]]:
    """(path, events, bytes) of each scenario named (default: all), each on a time-skipping server of its
    own, against PostgreSQL at `dsn` (default: an embedded one for this call)."""
    pg, folder = None, None
    if dsn is None:
        folder = Path(tempfile.mkdtemp(prefix="spotcheck-bench-"))
        pg = EmbeddedPostgres(folder / "pgdata", keep=False)
        dsn = pg.dsn
    pool = await create_pool(dsn)
    await apply_migrations(pool)
    rows = []
    try:
        for name in names or list(SCENARIOS):
            env = await time_skipping_env()
            try:
                async with running_worker(env.client, pool, f"bench-{uuid.uuid4()}") as client:
                    handle = await SCENARIOS[name](client, env)
                    history = await handle.fetch_history()
                    size = sum(e.ByteSize() for e in history.events)
                    rows.append((name, len(history.events), size))
            finally:
                await env.shutdown()
    finally:
        await pool.close()
        if pg is not None:
            pg.stop()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return rows


async def main() -> None:
    rows = await measure()
    base_events, base_bytes = rows[0][1], rows[0][2]
    print(f"{'path':<50} {'events':>7} {'× base':>7} {'KiB':>7} {'× base':>7}")
    for name, events, size in rows:
        print(f"{name:<50} {events:>7} {events / base_events:>7.2f} {size / 1024:>7.1f} {size / base_bytes:>7.2f}")


if __name__ == "__main__":
    asyncio.run(main())
