"""`spotcheck up` end to end, as a user runs it: ready line, search attributes registered, Ctrl-C leaves
nothing running, and the state dir carries workflow executions across a restart (even on a busy port) and
keeps its signing keys. And the key files themselves, and `spotcheck worker` refusing to run without keys."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

import httpx
import psutil
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus

from activities.keys import KeyFileError, load_keyring, new_key_file, signing_setup
from domain import visibility
from starter.cli import main
from starter.devserver import free_port
from starter.gateway.auth import signed_headers
from starter.gateway.settings import load_callers

REPO = Path(__file__).resolve().parent.parent
READY = "spotcheck: ready"

pytestmark = pytest.mark.integration


class Up:
    """One `python -m starter.cli up --no-worker` subprocess and what it printed."""

    def __init__(self, state: Path, port: int, ui_port: int) -> None:
        self.args = [
            sys.executable, "-m", "starter.cli", "up", "--state-dir", str(state),
            "--port", str(port), "--ui-port", str(ui_port), "--gateway-port", str(free_port()), "--no-worker",
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
        ours = ("DATABASE_URL", "SPOTCHECK_SIGNING_KEYS", "SPOTCHECK_REQUIRE_SIGNATURES", "SPOTCHECK_DEMO_MODE")
        env = {k: v for k, v in os.environ.items() if k not in ours} | {"PYTHONUNBUFFERED": "1"}
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
        # The gateway serves beside it, its callers' keys made in the state dir: a signed call is answered.
        url = first.value("gateway").split()[0]
        lims = load_callers(state / "gateway-keys.json")["lims"]
        async with httpx.AsyncClient(base_url=url) as http:
            signed = signed_headers("lims", lims.secret, "GET", "/samples/NO-SUCH-1")
            assert (await http.get("/samples/NO-SUCH-1", headers=signed)).status_code == 404
            assert (await http.get("/samples/NO-SUCH-1")).status_code == 401
    finally:
        code = await first.stop()
    assert code == 0, first.output
    assert first.lines[-1] == "spotcheck: stopped", first.output
    assert processes_using(state) == []
    assert (state / "temporal.sqlite").exists() and (state / "pgdata" / "PG_VERSION").exists()
    # Its signing keys: made once, readable by the owner only, named for the CLI; signatures required.
    keys = state / "signing-keys.json"
    assert first.value("signing keys").startswith(f"{keys} ") and f"new signing keys in {keys}" in first.output
    assert first.value("signatures").startswith("required; decision keys dev-1")
    assert keys.stat().st_mode & 0o777 == 0o600 and set(load_keyring(keys)) == {"internal", "dev-1"}
    key_text = keys.read_text()

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
    assert "new signing keys" not in second.output and keys.read_text() == key_text


# --- key files ------------------------------------------------------------------------------------------


def _write(path: Path, keys: dict[str, object]) -> Path:
    path.write_text(json.dumps(keys), encoding="utf-8")
    return path


def _b64(n: int) -> str:
    return base64.b64encode(b"s" * n).decode()


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "is not JSON"),
    ("{}", "holds no keys"),
    ("[1]", "holds no keys"),
    (json.dumps({"desk 1": _b64(32)}), "key id that is not"),
    (json.dumps({"desk-1": _b64(8)}), "key desk-1 in"),
    (json.dumps({"desk-1": "%%%"}), "key desk-1 in"),
    (json.dumps({"desk-1": 42}), "key desk-1 in"),
])
def test_an_unusable_key_file_is_named_and_no_secret_shown(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(KeyFileError, match=message) as caught:
        load_keyring(path)
    assert _b64(8) not in str(caught.value) and _b64(32) not in str(caught.value)


def test_a_new_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    new_key_file(path)
    before = path.read_text()
    with pytest.raises(FileExistsError):
        new_key_file(path)
    assert path.read_text() == before and all(len(v) == 32 for v in load_keyring(path).values())


def test_the_worker_setup_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPOTCHECK_SIGNING_KEYS", raising=False)
    monkeypatch.delenv("SPOTCHECK_REQUIRE_SIGNATURES", raising=False)
    with pytest.raises(KeyFileError, match="SPOTCHECK_SIGNING_KEYS is not set"):
        signing_setup()
    monkeypatch.setenv("SPOTCHECK_REQUIRE_SIGNATURES", "0")
    off = signing_setup()
    assert not off.require and not off.keyring
    no_internal = _write(tmp_path / "desk.json", {"desk-1": _b64(32)})
    with pytest.raises(KeyFileError, match="no internal key"):
        signing_setup(no_internal)
    both = _write(tmp_path / "both.json", {"internal": _b64(32), "desk-1": _b64(32)})
    monkeypatch.setenv("SPOTCHECK_SIGNING_KEYS", str(both))
    assert not signing_setup().require  # still SPOTCHECK_REQUIRE_SIGNATURES=0
    monkeypatch.setenv("SPOTCHECK_REQUIRE_SIGNATURES", "yes")
    on = signing_setup()
    assert on.require and set(on.keyring) == {"internal", "desk-1"} and on.path == both


def test_spotcheck_worker_will_not_run_without_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@localhost/none")
    monkeypatch.delenv("SPOTCHECK_SIGNING_KEYS", raising=False)
    monkeypatch.delenv("SPOTCHECK_REQUIRE_SIGNATURES", raising=False)
    assert main(["worker"]) == 2
    assert "SPOTCHECK_SIGNING_KEYS is not set" in capsys.readouterr().err
