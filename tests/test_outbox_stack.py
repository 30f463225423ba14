"""The dispatcher as operators run it: a worker process (worker.py) with SPOTCHECK_OUTBOX_CONFIG starts the
`OutboxDispatcherWorkflow` of its task queue, whose `dispatch_outbox` activity sends the queued messages to a
signed-webhook receiver. The worker is SIGKILLed while the receiver holds the first message's request, and
another worker takes over."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from domain.outbox import message_key
from tests.outbox_receiver import Receiver, config_file
from tests.test_integration_stack import Stack
from tests.test_outbox_delivery import channel_name, queue, rows
from workflows.outbox import dispatcher_id

pytestmark = pytest.mark.integration


async def test_a_worker_killed_mid_delivery_leaves_each_message_received_once(
    dev_env: WorkflowEnvironment, postgres_dsn: str, pool: asyncpg.Pool, task_queue: str, tmp_path: Path
) -> None:
    """Three messages, sent one at a time (batch_size 1). The receiver holds the first request; the worker is
    killed then, after the receiver has the message and before the dispatcher could mark it sent: the one
    window at-least-once delivery cannot close. The receiver then completes the held request (its effect
    happens, the answer goes to a dead socket). A second worker's dispatcher sends the other two, and, once
    the dead attempt's lease has run out, the first again with the same Idempotency-Key: the receiver counts
    four calls with three distinct keys and applies three effects, one per message."""
    release = asyncio.Event()
    held: list[str] = []

    async def hold_the_first(key: str, call: int) -> int:
        if not held:
            held.append(key)
        if key == held[0] and call == 1:
            await release.wait()
        return 200

    channel = channel_name()
    async with Receiver(hold_the_first) as receiver:
        config = config_file(tmp_path / "outbox.toml", channel, receiver.url, read_timeout=3, batch_size=1,
                             lease_seconds=8, run_seconds=8, heartbeat_seconds=2, poll_seconds=0.2,
                             retry_initial_seconds=0.2)
        ids = await queue(pool, channel, count=3)
        keys = [message_key(r["workflow_id"], r["step_id"]) for r in await rows(pool, ids)]
        stack = Stack(dev_env, postgres_dsn, task_queue, tmp_path)
        stack.env["SPOTCHECK_OUTBOX_CONFIG"] = str(config)
        dispatcher = dev_env.client.get_workflow_handle(dispatcher_id(task_queue))
        stack.start_worker()
        try:
            await asyncio.wait_for(receiver.arrived.wait(), 90)
            stack.kill_worker()
            assert held == [keys[0]] and receiver.calls == [keys[0]]
            release.set()  # the receiver finishes the request its sender will never hear back from
            await asyncio.sleep(0.5)
            first = (await rows(pool, ids[:1]))[0]
            assert first["sent_at"] is None and first["attempts"] == 1  # received, not marked

            stack.start_worker()  # starts no second dispatcher: the running one's next attempt comes here
            end = asyncio.get_running_loop().time() + 90
            while not all(r["sent_at"] for r in await rows(pool, ids)):
                assert asyncio.get_running_loop().time() < end, await rows(pool, ids)
                await asyncio.sleep(0.3)
            assert (await dispatcher.describe()).status == WorkflowExecutionStatus.RUNNING
        finally:
            if stack.worker is not None and stack.worker.poll() is None:
                stack.kill_worker()
            await dispatcher.terminate("test over")
    done = await rows(pool, ids)
    assert [r["attempts"] for r in done] == [2, 1, 1]  # the first: once killed, once delivered
    assert all(r["failed_at"] is None and r["last_error"] is None for r in done)
    assert Counter(receiver.calls) == Counter({keys[0]: 2, keys[1]: 1, keys[2]: 1})
    assert receiver.effects == Counter({k: 1 for k in keys})  # each message's effect exactly once
    assert not receiver.refused  # every call was signed
