"""The whole stack for real: the dev server, a real PostgreSQL, the worker as its own process, and the
`spotcheck` CLI as people and scripts use it. The worker is killed and restarted mid-run; the records and
notices must still exist exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.keys import new_key_file
from codec import add_key
from tests import factories as f

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


class Stack:
    """A worker process and the CLI as a deployment runs them: decisions signed with the deployment's key
    (the worker requires it), payloads encrypted, the clock compressed only because it is a test deployment."""

    def __init__(self, env: WorkflowEnvironment, dsn: str, task_queue: str, logs: Path) -> None:
        new_key_file(logs / "signing-keys.json")
        add_key(logs / "codec-keys.json")
        self.env = {
            **os.environ,
            "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "DATABASE_URL": dsn,
            "SPOTCHECK_TASK_QUEUE": task_queue,
            "SPOTCHECK_SIGNING_KEYS": str(logs / "signing-keys.json"),
            "SPOTCHECK_REQUIRE_SIGNATURES": "1",
            "SPOTCHECK_CODEC_KEYS": str(logs / "codec-keys.json"),
            "SPOTCHECK_DEMO_MODE": "1",
        }
        self.logs = logs
        self.worker: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start_worker(self) -> None:
        self.starts += 1
        log = open(self.logs / f"worker-{self.starts}.log", "wb")  # noqa: SIM115 - closed with the process
        self.worker = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=self.env, stdout=log, stderr=log)

    def kill_worker(self) -> None:
        assert self.worker is not None
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait(timeout=10)

    async def cli(self, *args: str, stdin: str | None = None, unsigned: bool = False) -> tuple[int, str, str]:
        env = {k: v for k, v in self.env.items() if not (unsigned and k == "SPOTCHECK_SIGNING_KEYS")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "starter.cli", *args, cwd=ROOT, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    async def show(self, sample_no: str) -> dict[str, Any]:
        code, out, err = await self.cli("sample", "show", sample_no, "--json")
        assert code == 0, err
        return dict(json.loads(out))

    async def wait_awaiting(self, sample_no: str, kind: str, within: float = 60) -> dict[str, Any]:
        return await self.wait(sample_no, lambda s: any(a["kind"] == kind for a in s["awaiting"]), within)

    async def wait(self, sample_no: str, check: Any, within: float = 60) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while True:
            status = await self.show(sample_no)
            if check(status):
                return status
            if loop.time() > end:
                raise AssertionError(f"timed out at stage {status['stage']}: {status['awaiting']}")
            await asyncio.sleep(0.5)

    async def decide(self, sample_no: str, kind: str, outcome: str, role: str, *extra: str) -> tuple[int, str, str]:
        return await self.cli("decide", sample_no, kind, outcome, "--actor", "it-" + role, "--role", role, *extra)


async def test_a_sample_through_the_cli_survives_a_worker_crash(
    dev_env: WorkflowEnvironment, postgres_dsn: str, pool: asyncpg.Pool, task_queue: str, tmp_path: Path
) -> None:
    stack = Stack(dev_env, postgres_dsn, task_queue, tmp_path)
    stack.start_worker()
    try:
        order = f.order("online")
        no = order["sample_no"]
        order_file = tmp_path / "order.json"
        order_file.write_text(json.dumps(order, ensure_ascii=False), encoding="utf-8")

        # A malformed order is refused naming the field; a good one starts once, a second start is refused.
        bad = {**order, "sample_no": no + "-bad", "region": "33"}
        code, _, err = await stack.cli("sample", "start", "-", stdin=json.dumps(bad))
        assert code != 0 and "region" in err
        code, out, err = await stack.cli("sample", "start", str(order_file), "--time-scale", "432000")
        assert code == 0, err
        assert f"sample-{no}" in out
        code, _, err = await stack.cli("sample", "start", str(order_file))
        assert code != 0 and "already started" in err

        await stack.wait_awaiting(no, "sampling_record")
        code, _, err = await stack.decide(no, "sampling_record", "sealed", "sampler", "--data", '{"record_no": "CY-9"}')
        assert code == 0, err
        await stack.wait_awaiting(no, "sample_receipt")
        # A rejected decision exits non-zero with the reason; so does an unsigned one.
        code, _, err = await stack.decide(no, "lab_report", "pass", "lab", "--data", '{"report_no": "R"}')
        assert code == 1 and "not awaited" in err
        unsigned = await stack.cli("decide", no, "sample_receipt", "accepted", "--actor", "x", "--role", "lab",
                                   unsigned=True)
        assert unsigned[0] == 1 and "signature: missing" in unsigned[2], unsigned
        code, _, err = await stack.decide(no, "sample_receipt", "accepted", "lab")
        assert code == 0, err
        await stack.wait_awaiting(no, "lab_report")

        # Visible to monitors by stage.
        await _wait_listed(stack, no, "testing")

        # The report arrives and the worker dies with it in flight; a new worker takes over.
        report = json.dumps({"report_no": "ZJPQ-IT-1", "failed_items": f.FAILED_ITEMS}, ensure_ascii=False)
        code, _, err = await stack.decide(no, "lab_report", "fail", "lab", "--data", report,
                                          "--request-id", "it-report-1", "--signal")
        assert code == 0, err
        await asyncio.sleep(0.3)
        stack.kill_worker()
        stack.start_worker()
        await stack.wait_awaiting(no, "result_delivery")
        # The same report again (a client retry): answered with the first receipt, nothing doubled.
        code, out, err = await stack.decide(no, "lab_report", "fail", "lab", "--data", report,
                                            "--request-id", "it-report-1", "--json")
        assert code == 0 and json.loads(out)["accepted"] is True, err

        code, _, err = await stack.decide(no, "result_delivery", "delivered", "case_officer")
        assert code == 0, err
        # The objection window is 15 days, three seconds on this clock: under load a status call can
        # outlast it, so the crash lands in the window or, at worst, just after it.
        await stack.wait(no, lambda s: s["stage"] == "post_handling"
                         or any(a["kind"] == "objection" for a in s["awaiting"]))
        stack.kill_worker()  # crash while the objection window runs
        stack.start_worker()
        status = await stack.wait(no, lambda s: s["stage"] == "post_handling", within=90)
        assert status["verdict"] == "fail"
        await _wait_listed(stack, no, "post_handling")
    finally:
        if stack.worker and stack.worker.poll() is None:
            stack.worker.terminate()
            stack.worker.wait(timeout=10)

    wf = f"sample-{no}"
    samples = await pool.fetch("SELECT stage, verdict FROM samples WHERE sample_no = $1", no)
    assert [(r["stage"], r["verdict"]) for r in samples] == [("post_handling", "fail")]
    notices = await pool.fetch("SELECT template, step_id, sha256 FROM notices WHERE workflow_id = $1", wf)
    assert [r["template"] for r in notices].count("inspection_result") == 1
    # On the compressed clock the worker's outage can push a wait past its deadline: its escalation
    # notice is then issued once per wait, never again on replay.
    escalated = [r["step_id"] for r in notices if r["template"] == "deadline_escalation"]
    assert len(escalated) == len({s.rsplit("-", 1)[0] for s in escalated})
    accepted = await pool.fetch(
        "SELECT kind, count(*) AS n FROM decisions WHERE workflow_id = $1 AND accepted GROUP BY kind ORDER BY kind", wf
    )
    # producer_confirmation: the labelled producer stayed silent, so the rule's default was recorded once.
    assert {r["kind"]: r["n"] for r in accepted} == {
        "lab_report": 1, "result_delivery": 1, "sample_receipt": 1, "sampling_record": 1, "producer_confirmation": 1,
    }
    rejected = await pool.fetch("SELECT reason FROM decisions WHERE workflow_id = $1 AND NOT accepted", wf)
    assert sorted(r["reason"].split(":")[0] for r in rejected) == ["not awaited", "signature"]


async def _wait_listed(stack: Stack, sample_no: str, stage: str) -> None:
    """Visibility is eventually consistent: poll `spotcheck list --stage` until the sample shows."""
    for _ in range(60):
        code, out, err = await stack.cli("list", "--stage", stage, "--json")
        assert code == 0, err
        if any(r["sample_no"] == sample_no for r in json.loads(out)):
            code, out, _ = await stack.cli("list", "--stage", stage)
            assert sample_no in out
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{sample_no} never listed at stage {stage}")
