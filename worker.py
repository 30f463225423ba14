"""The Spotcheck worker: every workflow and activity on the `spotcheck` task queue."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.runtime import Runtime
from temporalio.worker import Worker, WorkerDeploymentConfig, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from codec import data_converter_from_env
from detached_runner import DetachedRunner
from settings import Settings, load_settings, setting, temporal_connect_config
from telemetry import tracing_interceptors

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
# has work (a decision, a timer). Sizing: docs/operations.md and bench/RESULTS.md.
WORKFLOW_CACHE: int = Settings.model_fields["workflow_cache"].default


def workflow_runner(environ: Mapping[str, str] = os.environ) -> WorkflowRunner:
    """SPOTCHECK_WORKFLOW_SANDBOX: `off` (default) runs workflows without the SDK's sandbox, `on` in it.

    The sandbox refuses non-deterministic calls (datetime.now(), I/O) at run time, at a price paid on every
    workflow task: about 40 ms of worker CPU per pass lifecycle, a third of the worker's share, and a slower
    rebuild of an evicted sample (bench/RESULTS.md). Spotcheck keeps that guard where code changes, not where
    it runs: the test suite runs every workflow sandboxed (tests/conftest.py turns it on) and replays the
    saved histories under the SDK's default, strictest sandbox, so a non-deterministic call fails CI before it
    ships; deployed workers then run the checked code without the per-task cost. `on` keeps the sandbox in
    production too. A bad value stops the worker, naming the variable."""
    sandbox = setting("SPOTCHECK_WORKFLOW_SANDBOX", environ)
    return SandboxedWorkflowRunner(restrictions=SANDBOX) if sandbox == "on" else DetachedRunner()


def workflow_cache_size(environ: Mapping[str, str] = os.environ) -> int:
    """SPOTCHECK_WORKFLOW_CACHE, or WORKFLOW_CACHE; a bad value stops the worker, naming the variable."""
    cache: int = setting("SPOTCHECK_WORKFLOW_CACHE", environ)
    return cache


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


async def connect(address: str | None = None, namespace: str | None = None, runtime: Runtime | None = None) -> Client:
    """A client from temporalio.envconfig (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS, API key, profiles:
    settings.py), `address` and `namespace` overriding; `runtime` carries the Prometheus endpoint."""
    config = temporal_connect_config()
    if address:
        config["target_host"] = address
    if namespace:
        config["namespace"] = namespace
    return await Client.connect(
        **config,
        data_converter=data_converter_from_env(),  # encrypting when SPOTCHECK_CODEC_KEYS is set
        interceptors=tracing_interceptors(),  # a client's interceptors also apply to its workers
        runtime=runtime,
    )


def deployment_options(settings: Settings) -> dict[str, Any]:
    """Worker Deployment versioning when SPOTCHECK_DEPLOYMENT_NAME and SPOTCHECK_BUILD_ID are set: every
    sample is pinned to the build it started on, so a new release never takes it over mid-run; the old
    build's workers keep serving it until it closes or an operator moves it (docs/operations.md)."""
    if settings.deployment_name is None or settings.build_id is None:
        return {}
    return {"deployment_config": WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(settings.deployment_name, settings.build_id),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )}


async def run_worker(
    client: Client, dsn: str, task_queue: str = TASK_QUEUE, signing_setup: SigningSetup | None = None,
    settings: Settings | None = None,
) -> None:
    """Run until cancelled; migrations are applied first so a fresh database just works. Signing is
    configured first: `signing_setup`, else from SPOTCHECK_SIGNING_KEYS and SPOTCHECK_REQUIRE_SIGNATURES
    (activities/keys.py; a KeyFileError when they do not fit). On cancellation (SIGTERM) the worker stops
    polling, is reported not ready, and in-flight activities get SPOTCHECK_SHUTDOWN_GRACE seconds to finish
    before they are cancelled (and retried elsewhere); a workflow task in flight is simply retried."""
    from activities.db import apply_migrations, create_pool
    from activities.keys import signing_setup as setup_from_env
    from activities.outbox import config_from_env
    from monitoring import Readiness, operate

    settings = settings or load_settings()
    (signing_setup or setup_from_env()).apply()
    outbox = config_from_env()  # a bad file stops the worker here, naming the field
    pool = await create_pool(dsn, max_size=settings.db_pool_max)
    readiness = Readiness(pool)
    try:
        await apply_migrations(pool)
        worker = build_worker(
            client, pool, task_queue,
            graceful_shutdown_timeout=timedelta(seconds=settings.shutdown_grace),
            **deployment_options(settings),
        )
        # The health server outlives the worker: /readyz answers 503 while in-flight activities finish.
        async with operate(settings, client, pool, readiness), worker:
            if outbox is not None:
                await start_outbox_dispatcher(client, task_queue, outbox.plan())
            readiness.worker = worker
            try:
                await asyncio.Event().wait()
            finally:
                readiness.stopping = True
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


def main() -> None:
    """`python -m worker`: the same as `spotcheck worker` (settings checked first, SIGTERM stops gracefully)."""
    from starter.cli import run

    sys.argv[1:1] = ["worker"]
    run()  # leaves with os._exit, like the console script (the SDK's teardown: starter.cli.run)


if __name__ == "__main__":
    main()
