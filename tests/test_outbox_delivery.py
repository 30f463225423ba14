"""The outbox dispatcher against real receivers and the real PostgreSQL: a signed webhook (tests/outbox_receiver.py)
that fails, times out, answers 500 then 200, and an SMTP server (aiosmtpd). Each test queues its messages
through the workflows' own adapter (`OutboxAdapter`) on a channel of its own, so the dispatchers of other
tests never see them, and drives a `Dispatcher` in this process (the workflow that runs it in a worker:
tests/test_outbox_stack.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from activities.adapters import OutboxAdapter
from activities.outbox import Dispatcher, read_config
from domain.outbox import OutboxConfig, SmtpChannel, WebhookChannel, message_key
from domain.records import Handover
from starter.devserver import free_port
from tests.outbox_receiver import SECRET, Receiver, Script, config_file

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
# Quick back-off and short timeouts: a whole fault story takes a second or two.
FAST: dict[str, Any] = {"retry_initial_seconds": 0.1, "retry_max_seconds": 0.4, "lease_seconds": 5,
                        "run_seconds": 5, "max_attempts": 3, "poll_seconds": 0.1}


def webhook(url: str) -> WebhookChannel:
    return WebhookChannel(kind="webhook", url=url, secret=SECRET, connect_timeout=0.5, read_timeout=1.0)


def channel_name() -> str:
    return f"hook-{uuid.uuid4().hex[:10]}"


async def queue(pool: asyncpg.Pool, channel: str, count: int = 1, recipient: str = "lab") -> list[int]:
    """Queue `count` messages on `channel` as a workflow does; their outbox ids."""
    workflow_id = f"sample-T{uuid.uuid4().hex[:8]}"
    ids = []
    for i in range(count):
        receipt = await OutboxAdapter(pool).send(Handover(
            workflow_id=workflow_id, step_id=f"remind-{i}", system=channel, action="notify", recipient=recipient,
            subject=f"催告 {i}", payload={"i": i}, created_at=datetime.now(UTC)))
        ids.append(int(receipt.reference.removeprefix("outbox:")))
    return ids


async def rows(pool: asyncpg.Pool, ids: list[int]) -> list[dict[str, Any]]:
    found = {r["id"]: dict(r) for r in await pool.fetch("SELECT * FROM outbox WHERE id = ANY($1)", ids)}
    return [found[i] for i in ids]


async def drain(dispatcher: Dispatcher, pool: asyncpg.Pool, ids: list[int], within: float = 15) -> list[dict[str, Any]]:
    """Dispatch until every one of `ids` is sent or failed; their rows."""
    end = asyncio.get_running_loop().time() + within
    while True:
        current = await rows(pool, ids)
        if all(r["sent_at"] or r["failed_at"] for r in current):
            return current
        assert asyncio.get_running_loop().time() < end, f"not done: {current}"
        if not await dispatcher.dispatch_once():
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def webhook_story(pool: asyncpg.Pool, script: Script, **config: Any) -> AsyncIterator[Story]:
    """A receiver answering by `script`, a channel of its own and a dispatcher for it."""
    channel = channel_name()
    async with Receiver(script) as receiver, Dispatcher.open(
            pool, OutboxConfig(channels={channel: webhook(receiver.url)}, **{**FAST, **config})) as dispatcher:
        yield Story(pool, channel, receiver, dispatcher)


@dataclass
class Story:
    pool: asyncpg.Pool
    channel: str
    receiver: Receiver
    dispatcher: Dispatcher

    async def deliver(self, count: int = 1) -> list[dict[str, Any]]:
        """Queue `count` messages and dispatch until each is sent or failed; their rows."""
        return await drain(self.dispatcher, self.pool, await queue(self.pool, self.channel, count))


async def test_a_4xx_fails_the_message_at_once_with_status_and_reason(pool: asyncpg.Pool) -> None:
    async def unprocessable(key: str, call: int) -> int:
        return 422

    async with webhook_story(pool, unprocessable) as story:
        [row] = await story.deliver()
        for _ in range(3):  # nothing more is tried
            await story.dispatcher.dispatch_once()
            await asyncio.sleep(0.15)
    receiver = story.receiver
    assert row["failed_at"] is not None and row["sent_at"] is None
    assert row["attempts"] == 1
    assert row["last_error"].startswith("attempt 1: HTTP 422 Unprocessable Entity")
    assert receiver.calls == [message_key(row["workflow_id"], row["step_id"])]
    assert not receiver.effects and not receiver.refused


async def test_a_timeout_is_tried_again_and_the_effect_happens_once(pool: asyncpg.Pool) -> None:
    async def slow_first(key: str, call: int) -> int:
        if call == 1:
            await asyncio.sleep(2.5)  # past the read timeout (1 s): the dispatcher gives up on this call
        return 200

    async with webhook_story(pool, slow_first) as story:
        [row] = await story.deliver()
        await asyncio.sleep(2)  # the first call finishes at the receiver after the dispatcher hung up
    receiver = story.receiver
    key = message_key(row["workflow_id"], row["step_id"])
    assert row["sent_at"] is not None and row["failed_at"] is None
    assert row["attempts"] == 2 and row["last_error"] is None
    # Two calls with one key (the first timed out), one effect: the receiver deduplicated.
    assert receiver.calls == [key, key]
    assert receiver.effects == Counter({key: 1})


async def test_500_then_200_is_delivered_once_after_a_retry(pool: asyncpg.Pool) -> None:
    async def fails_first(key: str, call: int) -> int:
        return 500 if call == 1 else 200

    async with webhook_story(pool, fails_first) as story:
        done = await story.deliver(3)
    receiver, channel = story.receiver, story.channel
    keys = [message_key(r["workflow_id"], r["step_id"]) for r in done]
    assert all(r["sent_at"] is not None and r["attempts"] == 2 for r in done)
    assert all(r["delivered_reference"] == f"R-{k[-8:]}" for r, k in zip(done, keys, strict=True))
    assert Counter(receiver.calls) == Counter({k: 2 for k in keys})
    assert receiver.effects == Counter({k: 1 for k in keys})
    body = receiver.bodies[keys[0]]
    assert body["message_id"] == keys[0] and body["channel"] == channel and body["subject"] == "催告 0"


async def test_two_dispatchers_never_send_the_same_message(pool: asyncpg.Pool) -> None:
    async def slowish(key: str, call: int) -> int:
        await asyncio.sleep(0.05)
        return 200

    channel = channel_name()
    async with Receiver(slowish) as receiver:
        # Generous time bounds: on a loaded machine a half-second connect can time out, and the attempt it
        # costs is not what this test is about (a message sent by both dispatchers).
        patient = WebhookChannel(kind="webhook", url=receiver.url, secret=SECRET, connect_timeout=5, read_timeout=5)
        config = OutboxConfig(channels={channel: patient},
                              **{**FAST, "batch_size": 4, "lease_seconds": 30, "run_seconds": 30})
        ids = await queue(pool, channel, count=30)
        async with Dispatcher.open(pool, config) as one, Dispatcher.open(pool, config) as two:
            done, _ = await asyncio.gather(drain(one, pool, ids), drain(two, pool, ids))
    assert all(r["sent_at"] is not None and r["attempts"] == 1 for r in done)
    assert len(receiver.calls) == 30 and set(Counter(receiver.calls).values()) == {1}


async def test_a_message_that_keeps_failing_is_failed_shown_and_put_back(
    pool: asyncpg.Pool, postgres_dsn: str, tmp_path: Path
) -> None:
    """503 every time: failed after max_attempts; `spotcheck outbox --failed` shows it with its last error,
    a channel with no adapter shows as such, the secret never; `spotcheck outbox retry` puts it back."""
    healthy = False

    async def unavailable(key: str, call: int) -> int:
        return 200 if healthy else 503

    channel, nowhere = channel_name(), channel_name()
    async with Receiver(unavailable) as receiver:
        settings = config_file(tmp_path / "outbox.toml", channel, receiver.url, **FAST)
        async with Dispatcher.open(pool, read_config(settings)) as dispatcher:
            ids = await queue(pool, channel)
            [waiting] = await queue(pool, nowhere)
            [row] = await drain(dispatcher, pool, ids)
            assert row["failed_at"] is not None and row["attempts"] == 3
            assert row["last_error"].startswith("attempt 3: HTTP 503 Service Unavailable")
            assert len(receiver.calls) == 3 and not receiver.effects

            env = {**os.environ, "DATABASE_URL": postgres_dsn, "SPOTCHECK_OUTBOX_CONFIG": str(settings)}
            code, out, _ = await cli(env, "outbox", "--failed", "--json", "--limit", "10000")
            assert code == 0
            shown = {m["id"]: m for m in json.loads(out)}
            assert shown[row["id"]]["state"] == "failed" and shown[row["id"]]["attempts"] == 3
            assert waiting not in shown
            code, out, err = await cli(env, "outbox", "--pending", "--limit", "10000")
            assert code == 0 and SECRET not in out + err
            line = next(x for x in out.splitlines() if x.split()[0] == str(waiting))
            assert "no adapter" in line and nowhere in line
            code, out, err = await cli(env, "outbox", "retry", str(waiting))
            assert code == 1 and "no failed message" in err

            healthy = True
            code, out, err = await cli(env, "outbox", "retry", str(row["id"]))
            assert code == 0, err
            [again] = await drain(dispatcher, pool, ids)
    assert again["sent_at"] is not None and again["attempts"] == 1 and again["last_error"] is None
    assert len(receiver.calls) == 4 and sum(receiver.effects.values()) == 1
    [still] = await rows(pool, [waiting])
    assert still["attempts"] == 0 and still["sent_at"] is None and still["failed_at"] is None


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "starter.cli", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


class Inbox:
    """aiosmtpd's handler: every message it accepted."""

    def __init__(self) -> None:
        self.mails: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(envelope)
        return "250 OK queued"


async def test_an_email_goes_to_a_real_smtp_server_once(pool: asyncpg.Pool) -> None:
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    await asyncio.to_thread(smtp.start)
    try:
        channel = f"mail-{uuid.uuid4().hex[:8]}"
        mail = SmtpChannel(kind="smtp", host="127.0.0.1", port=smtp.port, security="none", timeout=1,
                           sender="spotcheck@example.org", recipients={"lab": ["lab@example.org", "qa@example.org"]})
        async with Dispatcher.open(pool, OutboxConfig(channels={channel: mail}, **{**FAST, "lease_seconds": 5})) as dispatcher:
            ids = await queue(pool, channel)
            [unknown] = await queue(pool, channel, recipient="enterprise")
            sent, failed = await drain(dispatcher, pool, [*ids, unknown])
    finally:
        await asyncio.to_thread(smtp.stop)
    assert sent["sent_at"] is not None and sent["delivered_reference"].startswith("SMTP ")
    assert failed["failed_at"] is not None and failed["attempts"] == 1
    assert failed["last_error"] == "attempt 1: recipient: no e-mail address configured for 'enterprise'"
    [envelope] = inbox.mails
    assert envelope.mail_from == "spotcheck@example.org"
    assert sorted(envelope.rcpt_tos) == ["lab@example.org", "qa@example.org"]
    text = envelope.content.decode()
    assert f"Message-ID: <{message_key(sent['workflow_id'], sent['step_id'])}@spotcheck>" in text
