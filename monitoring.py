"""What a worker shows its operators (docs/operations.md): metrics for Prometheus, health and readiness.

- `SPOTCHECK_METRICS_PORT`: the SDK's Prometheus endpoint (`http://<host>:<port>/metrics`, a Temporal
  `Runtime` with `PrometheusConfig`): the SDK's own metrics (`temporal_*`: task latencies, slots, polls,
  sticky cache) and Spotcheck's, counted from the records every `SPOTCHECK_METRICS_INTERVAL` seconds and set
  as gauges on the same meter, so one endpoint serves both:
  `spotcheck_samples{stage}` open samples by stage, `spotcheck_overdue_samples`, `spotcheck_decisions{accepted}`
  (since the records began: use `increase()`), `spotcheck_outbox_messages{state}` (pending, failed) and
  `spotcheck_outbox_oldest_pending_seconds`. Every worker reports the same figures: aggregate with `max`.
- `SPOTCHECK_HEALTH_PORT`: `GET /healthz` (200 while the process serves) and `GET /readyz` (200 while the
  worker polls and PostgreSQL answers; 503 from the moment SIGTERM starts the graceful shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

if TYPE_CHECKING:
    from temporalio.common import MetricMeter
    from temporalio.worker import Worker

    from settings import Settings

log = logging.getLogger(__name__)
DB_CHECK_SECONDS = 2.0


def metrics_runtime(port: int | None) -> Runtime | None:
    """A runtime exporting the SDK's metrics (and Spotcheck's) on 0.0.0.0:`port`; None: the default runtime,
    no endpoint. One per process: the client of the worker is connected with it."""
    if port is None:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"0.0.0.0:{port}")))


class Readiness:
    """Ready while the worker runs and is not stopping, and the database answers."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.worker: Worker | None = None
        self.stopping = False

    async def ready(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "stopping"
        if self.worker is None or not self.worker.is_running:
            return False, "worker not running"
        try:
            async with asyncio.timeout(DB_CHECK_SECONDS):
                await self.pool.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError, TimeoutError) as err:
            return False, f"database: {type(err).__name__}"
        return True, "ready"


def health_app(readiness: Readiness) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        ok, why = await readiness.ready()
        return web.Response(text=why + "\n", status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class RecordGauges:
    """Spotcheck's own figures as gauges on the SDK's meter (activities/stats.py counts them)."""

    def __init__(self, meter: MetricMeter) -> None:
        self.samples = meter.create_gauge("spotcheck_samples", "open samples by stage")
        self.overdue = meter.create_gauge("spotcheck_overdue_samples", "open samples past their deadline")
        self.decisions = meter.create_gauge("spotcheck_decisions", "decisions recorded, accepted or not")
        self.outbox = meter.create_gauge("spotcheck_outbox_messages", "outbox messages not sent, by state")
        self.oldest = meter.create_gauge_float("spotcheck_outbox_oldest_pending_seconds",
                                               "age of the oldest outbox message waiting to be sent", "s")

    async def update(self, pool: asyncpg.Pool) -> None:
        from activities.stats import record_counts

        counts = await record_counts(pool)
        for stage, n in counts.samples_by_stage.items():
            self.samples.set(n, {"stage": stage})
        self.overdue.set(counts.overdue)
        for accepted, n in counts.decisions.items():
            self.decisions.set(n, {"accepted": str(accepted).lower()})
        for state, n in counts.outbox.items():
            self.outbox.set(n, {"state": state})
        self.oldest.set(counts.oldest_pending_seconds)


async def _collect(gauges: RecordGauges, pool: asyncpg.Pool, interval: int) -> None:
    while True:
        try:
            await gauges.update(pool)
        except (OSError, asyncpg.PostgresError) as err:  # a database hiccup skips one round, never the worker
            log.warning("spotcheck metrics: counting the records failed: %s", type(err).__name__)
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def operate(settings: Settings, client: Client, pool: asyncpg.Pool, readiness: Readiness) -> AsyncIterator[None]:
    """The health server and the record gauges, as the settings ask, for as long as the worker runs."""
    tasks: list[asyncio.Task[None]] = []
    runner: web.AppRunner | None = None
    if settings.metrics_port is not None:
        meter = (client.service_client.config.runtime or Runtime.default()).metric_meter
        tasks.append(asyncio.create_task(_collect(RecordGauges(meter), pool, settings.metrics_interval)))
    if settings.health_port is not None:
        runner = web.AppRunner(health_app(readiness), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", settings.health_port).start()
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if runner is not None:
            await runner.cleanup()
