"""The Spotcheck worker: every workflow and activity on the `spotcheck` task queue."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from codec import data_converter_from_env
from domain.bounds import whole_number_setting
from telemetry import configure_tracing, tracing_interceptors

if TYPE_CHECKING:
    from activities.keys import SigningSetup
    from domain.outbox import DispatchPlan

TASK_QUEUE = "spotcheck"
# Every module is passed through the sandbox: Spotcheck's workflow, domain and activity-definition modules
# hold no mutable state and do no I/O at import (tests/test_layers.py), so one copy in the worker process
# serves every workflow instead of a fresh import per instance (the sandbox's runtime checks, such as
# refusing datetime.now(), still apply). The keyring in domain.signing is this process's, as it must be.
SANDBOX = SandboxRestrictions.default.with_passthrough_all_modules()
# How many workflows the worker keeps in memory. An evicted one is rebuilt from its history when it next
# has work (a decision, a timer). Sizing: docs/design.md §8 and bench/RESULTS.md.
WORKFLOW_CACHE = 5000


def workflow_runner(environ: Mapping[str, str] = os.environ) -> WorkflowRunner:
    """SPOTCHECK_WORKFLOW_SANDBOX: `off` (default) runs workflows without the SDK's sandbox, `on` in it.

    The sandbox refuses non-deterministic calls (datetime.now(), I/O) at run time, at a price paid on every
    workflow task: about 40 ms of worker CPU per pass lifecycle, a third of the worker's share, and a slower
    rebuild of an evicted sample (bench/RESULTS.md). Spotcheck keeps that guard where code changes, not where
    it runs: the test suite runs every workflow sandboxed (tests/conftest.py turns it on) and replays the
    saved histories under the SDK's default, strictest sandbox, so a non-deterministic call fails CI before it
    ships; deployed workers then run the checked code without the per-task cost. `on` keeps the sandbox in
    production too. A bad value stops the worker, naming the variable."""
    raw = environ.get("SPOTCHECK_WORKFLOW_SANDBOX", "off").strip().lower()
    if raw not in ("on", "off"):
        raise ValueError("SPOTCHECK_WORKFLOW_SANDBOX: must be on or off")
    return SandboxedWorkflowRunner(restrictions=SANDBOX) if raw == "on" else UnsandboxedWorkflowRunner()


def workflow_cache_size(environ: Mapping[str, str] = os.environ) -> int:
    """SPOTCHECK_WORKFLOW_CACHE, or WORKFLOW_CACHE; a bad value stops the worker, naming the variable."""
    return whole_number_setting(environ, "SPOTCHECK_WORKFLOW_CACHE", WORKFLOW_CACHE, 2, 10_000_000)


def build_worker(
    client: Client,
    pool: asyncpg.Pool | None,
    task_queue: str = TASK_QUEUE,
    *,
    activities: Sequence[Callable[..., Any]] | None = None,
    **options: Any,
) -> Worker:
    """Every workflow in workflows/ and every activity in activities/ (found, not listed, so a new
    branch module is picked up without touching this file). `activities` replaces the real ones (tests run
    in-memory fakes registered under the same names); then no pool is needed. Signing is configured by the
    caller (`run_worker`); a worker built without it, as in the test suite, requires no signatures."""
    from activities.errors import DataErrorsAreFinal
    from activities.registry import all_activities
    from workflows.registry import all_workflows

    options.setdefault("workflow_runner", workflow_runner())
    options.setdefault("max_cached_workflows", workflow_cache_size())
    # Data that can never be written fails its activity for good (the workflow then asks an operator).
    options["interceptors"] = [DataErrorsAreFinal(), *options.get("interceptors", ())]
    if activities is None:
        if pool is None:
            raise ValueError("build_worker needs the database pool, or the activities to run instead")
        activities = all_activities(pool)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=all_workflows(),
        activities=activities,
        **options,
    )


async def connect(address: str | None = None, namespace: str | None = None) -> Client:
    return await Client.connect(
        address or os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"),
        namespace=namespace or os.environ.get("TEMPORAL_NAMESPACE", "default"),
        data_converter=data_converter_from_env(),  # encrypting when SPOTCHECK_CODEC_KEYS is set
        interceptors=tracing_interceptors(),  # a client's interceptors also apply to its workers
    )


async def run_worker(
    client: Client, dsn: str, task_queue: str = TASK_QUEUE, signing_setup: SigningSetup | None = None
) -> None:
    """Run until cancelled; migrations are applied first so a fresh database just works. Signing is
    configured first: `signing_setup`, else from SPOTCHECK_SIGNING_KEYS and SPOTCHECK_REQUIRE_SIGNATURES
    (activities/keys.py; a KeyFileError when they do not fit)."""
    from activities.db import apply_migrations, create_pool
    from activities.keys import signing_setup as setup_from_env
    from activities.outbox import config_from_env

    (signing_setup or setup_from_env()).apply()
    outbox = config_from_env()  # a bad file stops the worker here, naming the field
    pool = await create_pool(dsn)
    try:
        await apply_migrations(pool)
        async with build_worker(client, pool, task_queue):
            if outbox is not None:
                await start_outbox_dispatcher(client, task_queue, outbox.plan())
            await asyncio.Event().wait()
    finally:
        await pool.close()


async def start_outbox_dispatcher(client: Client, task_queue: str, plan: DispatchPlan) -> None:
    """Start the task queue's outbox dispatcher unless it runs already (every worker asks; one runs)."""
    from temporalio.common import WorkflowIDConflictPolicy

    from workflows.outbox import OutboxDispatcherWorkflow, dispatcher_id

    await client.start_workflow(
        OutboxDispatcherWorkflow.run, plan, id=dispatcher_id(task_queue), task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Outbox dispatcher of task queue {task_queue}",
    )


async def main() -> None:
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        raise SystemExit("DATABASE_URL is not set (or use `spotcheck up` for the embedded stack)")
    from activities.db import pool_max_size
    from activities.keys import KeyFileError, signing_setup
    from activities.outbox import config_from_env

    try:
        setup = signing_setup()
        config_from_env()
        workflow_cache_size()
        workflow_runner()
        pool_max_size()
    except KeyFileError as err:
        raise SystemExit(f"signing keys: {err}") from None
    except ValueError as err:
        raise SystemExit(str(err)) from None
    configure_tracing("spotcheck-worker")
    await run_worker(await connect(), dsn, os.environ.get("SPOTCHECK_TASK_QUEUE", TASK_QUEUE), setup)


if __name__ == "__main__":
    asyncio.run(main())
