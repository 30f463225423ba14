"""The Spotcheck worker: every workflow and activity on the `spotcheck` task queue."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from telemetry import configure_tracing, tracing_interceptors

TASK_QUEUE = "spotcheck"


def build_worker(client: Client, pool: asyncpg.Pool, task_queue: str = TASK_QUEUE, **options: Any) -> Worker:
    """Every workflow in workflows/ and every activity in activities/ (found, not listed, so a new
    branch module is picked up without touching this file)."""
    from activities.registry import all_activities
    from workflows.registry import all_workflows

    return Worker(
        client,
        task_queue=task_queue,
        workflows=all_workflows(),
        activities=all_activities(pool),
        **options,
    )


async def connect(address: str | None = None, namespace: str | None = None) -> Client:
    return await Client.connect(
        address or os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"),
        namespace=namespace or os.environ.get("TEMPORAL_NAMESPACE", "default"),
        data_converter=pydantic_data_converter,
        interceptors=tracing_interceptors(),  # a client's interceptors also apply to its workers
    )


async def run_worker(client: Client, dsn: str, task_queue: str = TASK_QUEUE) -> None:
    """Run until cancelled; migrations are applied first so a fresh database just works."""
    from activities.db import apply_migrations, create_pool

    pool = await create_pool(dsn)
    try:
        await apply_migrations(pool)
        async with build_worker(client, pool, task_queue):
            await asyncio.Event().wait()
    finally:
        await pool.close()


async def main() -> None:
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        raise SystemExit("DATABASE_URL is not set (or use `spotcheck up` for the embedded stack)")
    configure_tracing("spotcheck-worker")
    await run_worker(await connect(), dsn, os.environ.get("SPOTCHECK_TASK_QUEUE", TASK_QUEUE))


if __name__ == "__main__":
    asyncio.run(main())
