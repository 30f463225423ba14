"""The servers and worker processes the bench measures: the Temporal dev server in memory with the measuring
settings (starter/devserver.py MEASURING_CONFIG, not the test suite's), an embedded PostgreSQL, each in a
temporary folder on free ports, and workers in processes of their own (bench/workers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from temporalio.client import Client

from domain import visibility
from starter.devserver import MEASURING_CONFIG, DevServer, free_port
from starter.postgres import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent


def _cpu_of(proc: psutil.Process, with_children: bool) -> float:
    """User + system seconds of `proc`, with its reaped children's, and with its live children's."""
    try:
        t = proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        if with_children:
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    c = child.cpu_times()
                    total += c.user + c.system
        return total
    except psutil.Error:
        return 0.0


@dataclass
class WorkerProcess:
    kind: str
    task_queue: str
    proc: subprocess.Popen[bytes]
    max_cached_workflows: int

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def cpu(self) -> float:
        return _cpu_of(self.ps, with_children=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Stack:
    folder: Path
    server: DevServer
    pg: EmbeddedPostgres
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def dsn(self) -> str:
        return self.pg.dsn

    def server_cmdline(self) -> list[str]:
        return self.server.command()

    def postgres_pid(self) -> int | None:
        try:
            return int((self.folder / "pgdata" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def cpu(self, workers: Iterable[WorkerProcess]) -> dict[str, float]:
        """CPU seconds so far of each part: the given workers, the server, PostgreSQL, this (driver) process."""
        parts = {w.kind: w.cpu() for w in workers}
        assert self.server.pid is not None
        parts["server"] = _cpu_of(psutil.Process(self.server.pid), with_children=True)
        pg = self.postgres_pid()
        parts["postgres"] = _cpu_of(psutil.Process(pg), with_children=True) if pg else 0.0
        me = psutil.Process().cpu_times()
        parts["driver"] = me.user + me.system
        return parts

    async def start_worker(self, kind: str, *, max_cached: int | None = None, task_queue: str | None = None
                           ) -> WorkerProcess:
        """A worker process of `kind` (spotcheck | bare) on a fresh task queue, once it polls."""
        queue = task_queue or f"bench-{kind}-{uuid.uuid4().hex[:8]}"
        cmd = [sys.executable, "-m", "bench.workers", kind, "--address", self.address, "--task-queue", queue]
        if kind == "spotcheck":
            cmd += ["--dsn", self.dsn]
        if max_cached is not None:
            cmd += ["--max-cached", str(max_cached)]
        # The plain configuration: no payload encryption, no tracing, no signatures required.
        env = {k: v for k, v in os.environ.items()
               if k not in ("SPOTCHECK_CODEC_KEYS", "SPOTCHECK_SIGNING_KEYS", "SPOTCHECK_TRACING",
                            "SPOTCHECK_REQUIRE_SIGNATURES")}
        log = self.folder / f"worker-{queue}.log"
        proc = _spawn(cmd, env, log)
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 120)
        if not line:
            raise RuntimeError(f"the {kind} worker did not start:\n{log.read_text()[-3000:]}")
        ready: dict[str, Any] = json.loads(line)
        worker = WorkerProcess(kind, queue, proc, int(ready["max_cached_workflows"]))
        self.workers.append(worker)
        return worker

    def stop_worker(self, worker: WorkerProcess) -> None:
        worker.stop()
        with contextlib.suppress(ValueError):
            self.workers.remove(worker)


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The worker's stdout comes to us (its ready line), its stderr goes to `log`."""
    with log.open("ab") as err:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)


async def _search_attributes_usable(address: str, within: float = 60.0) -> None:
    """Until a visibility query on a custom attribute is accepted: without the test suite's forced refresh
    the server reads the attributes registered at its start on its own schedule."""
    client = await Client.connect(address, namespace="default")
    key = visibility.ALL[0]
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            await client.count_workflows(f"{key.name} IS NOT NULL")
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def stack() -> AsyncIterator[Stack]:
    """The servers, on free ports in a temporary folder removed afterwards; workers started from it are
    stopped on the way out."""
    from activities.db import apply_migrations

    folder = Path(tempfile.mkdtemp(prefix="spotcheck-bench-"))
    pg = await asyncio.to_thread(EmbeddedPostgres, folder / "pgdata", keep=False)
    ui_port = free_port()
    server = DevServer(folder, port=free_port(), ui_port=ui_port, search_attributes=visibility.ALL,
                       in_memory=True, dynamic_config=MEASURING_CONFIG)
    s = Stack(folder, server, pg)
    try:
        server.start()
        await server.wait_ready(within=90)
        await _search_attributes_usable(server.address)
        await apply_migrations(pg.dsn)
        yield s
    finally:
        for w in list(s.workers):
            s.stop_worker(w)
        server.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)
