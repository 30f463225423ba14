"""A worker in a process of its own, so that its CPU time and RSS can be read apart from the driver's.

    python -m bench.workers spotcheck --address HOST:PORT --task-queue Q --dsn DSN [--max-cached N]
    python -m bench.workers bare --address HOST:PORT --task-queue Q [--max-cached N]

`spotcheck` is Spotcheck's own worker (worker.build_worker: every workflow and activity, the real PostgreSQL
activities, the client of worker.connect); `bare` runs bench/baseline.py with the SDK's defaults. Once
polling it prints one JSON line (`{"ready": ..., "max_cached_workflows": ...}`) and runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker


async def _spotcheck(args: argparse.Namespace, options: dict[str, Any]) -> tuple[Worker, Any]:
    from activities.db import create_pool
    from worker import build_worker, connect

    client = await connect(args.address, "default")
    pool = await create_pool(args.dsn)
    return build_worker(client, pool, args.task_queue, **options), pool


async def _bare(args: argparse.Namespace, options: dict[str, Any]) -> tuple[Worker, Any]:
    from bench import floors
    from bench.baseline import ACTIVITIES, WORKFLOWS

    client = await Client.connect(args.address, namespace="default")
    return Worker(client, task_queue=args.task_queue, workflows=[*WORKFLOWS, *floors.WORKFLOWS],
                  activities=ACTIVITIES, **options), None


async def main(args: argparse.Namespace) -> None:
    options: dict[str, Any] = {}
    if args.max_cached is not None:
        options["max_cached_workflows"] = args.max_cached
    worker, pool = await (_spotcheck if args.kind == "spotcheck" else _bare)(args, options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with worker:
            config = worker.config()
            print(json.dumps({"ready": args.kind, "max_cached_workflows": config.get("max_cached_workflows")}),
                  flush=True)
            await stop.wait()
    finally:
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.close()


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.workers")
    p.add_argument("kind", choices=["spotcheck", "bare"])
    p.add_argument("--address", required=True)
    p.add_argument("--task-queue", required=True)
    p.add_argument("--dsn")
    p.add_argument("--max-cached", type=int)
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
