"""What a signal or update handler accepts before the decision desk looks at it: limits and summaries.

Anything can be sent to a workflow (no input, two inputs, `null`, megabytes, a million signals). A handler
never raises on it: it takes exactly one input within a size limit, and what it refuses is recorded as a
summary (size and hash), never stored or echoed in full. Limits are local policy, not law."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

MAX_INPUT_BYTES = 64 * 1024  # a decision with its payload is a few KiB; 64 KiB leaves room for long reports
MAX_TEXT = 300  # a reason, kind or outcome echoed in a receipt or the timeline
# Per run of a workflow: beyond these a decision is dropped unrecorded except for a count (local policy).
MAX_DECISIONS_PER_RUN = 2000
RATE_WINDOW = timedelta(minutes=1)
MAX_DECISIONS_PER_WINDOW = 60

# A run continues as new when Temporal suggests it, or past this many events (local policy, well under
# Temporal's own limits): a flood of signals or a long lifecycle never reaches the event limit.
MAX_EVENTS_PER_RUN = 5000

_TOKEN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


class InputSummary(BaseModel):
    """What is kept of an input that is not taken: its shape, never its content."""

    arguments: int
    type: str
    bytes: int = Field(description="size of the input as JSON")
    sha256: str = Field(description="first 16 hex digits of the SHA-256 of the input as JSON")
    keys: list[str] = Field(default_factory=list, description="top-level keys that are plain tokens")


def encoded(value: Any) -> str:
    """The input as ASCII JSON (lone surrogates escaped), for measuring and hashing."""
    try:
        return json.dumps(value, ensure_ascii=True, sort_keys=True, default=repr)
    except (RecursionError, ValueError, TypeError):
        return repr(value)[: MAX_INPUT_BYTES + 1]


def summarise(args: tuple[Any, ...]) -> InputSummary:
    value: Any = args[0] if len(args) == 1 else list(args)
    text = encoded(value)
    keys = [k for k in value if isinstance(k, str) and _TOKEN.match(k)][:20] if isinstance(value, dict) else []
    return InputSummary(arguments=len(args), type=type(value).__name__, bytes=len(text),
                        sha256=hashlib.sha256(text.encode()).hexdigest()[:16], keys=keys)


def single_input(args: tuple[Any, ...]) -> tuple[Any, str | None]:
    """The one input a handler takes, or why the call is refused (naming the input, not echoing it)."""
    if len(args) != 1:
        return None, f"input: expected exactly one argument, got {len(args)}"
    size = len(encoded(args[0]))
    if size > MAX_INPUT_BYTES:
        return None, f"input: {size} bytes, over the limit of {MAX_INPUT_BYTES}"
    return args[0], None


def token(value: Any) -> str:
    """A kind or outcome as sent, if it is a plain token; else '?' (it is shown and stored, so it is clean)."""
    return value if isinstance(value, str) and _TOKEN.match(value) else "?"


def clean_text(text: str, limit: int = MAX_TEXT) -> str:
    """Text that can always be stored and shown: no control characters or lone surrogates, bounded."""
    text = _UNSAFE.sub("\ufffd", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Throttle(BaseModel):
    """Counts a workflow run's decisions: over the run's total or the rate, one is dropped."""

    taken: int = 0
    window_start: datetime | None = None
    in_window: int = 0
    dropped: int = 0

    def admit(self, now: datetime) -> bool:
        if self.window_start is None or now - self.window_start >= RATE_WINDOW:
            self.window_start, self.in_window = now, 0
        if self.taken >= MAX_DECISIONS_PER_RUN or self.in_window >= MAX_DECISIONS_PER_WINDOW:
            self.dropped += 1
            return False
        self.taken += 1
        self.in_window += 1
        return True
