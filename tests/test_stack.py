"""`spotcheck up` end to end, as a user runs it: ready line, search attributes registered, Ctrl-C leaves
nothing running, and the state dir carries workflow executions across a restart (even on a busy port)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

import psutil
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus

from domain import visibility
from starter.devserver import free_port

REPO = Path(__file__).resolve().parent.parent
READY = "spotcheck: ready"

pytestmark = pytest.mark.integration


class Up:
    """One `python -m starter.cli up --no-worker` subprocess and what it printed."""

    def __init__(self, state: Path, port: int, ui_port: int) -> None:
        self.args = [
            sys.executable, "-m", "starter.cli", "up", "--state-dir", str(state),
            "--port", str(port), "--ui-port", str(ui_port), "--no-worker",
        ]
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def value(self, label: str) -> str:
        """The value of a `spotcheck: <label>  <value>` line."""
        for line in self.lines:
            if line.startswith(f"spotcheck: {label} "):
                return line.removeprefix(f"spotcheck: {label} ").strip()
        raise AssertionError(f"no {label!r} line in:\n{self.output}")

    async def start(self, within: float = 90) -> None:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"PYTHONUNBUFFERED": "1"}
        self.proc = await asyncio.create_subprocess_exec(
            *self.args, cwd=REPO, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await asyncio.wait_for(self._until_ready(), within)
        except TimeoutError:
            await self.stop()
            raise AssertionError(f"no {READY!r} within {within} s:\n{self.output}") from None

    async def _until_ready(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                await self.proc.wait()
                raise AssertionError(f"`up` exited ({self.proc.returncode}) before ready:\n{self.output}")
            self.lines.append(raw.decode(errors="replace").rstrip())
            if self.lines[-1] == READY:
                return

    async def stop(self) -> int:
        """SIGINT, as Ctrl-C does; the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = await asyncio.wait_for(self.proc.communicate(), 60)
        except TimeoutError:
            self.proc.kill()
            out, _ = await self.proc.communicate()
        self.lines += (out or b"").decode(errors="replace").splitlines()
        assert self.proc.returncode is not None
        return self.proc.returncode


def processes_using(state: Path) -> list[str]:
    """Live processes whose command line names the state dir: the dev server, the PostgreSQL postmaster."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(state) in cmdline:
            found.append(f"{proc.info['pid']}: {cmdline}")
    return found


async def test_up_registers_search_attributes_stops_cleanly_and_keeps_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    workflow_id = f"stack-test-{uuid.uuid4()}"

    first = Up(state, free_port(), free_port())
    try:
        await first.start()
        client = await Client.connect(first.value("Temporal gRPC"))
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        for key in visibility.ALL:
            assert listed.custom_attributes.get(key.name) == IndexedValueType.ValueType(key.indexed_value_type), (
                key.name, dict(listed.custom_attributes),
            )
        # No worker polls "nobody": the execution just sits there, in the SQLite file.
        await client.start_workflow("Nothing", id=workflow_id, task_queue="nobody")
    finally:
        code = await first.stop()
    assert code == 0, first.output
    assert first.lines[-1] == "spotcheck: stopped", first.output
    assert processes_using(state) == []
    assert (state / "temporal.sqlite").exists() and (state / "pgdata" / "PG_VERSION").exists()

    # Second run on the same state dir, with its gRPC port taken: `up` picks another one and says so.
    busy_port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", busy_port))
        squatter.listen()
        second = Up(state, busy_port, free_port())
        try:
            await second.start()
            assert f"port {busy_port} is busy" in second.output
            address = second.value("Temporal gRPC")
            assert not address.endswith(f":{busy_port}")
            client = await Client.connect(address)
            described = await client.get_workflow_handle(workflow_id).describe()
            assert described.workflow_type == "Nothing"
            assert described.status == WorkflowExecutionStatus.RUNNING
        finally:
            code = await second.stop()
    assert code == 0, second.output
    assert processes_using(state) == []
