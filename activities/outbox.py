"""The outbox dispatcher: sends the messages the workflows queued (`outbox`, activities/adapters.py) through
the adapter configured for their channel (SPOTCHECK_OUTBOX_CONFIG, a TOML file: a signed JSON webhook or
SMTP e-mail), each marked in its own row.

Delivery is at least once, with a stable key: a dispatcher claims due rows for a lease (`FOR UPDATE SKIP
LOCKED`, so two dispatchers never hold the same row), sends, then marks the row sent. A dispatcher that dies
between the receiver's answer and that mark leaves the row to be claimed again when its lease runs out, and
the message goes again with the same `Idempotency-Key` (e-mail: the same Message-ID): receivers deduplicate
by it (docs/design.md §10). Failures are recorded on the row: a retryable one (timeout, connection, 408, 429,
5xx, SMTP 4xx) is tried again with a doubling back-off until `max_attempts` or `max_age_hours`, a final one
(any other 4xx, SMTP 5xx, a recipient without an address) fails the message at once. `spotcheck outbox`
shows them all, `spotcheck outbox retry ID` puts a failed one back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib
import asyncpg
import httpx
from temporalio import activity

from activities.db import dumps
from activities.toml_files import read_toml
from domain.bounds import one_line, quoted
from domain.outbox import (
    ATTEMPT_HEADER,
    CONFIG_ENV,
    IDEMPOTENCY_HEADER,
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    DispatchPlan,
    DispatchReport,
    OutboxConfig,
    OutboxConfigError,
    SmtpChannel,
    WebhookChannel,
    message_key,
    parse_outbox_config,
    retry_delay,
    webhook_signature,
)

MAX_FILE_BYTES = 256 * 1024
MAX_ERROR = 300  # last_error, whole
MAX_REFERENCE = 200

# --- the configuration file -------------------------------------------------------------------------------


def read_config(path: Path) -> OutboxConfig:
    where = str(path)
    data = read_toml(path, where, MAX_FILE_BYTES, OutboxConfigError)
    return parse_outbox_config(data, where)


# The file of one path, kept until it changes (the dispatcher looks at each run; the CLI once).
_CACHE: dict[Path, tuple[tuple[int, int], OutboxConfig]] = {}


def config_from_env(environ: Mapping[str, str] = os.environ) -> OutboxConfig | None:
    """The configuration SPOTCHECK_OUTBOX_CONFIG names, or None when it is not set (then nothing is sent)."""
    named = environ.get(CONFIG_ENV, "").strip()
    if not named:
        return None
    path = Path(named)
    try:
        stat = path.stat()
    except OSError as err:
        raise OutboxConfigError(f"{CONFIG_ENV}: cannot read {path}: {err.strerror or type(err).__name__}") from None
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _CACHE.get(path)
    if cached is None or cached[0] != stamp:
        _CACHE[path] = cached = (stamp, read_config(path))
    return cached[1]


# --- adapters -----------------------------------------------------------------------------------------------


class DeliveryError(Exception):
    """A delivery that did not happen: `reason` is stored and shown (never a secret), `retryable` says whether
    another attempt may succeed."""

    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = one_line(reason, MAX_ERROR)
        self.retryable = retryable


@dataclass(frozen=True)
class Envelope:
    """One outbox row as it goes out."""

    id: int
    key: str
    attempt: int
    workflow_id: str
    step_id: str
    channel: str
    recipient: str
    subject: str
    payload: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, row: Mapping[str, Any] | asyncpg.Record) -> Envelope:
        return cls(id=row["id"], key=message_key(row["workflow_id"], row["step_id"]), attempt=row["attempts"],
                   workflow_id=row["workflow_id"], step_id=row["step_id"], channel=row["channel"],
                   recipient=row["recipient"], subject=row["subject"], payload=row["payload"] or {},
                   created_at=row["created_at"])

    def body(self) -> dict[str, Any]:
        """The message as a receiver reads it; the same bytes on every attempt (the attempt is a header)."""
        return {"message_id": self.key, "workflow_id": self.workflow_id, "step_id": self.step_id,
                "channel": self.channel, "recipient": self.recipient, "subject": self.subject,
                "payload": self.payload, "created_at": self.created_at}


class Adapter(Protocol):
    async def deliver(self, message: Envelope) -> str:
        """Send `message`; the receiver's reference. Raises DeliveryError."""
        ...


class WebhookAdapter:
    """POST the message as JSON, signed (HMAC-SHA256 over timestamp and body), with its idempotency key."""

    def __init__(self, channel: WebhookChannel, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http
        self.timeout = httpx.Timeout(channel.read_timeout, connect=channel.connect_timeout)

    async def deliver(self, message: Envelope) -> str:
        body = dumps(message.body()).encode()
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            IDEMPOTENCY_HEADER: message.key,
            ATTEMPT_HEADER: str(message.attempt),
            KEY_ID_HEADER: self.channel.key_id,
            SIGNATURE_HEADER: webhook_signature(self.channel.secret.get_secret_value().encode(), stamp, body),
        }
        try:
            response = await self.http.post(self.channel.url, content=body, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException as err:
            raise DeliveryError(f"timed out ({type(err).__name__})", retryable=True) from None
        except httpx.HTTPError as err:  # the URL (which may carry a token) is never part of the reason
            raise DeliveryError(f"{type(err).__name__}: {str(err).replace(self.channel.url, '<url>')}",
                                retryable=True) from None
        status = response.status_code
        if 200 <= status < 300:
            return _reference(response)
        reason = f"HTTP {status} {response.reason_phrase}".strip()
        if response.text.strip():
            reason += f": {one_line(response.text.strip(), 160)}"
        raise DeliveryError(reason, retryable=status in (408, 429) or status >= 500)


def _reference(response: httpx.Response) -> str:
    """The receiver's own reference when its JSON answer has one (`reference` or `id`), else the status."""
    with contextlib.suppress(ValueError):
        data = response.json()
        if isinstance(data, dict) and isinstance(ref := data.get("reference", data.get("id")), str | int):
            return one_line(str(ref), MAX_REFERENCE)
    return f"HTTP {response.status_code}"


class SmtpAdapter:
    """One e-mail per message to the recipients' addresses; its Message-ID carries the idempotency key."""

    def __init__(self, channel: SmtpChannel) -> None:
        self.channel = channel

    def compose(self, message: Envelope, to: list[str]) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.channel.sender
        mail["To"] = ", ".join(to)
        mail["Subject"] = message.subject
        mail["Date"] = format_datetime(message.created_at)
        mail["Message-ID"] = f"<{message.key}@spotcheck>"
        mail[IDEMPOTENCY_HEADER] = message.key
        lines = [message.subject, "", *(f"{k}: {v}" for k, v in message.payload.items()), "",
                 f"workflow: {message.workflow_id}  step: {message.step_id}"]
        mail.set_content("\n".join(lines))
        return mail

    async def deliver(self, message: Envelope) -> str:
        to, unknown = self.channel.addresses(message.recipient)
        if unknown or not to:
            names = ", ".join(quoted(n, 40) for n in unknown) or quoted(message.recipient, 40)
            raise DeliveryError(f"recipient: no e-mail address configured for {names}", retryable=False)
        c = self.channel
        password = c.password.get_secret_value() if c.password else None
        try:
            _, answer = await aiosmtplib.send(
                self.compose(message, to), hostname=c.host, port=c.port, username=c.username, password=password,
                use_tls=c.security == "tls", start_tls=c.security == "starttls", timeout=c.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as err:
            codes = [r.code for r in err.recipients]
            raise DeliveryError(f"SMTP recipients refused ({', '.join(map(str, codes))})",
                                retryable=all(400 <= code < 500 for code in codes)) from None
        except aiosmtplib.SMTPResponseException as err:
            raise DeliveryError(f"SMTP {err.code}: {err.message}", retryable=err.code < 500) from None
        except (aiosmtplib.SMTPException, OSError) as err:  # connect, timeout, server gone
            raise DeliveryError(f"{type(err).__name__}: {err}", retryable=True) from None
        return one_line(f"SMTP {answer}", MAX_REFERENCE)


# --- the dispatcher ------------------------------------------------------------------------------------------

# A due row of a configured channel, taken for a lease; `FOR UPDATE SKIP LOCKED` lets two dispatchers claim
# at the same moment without waiting for or taking each other's rows. A row whose earlier lease ran out
# without a mark says so in its last error (its dispatcher stopped mid-delivery).
_CLAIM = """
WITH due AS (
    SELECT id FROM outbox
    WHERE sent_at IS NULL AND failed_at IS NULL AND channel = ANY($1::text[]) AND attempts < $4
      AND (next_attempt_at IS NULL OR next_attempt_at <= now())
      AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY created_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox AS o
SET claim_id = $3, claimed_until = now() + make_interval(secs => $5), attempts = o.attempts + 1,
    last_error = CASE WHEN o.claimed_until IS NOT NULL
                      THEN 'attempt ' || o.attempts || ' did not finish (its dispatcher stopped)'
                      ELSE o.last_error END
FROM due WHERE o.id = due.id
RETURNING o.*
"""
# Sent: whichever attempt finishes first marks it (a later one finds sent_at set and changes nothing).
_SENT = """
UPDATE outbox SET sent_at = now(), delivered_reference = $2, last_error = NULL, claim_id = NULL,
    claimed_until = NULL, next_attempt_at = NULL
WHERE id = $1 AND sent_at IS NULL
"""
# Not sent: only the attempt that holds the claim records it (a stale one must not undo a newer attempt).
_NOT_SENT = """
UPDATE outbox SET last_error = $3, claim_id = NULL, claimed_until = NULL,
    next_attempt_at = now() + make_interval(secs => $4),
    failed_at = CASE WHEN NOT $5 OR attempts >= $6
                          OR coalesce(retried_at, created_at) < now() - make_interval(secs => $7)
                     THEN now() END
WHERE id = $1 AND claim_id = $2 AND sent_at IS NULL
RETURNING failed_at IS NOT NULL
"""
# Out of attempts with no mark (every one stopped mid-delivery): failed, so it shows instead of waiting forever.
_ABANDONED = """
UPDATE outbox SET failed_at = now(), claim_id = NULL, claimed_until = NULL,
    last_error = 'no attempt of ' || attempts || ' finished (its dispatcher stopped each time)'
WHERE sent_at IS NULL AND failed_at IS NULL AND channel = ANY($1::text[]) AND attempts >= $2
  AND claimed_until < now()
"""


class Dispatcher:
    """Claims, sends and marks; one per `dispatch_outbox` run (and per test)."""

    def __init__(self, pool: asyncpg.Pool, config: OutboxConfig, http: httpx.AsyncClient) -> None:
        self.pool = pool
        self.config = config
        self.adapters: dict[str, Adapter] = {
            name: WebhookAdapter(c, http) if isinstance(c, WebhookChannel) else SmtpAdapter(c)
            for name, c in config.channels.items()
        }

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, pool: asyncpg.Pool, config: OutboxConfig) -> AsyncIterator[Dispatcher]:
        async with httpx.AsyncClient(follow_redirects=False) as http:  # a redirect is an answer (4xx/3xx)
            yield cls(pool, config, http)

    async def dispatch_once(self, report: DispatchReport | None = None) -> int:
        """Claim the due messages (at most `batch_size`), send them at once, mark each. How many were claimed."""
        report = report or DispatchReport()
        c = self.config
        channels = list(self.adapters)
        if not channels:
            return 0
        await self.pool.execute(_ABANDONED, channels, c.max_attempts)
        claim = uuid.uuid4()
        rows = await self.pool.fetch(_CLAIM, channels, c.batch_size, claim, c.max_attempts, c.lease_seconds)
        report.claimed += len(rows)
        await asyncio.gather(*(self._send(Envelope.of(row), claim, report) for row in rows))
        return len(rows)

    async def _send(self, message: Envelope, claim: uuid.UUID, report: DispatchReport) -> None:
        channel = self.config.channels[message.channel]
        try:
            async with asyncio.timeout(channel.time_bound):
                reference = await self.adapters[message.channel].deliver(message)
        except DeliveryError as err:
            await self._not_sent(message, claim, err, report)
        except TimeoutError:
            await self._not_sent(message, claim, DeliveryError(
                f"took longer than {channel.time_bound:g} s", retryable=True), report)
        else:
            await self.pool.execute(_SENT, message.id, reference)
            report.delivered += 1

    async def _not_sent(self, message: Envelope, claim: uuid.UUID, err: DeliveryError, report: DispatchReport) -> None:
        c = self.config
        delay = retry_delay(message.attempt, c.retry_initial_seconds, c.retry_max_seconds)
        failed = await self.pool.fetchval(_NOT_SENT, message.id, claim, f"attempt {message.attempt}: {err.reason}",
                                          delay, err.retryable, c.max_attempts, c.max_age_hours * 3600)
        activity_log(f"outbox {message.id} ({message.channel}) attempt {message.attempt}: {err.reason}")
        if failed:
            report.failed += 1
        else:
            report.retrying += 1


def activity_log(text: str) -> None:
    if activity.in_activity():
        activity.logger.warning(text)


class OutboxDispatch:
    """The activity the dispatcher workflow runs (workflows/outbox.py): dispatch for `run_seconds`, then return
    so the workflow's history shows each run; a background heartbeat keeps it alive (every delivery inside is
    bounded in time), and a worker that dies is noticed within the heartbeat timeout."""

    def __init__(self, pool: asyncpg.Pool, config: Callable[[], OutboxConfig | None] = config_from_env) -> None:
        self.pool = pool
        self.config = config

    @activity.defn
    async def dispatch_outbox(self, plan: DispatchPlan) -> DispatchReport:
        report = DispatchReport()
        config = self.config()
        loop = asyncio.get_running_loop()
        end = loop.time() + plan.run_seconds
        beat = asyncio.create_task(_heartbeat(report, plan.heartbeat_seconds / 3))
        try:
            if config is None or not config.channels:
                activity.logger.warning(f"{CONFIG_ENV} names no channel on this worker: nothing is sent")
                await asyncio.sleep(plan.run_seconds)
                return report
            async with Dispatcher.open(self.pool, config) as dispatcher:
                while loop.time() < end:
                    if not await dispatcher.dispatch_once(report):
                        await asyncio.sleep(min(config.poll_seconds, max(end - loop.time(), 0)))
        finally:
            beat.cancel()
        return report


async def _heartbeat(report: DispatchReport, every: float) -> None:
    while True:
        activity.heartbeat(report.model_dump())
        await asyncio.sleep(every)


# --- for the CLI (not activities) ------------------------------------------------------------------------


async def outbox_messages(
    db: asyncpg.Pool | asyncpg.Connection, *, pending: bool = False, failed: bool = False, limit: int = 200
) -> list[dict[str, Any]]:
    """The newest messages first; `pending` (not sent nor failed) and `failed` filter (both: either)."""
    where = []
    if pending:
        where.append("(sent_at IS NULL AND failed_at IS NULL)")
    if failed:
        where.append("(sent_at IS NULL AND failed_at IS NOT NULL)")
    sql = ("SELECT id, workflow_id, step_id, channel, recipient, subject, created_at, sent_at, failed_at, attempts,"
           " last_error, next_attempt_at, delivered_reference FROM outbox"
           + (" WHERE " + " OR ".join(where) if where else "") + " ORDER BY created_at DESC, id DESC LIMIT $1")
    return [dict(r) for r in await db.fetch(sql, limit)]


async def retry_message(db: asyncpg.Pool | asyncpg.Connection, message_id: int) -> bool:
    """Put a failed message back: due now, a full set of attempts, its age counted from now. False when there
    is no failed message with that id."""
    return bool(await db.fetchval(
        "UPDATE outbox SET failed_at = NULL, attempts = 0, next_attempt_at = NULL, claim_id = NULL,"
        " claimed_until = NULL, retried_at = now() WHERE id = $1 AND failed_at IS NOT NULL AND sent_at IS NULL"
        " RETURNING true", message_id))
