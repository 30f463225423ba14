"""Delivery of the outbox to outside systems: the configuration of each channel (one validated model), the
message key receivers deduplicate by, the webhook signature, the back-off and a message's state.

Pure: the file is read by `activities/outbox.py`, which also does the sending. Errors name the field, never
the input (a secret must never reach a log or a terminal: secrets are `SecretStr` and validation messages
are built without the input, `domain.bounds.error_lines`)."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from domain.bounds import MAX_NAME, MAX_URL, error_lines, text, within

CONFIG_ENV = "SPOTCHECK_OUTBOX_CONFIG"
CHANNEL_NAME = r"^[a-z][a-z0-9_.-]{0,63}$"  # an outside system's name as the workflows write it (`outbox.channel`)
ADDRESS = r"^[^@\s<>,;\"]{1,64}@[^@\s<>,;\"]{1,255}$"  # one plain e-mail address, no display name

SIGNATURE_HEADER = "X-Spotcheck-Signature"  # t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>." + body>
KEY_ID_HEADER = "X-Spotcheck-Key-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
ATTEMPT_HEADER = "X-Spotcheck-Attempt"
SIGNATURE_TOLERANCE = timedelta(minutes=5)  # what a receiver should accept between signing and arrival


class OutboxConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the field, never a value."""


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def time_bound(self) -> float:
        """The longest one delivery through this channel may take, whatever the other side does."""
        raise NotImplementedError


class WebhookChannel(_Channel):
    """A signed JSON POST to the system's endpoint."""

    kind: Literal["webhook"]
    url: Annotated[str, text(MAX_URL, pattern=r"^https?://[^\s/?#]+\S*$")]
    secret: SecretStr = Field(description="shared with the receiver; HMAC-SHA256 key of the signature")
    key_id: Annotated[str, text(64, pattern=r"^[A-Za-z0-9._:-]{1,64}$")] = "default"
    connect_timeout: float = Field(5.0, gt=0, le=60)
    read_timeout: float = Field(15.0, gt=0, le=300)

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < 16:
            raise ValueError("must be at least 16 bytes")
        return value

    @property
    def time_bound(self) -> float:
        # connect, write (small body) and read, each bounded by httpx; the total is bounded on top
        return 2 * self.connect_timeout + self.read_timeout


class SmtpChannel(_Channel):
    """E-mail through an SMTP server. `recipients` maps a recipient as the workflows write it (a role such as
    `lab`, an organisation) to addresses; a recipient that is itself an address is sent to as it is."""

    kind: Literal["smtp"]
    host: Annotated[str, text(255, min_length=1, pattern=r"^[A-Za-z0-9.:\[\]-]+$")]
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: Annotated[str, text(MAX_NAME)] | None = None
    password: SecretStr | None = None
    sender: Annotated[str, text(320, pattern=ADDRESS)]
    recipients: dict[Annotated[str, text(MAX_NAME, min_length=1)],
                     list[Annotated[str, text(320, pattern=ADDRESS)]]] = Field(default_factory=dict, max_length=500)
    timeout: float = Field(15.0, gt=0, le=300)

    @model_validator(mode="after")
    def _login_whole(self) -> SmtpChannel:
        if (self.username is None) != (self.password is None):
            raise ValueError("password: username and password go together")
        return self

    @property
    def time_bound(self) -> float:
        return 2 * self.timeout

    def addresses(self, recipient: str) -> tuple[list[str], list[str]]:
        """(addresses, recipients with no address) for `recipient`, a comma-separated list as written by the
        workflows (e.g. `lab,sampler`)."""
        found: list[str] = []
        unknown: list[str] = []
        for name in filter(None, (part.strip() for part in recipient.split(","))):
            if name in self.recipients:
                found += self.recipients[name]
            elif re.fullmatch(ADDRESS, name):
                found.append(name)
            else:
                unknown.append(name)
        return list(dict.fromkeys(found)), unknown


Channel = Annotated[WebhookChannel | SmtpChannel, Field(discriminator="kind")]


class OutboxConfig(BaseModel):
    """SPOTCHECK_OUTBOX_CONFIG: one adapter per channel, and how the dispatcher retries and gives up. A channel
    not named here is never sent nor given up: its messages wait, shown as `no adapter`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: dict[Annotated[str, text(64, pattern=CHANNEL_NAME)], Channel] = Field(default_factory=dict,
                                                                                     max_length=200)
    max_attempts: int = Field(8, ge=1, le=100, description="then the message is failed")
    max_age_hours: float = Field(72, gt=0, le=24 * 365, description="a message not delivered by then is failed")
    retry_initial_seconds: float = Field(10, gt=0, le=3600, description="back-off after the first failure")
    retry_max_seconds: float = Field(3600, gt=0, le=86400, description="back-off doubles up to this")
    lease_seconds: float = Field(120, gt=0, le=3600, description="a claimed message is no other dispatcher's")
    batch_size: int = Field(10, ge=1, le=200, description="messages claimed and sent at once")
    poll_seconds: float = Field(2, gt=0, le=300, description="pause when nothing is due")
    run_seconds: float = Field(300, gt=0, le=3600, description="one dispatch_outbox activity runs this long")
    heartbeat_seconds: float = Field(30, gt=0, le=600, description="the activity's heartbeat timeout")

    @model_validator(mode="after")
    def _fits_together(self) -> OutboxConfig:
        # A lease shorter than a delivery would let a second dispatcher send a message still being sent.
        for name, channel in self.channels.items():
            if self.lease_seconds < 2 * channel.time_bound:
                raise ValueError(f"lease_seconds: must be at least twice channel {name}'s time bound "
                                 f"({2 * channel.time_bound:g} s)")
        if self.run_seconds < self.lease_seconds:
            raise ValueError("run_seconds: must not be shorter than lease_seconds")
        if self.retry_max_seconds < self.retry_initial_seconds:
            raise ValueError("retry_max_seconds: must not be below retry_initial_seconds")
        return self

    def plan(self) -> DispatchPlan:
        return DispatchPlan(run_seconds=self.run_seconds, heartbeat_seconds=self.heartbeat_seconds)


def parse_outbox_config(data: Any, where: str) -> OutboxConfig:
    """The configuration from its already-read data (a parsed TOML file); errors name `where` and the field."""
    try:
        return OutboxConfig.model_validate(data)
    except ValidationError as err:
        raise OutboxConfigError("; ".join(within(error_lines(err, f"{where}: ")))) from None


class DispatchPlan(BaseModel):
    """What the dispatcher workflow gives each `dispatch_outbox` activity (the rest is the worker's config)."""

    run_seconds: float = 300
    heartbeat_seconds: float = 30


class DispatchReport(BaseModel):
    """What one `dispatch_outbox` run did (also its heartbeat details)."""

    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


# --- what receivers see ---------------------------------------------------------------------------------


def message_key(workflow_id: str, step_id: str) -> str:
    """The idempotency key of a message: the same for every attempt (and the same as the outbox row's own
    key, workflow id + step id), opaque and fixed-length so it fits any header."""
    digest = hashlib.sha256(f"{workflow_id}\n{step_id}".encode()).hexdigest()
    return f"spotcheck-{digest[:40]}"


def webhook_signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def webhook_signature_problem(
    secret: bytes, header: str | None, body: bytes, now: datetime, tolerance: timedelta = SIGNATURE_TOLERANCE
) -> str | None:
    """Why a signed webhook must be refused (missing, malformed, too old, wrong), or None: what a receiver
    checks, here so that the tests and any Python receiver check the same way."""
    if not header:
        return "signature: missing"
    parts = dict(p.partition("=")[::2] for p in header.split(","))
    stamp, given = parts.get("t", ""), parts.get("v1", "")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12 and given):
        return "signature: malformed"
    if abs(now.timestamp() - int(stamp)) > tolerance.total_seconds():
        return "signature: outside the accepted time window"
    expected = webhook_signature(secret, int(stamp), body).rpartition("v1=")[2]
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        return "signature: does not match"
    return None


def retry_delay(attempts: int, initial: float, maximum: float) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: doubling from `initial`, at most `maximum`."""
    return float(min(maximum, initial * 2 ** min(max(attempts - 1, 0), 30)))


# --- what operators see ---------------------------------------------------------------------------------


class MessageState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    NO_ADAPTER = "no adapter"


def message_state(row: dict[str, Any], configured: set[str] | None) -> MessageState:
    """A message's state from its row; `configured`: the channels with an adapter (None: not known here)."""
    if row.get("sent_at") is not None:
        return MessageState.SENT
    if row.get("failed_at") is not None:
        return MessageState.FAILED
    if configured is not None and row.get("channel") not in configured:
        return MessageState.NO_ADAPTER
    return MessageState.PENDING
