"""Two real worker processes on one task queue (`python -m worker` and `python -m starter.cli worker`), the
dev server and real PostgreSQL: they share the samples, and one stopped by SIGTERM mid-run loses and doubles
nothing (records, decisions, notices and outbox rows counted per sample)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from starter.client import SpotcheckClient
from starter.devserver import free_port
from tests import factories as f

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 8
PASS = [("sampling_record", f.sealed), ("sample_receipt", f.received), ("lab_report", lambda: f.report("pass")),
        ("disposal", f.disposal)]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""
    except OSError:
        return 0, ""


class WorkerProcess:
    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.health, self.metrics = free_port(), free_port()
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
            env={**env, "SPOTCHECK_HEALTH_PORT": str(self.health), "SPOTCHECK_METRICS_PORT": str(self.metrics)},
        )

    async def ready(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while _get(f"http://127.0.0.1:{self.health}/readyz")[0] != 200:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"not ready: {self.log.read_text()}"
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def _awaiting(spot: SpotcheckClient, workflow_id: str, kind: str, within: float = 90) -> None:
    handle = spot.client.get_workflow_handle(workflow_id)
    deadline = time.monotonic() + within
    while True:
        status: Any = await handle.query("status")
        if any(a["kind"] == kind for a in status["awaiting"]):
            return
        assert time.monotonic() < deadline, f"{workflow_id} never awaited {kind}: {status!r:.300}"
        await asyncio.sleep(0.1)


async def _step(spot: SpotcheckClient, orders: list[dict[str, Any]], step: int) -> None:
    kind, decision = PASS[step]

    async def one(order: dict[str, Any]) -> None:
        await _awaiting(spot, f"sample-{order['sample_no']}", kind)
        await spot.decide(order["sample_no"], decision())

    await asyncio.gather(*(one(order) for order in orders))


async def test_two_workers_share_the_samples_and_one_stops_on_sigterm_losing_nothing(
    dev_env: WorkflowEnvironment, postgres_dsn: str, pool: asyncpg.Pool, task_queue: str, tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTCHECK_", "TEMPORAL_"))}
    env |= {"TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": dev_env.client.namespace, "DATABASE_URL": postgres_dsn,
            "SPOTCHECK_TASK_QUEUE": task_queue, "SPOTCHECK_REQUIRE_SIGNATURES": "0",
            "SPOTCHECK_CALENDAR_DIR": str(tmp_path / "calendar"), "SPOTCHECK_SHUTDOWN_GRACE": "20",
            "SPOTCHECK_METRICS_INTERVAL": "5"}
    first = WorkerProcess(["-m", "worker"], env, tmp_path / "first.log")
    second = WorkerProcess(["-m", "starter.cli", "worker"], env, tmp_path / "second.log")
    try:
        await asyncio.gather(first.ready(), second.ready())
        spot = SpotcheckClient(dev_env.client, task_queue)
        orders = [f.order("offline_production") for _ in range(SAMPLES)]
        await asyncio.gather(*(spot.start_sample(order) for order in orders))
        await _step(spot, orders, 0)
        await _step(spot, orders, 1)

        first.process.send_signal(signal.SIGTERM)  # mid-run: every sample has two decisions to go
        await _step(spot, orders, 2)
        assert await asyncio.to_thread(first.process.wait, 40) == 0, first.log.read_text()
        assert "spotcheck: stopped" in first.log.read_text()
        await _step(spot, orders, 3)
        ids = [f"sample-{order['sample_no']}" for order in orders]
        await asyncio.gather(*(spot.client.get_workflow_handle(i).result() for i in ids))

        # Shared: both processes completed workflow tasks of these samples.
        identities: Counter[str] = Counter()
        for workflow_id in ids:
            async for event in spot.client.get_workflow_handle(workflow_id).fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                    identities[event.workflow_task_completed_event_attributes.identity.split("@")[0]] += 1
        assert {str(first.process.pid), str(second.process.pid)} <= set(identities), identities

        # Nothing lost, nothing doubled: every sample closed with the same records as every other.
        assert await pool.fetchval("SELECT count(*) FROM samples WHERE workflow_id = ANY($1) AND stage = 'closed'",
                                   ids) == SAMPLES
        decisions = await pool.fetch("SELECT workflow_id, accepted, count(*) AS n FROM decisions "
                                     "WHERE workflow_id = ANY($1) GROUP BY 1, 2", ids)
        assert sorted((r["accepted"], r["n"]) for r in decisions) == [(True, len(PASS))] * SAMPLES
        for table in ("notices", "outbox"):
            per_sample = Counter({i: 0 for i in ids}) | Counter(dict(await pool.fetch(
                f"SELECT workflow_id, count(*) FROM {table} WHERE workflow_id = ANY($1) GROUP BY 1", ids)))
            assert len({per_sample[i] for i in ids}) == 1, f"{table}: {per_sample}"
        assert await pool.fetchval("SELECT count(*) FROM notices WHERE workflow_id = ANY($1)", ids) > 0

        # The survivor serves the SDK's metrics and Spotcheck's own on its Prometheus endpoint.
        status, metrics = _get(f"http://127.0.0.1:{second.metrics}/metrics")
        assert status == 200 and "spotcheck_samples" in metrics and "spotcheck_outbox_messages" in metrics
        assert "workflow_task_execution_latency" in metrics
    finally:
        first.stop()
        second.stop()
