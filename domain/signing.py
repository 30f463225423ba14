"""Proven senders: HMAC-SHA256 signatures on human decisions and plan amendments, and seals on the internal
signals Spotcheck's own workflows send each other. Pure (stdlib hmac, hashlib, json): no files, no environment,
no clock.

**Decisions.** A client signs a decision for the workflow it sends it to (`sign`); the workflow checks it with
`signature_problem` in the same validation as the role matrix. The MAC covers `canonical(decision,
workflow_id)`: sorted-key compact JSON of every decision field except `signature` (kind, outcome, actor id,
role, name, organisation and region, request id, reason, evidence, data), normalised through the Decision
model so signer and verifier see the same bytes, plus the target workflow id (so the sample) and the
signature's key id and time. A decision altered on the way, forged, or sent to another sample does not match;
one re-sent later is too old (or, within the age, a repeat of its request id: answered with the first
receipt). Decisions are signed with deployment keys; a key whose id starts with `internal` is never
accepted for a decision.

**Plan amendments** (update `amend` of a plan, domain/plan_run.Amendment) are signed and checked by the same
code under their own tag (`plan_run.AMENDMENT_SIGNING`: `spotcheck-amendment/1`, the body under `amendment`),
for the plan's workflow id: a decision's signature never passes as an amendment's, nor the reverse. What is
signed is a `Signed` (tag, body name, model); decisions (`DECISION`) are the default everywhere, and their
bytes are as they were before amendments existed.

**Internal signals** (`branch_update`, `follow_merged_case`, `enforcement_result`, `report_fail`) travel as
`seal(payload, workflow_id)`: `{"payload": …, "seal": {"key_id", "mac"}}`, a MAC by the worker-held
internal key over the payload and the target workflow. A client holds no internal key, so it cannot forge
one; `unseal` answers (payload, None) or (None, reason). A captured seal can be re-sent to the same
workflow: receivers treat internal signals as reports of state (the latest wins, repeats are harmless).

**Keyring.** The worker configures the keyring at start (`configure`); workflows read it through this
module (imported passed through the sandbox: workflow code cannot read files or the environment). Never
configured (the test suite), signatures are not required and internal signals are not sealed (`unseal`
then takes any payload, sealed or bare).

**Replay.** Verification must give the same answer on replay as when the signal or update first arrived:
a retired key stays in the ring (verify-only: a new key signs, the old one still verifies) for as long as
any workflow it signed for may replay, i.e. until every such workflow has closed and its history is past
retention. The internal key likewise. Whether signatures are required is recorded per workflow (the
deployment policy, domain/policy.py), never read from the current worker's settings on replay.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from domain.decisions import Decision, Signature
from domain.intake import single_input

INTERNAL_PREFIX = "internal"
DEFAULT_MAX_AGE = timedelta(hours=24)  # between signing and arrival (a signal may wait while workers are down)
CLOCK_SKEW = timedelta(minutes=5)  # how far in the future a signature may claim to be made

_SEAL_TAG = "spotcheck-internal/1"
KEY_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # what a key id may look like (key files check it)


@dataclass(frozen=True)
class Signed:
    """What a signature covers: the tag that sets this kind of message apart from every other, the name the
    body goes under, and the model that normalises it (so signer and verifier see the same bytes)."""

    tag: str
    name: str
    model: type[BaseModel]
    target: str  # what the workflow it is sent to is, for the message when it does not match


DECISION = Signed("spotcheck-decision/1", "decision", Decision, "sample")
# Plan amendments: domain/plan_run.AMENDMENT_SIGNING, beside their model (plan_run imports this module through
# domain/policy.py, so this module cannot import it).

_keyring: Mapping[str, bytes] = MappingProxyType({})
_required = False
_internal_key_id: str | None = None


# --- the worker's configuration --------------------------------------------------------------------------


def is_internal(key_id: str) -> bool:
    return key_id.startswith(INTERNAL_PREFIX)


def configure(keyring: Mapping[str, bytes], require: bool = True, *, internal_key_id: str | None = None) -> None:
    """Set the worker's keyring: decision keys, and internal keys (ids starting `internal`). `require`:
    whether this deployment requires signed decisions. Internal signals are sealed with `internal_key_id`,
    by default the greatest internal id (`internal` < `internal-2026`: a rotated key sorts last); the others
    only verify."""
    global _keyring, _required, _internal_key_id
    ring = {str(k): bytes(v) for k, v in keyring.items()}
    internal = sorted(k for k in ring if is_internal(k))
    if internal_key_id is not None and internal_key_id not in internal:
        raise ValueError(f"internal key {internal_key_id!r} is not an internal key of the ring")
    _keyring = MappingProxyType(ring)
    _required = require
    _internal_key_id = internal_key_id or (internal[-1] if internal else None)


def keyring() -> Mapping[str, bytes]:
    return _keyring


def required() -> bool:
    """Whether the worker was configured to require signed decisions (False when never configured)."""
    return _required


def decision_key_ids(ring: Mapping[str, bytes] | None = None) -> list[str]:
    """The ids of the keys that may sign decisions (every key but the internal ones)."""
    return sorted(k for k in (_keyring if ring is None else ring) if not is_internal(k))


# --- canonical form --------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return _instant(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "value"):  # enums
        return value.value
    return str(value)


def _dumps(value: Any) -> bytes:
    """Sorted-key compact JSON, ASCII only (so any string, even a lone surrogate, encodes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_json_default).encode()


def _jsonable(value: Any) -> Any:
    """`value` as plain JSON data: what it will be after crossing the wire."""
    return json.loads(_dumps(value))


def _instant(value: datetime) -> str:
    """A signing time as text: UTC, microseconds kept; a time without zone counts as UTC."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def _body(value: Any, what: Signed) -> Any:
    """Every field but the signature, as `what`'s model writes it; a value the model refuses (the workflow
    refuses it too) as plain JSON."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude={"signature"})
    fields = {k: v for k, v in value.items() if k != "signature"}
    try:
        return what.model.model_validate(fields).model_dump(mode="json", exclude={"signature"})
    except ValidationError:
        return _jsonable(fields)


def _message(body: Any, workflow_id: str, key_id: str, signed_at: datetime, what: Signed) -> bytes:
    return _dumps({"tag": what.tag, what.name: body, "workflow_id": workflow_id,
                   "key_id": key_id, "signed_at": _instant(signed_at)})


def canonical(value: Mapping[str, Any], workflow_id: str, what: Signed = DECISION) -> bytes:
    """The bytes a signature covers: the decision or amendment (signature left out), the target workflow id,
    and the signature's key id and time (read from `value["signature"]`)."""
    sig = Signature.model_validate(value.get("signature") or {})
    return _message(_body(value, what), workflow_id, sig.key_id, sig.signed_at, what)


def _mac(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def _shown(key_id: str) -> str:
    """A key id fit to name in a message: a plain short id, never arbitrary input."""
    return key_id if KEY_ID.fullmatch(key_id) else "(not a key id)"


# --- decisions and amendments ---------------------------------------------------------------------------


def sign(
    value: Mapping[str, Any], workflow_id: str, key_id: str, secret: bytes, signed_at: datetime,
    what: Signed = DECISION,
) -> dict[str, Any]:
    """`value` (a decision, or what `what` says) with `signature` (a domain.decisions.Signature: key id, time,
    MAC in hex) for the workflow it is sent to. Any signature it had is replaced."""
    unsigned = {k: v for k, v in value.items() if k != "signature"}
    mac = _mac(secret, _message(_body(unsigned, what), workflow_id, key_id, signed_at, what))
    return {**unsigned, "signature": {"key_id": key_id, "signed_at": _instant(signed_at), "mac": mac}}


class _SignedValue(Protocol):
    """A model that carries its signature (a Decision, an Amendment)."""

    @property
    def signature(self) -> Signature | None: ...


def signature_problem(
    value: _SignedValue, workflow_id: str, keyring: Mapping[str, bytes], now: datetime, max_age: timedelta,
    what: Signed = DECISION,
) -> str | None:
    """Why `value`'s signature (as `what`) does not prove its sender for `workflow_id`, or None. Never
    raises, and names no part of the input but a plain key id."""
    sig = value.signature
    if sig is None:
        return "signature: missing"
    secret = None if is_internal(sig.key_id) else keyring.get(sig.key_id)
    if secret is None:
        return f"signature: unknown key {_shown(sig.key_id)}"
    try:
        expected = _mac(secret, _message(_body(value, what), workflow_id, sig.key_id, sig.signed_at, what))
    except (ValueError, TypeError, RecursionError, OverflowError):
        return "signature: does not match"
    if not _same(expected, sig.mac):
        return f"signature: does not match (forged, altered, or signed for another {what.target})"
    try:
        age = _aware(now) - _aware(sig.signed_at)
    except OverflowError:
        return "signature: too old"
    if age > max_age:
        return f"signature: too old (signed more than {_span(max_age)} before it arrived)"
    if -age > min(max_age, CLOCK_SKEW):
        return "signature: too new (signed in the future: check the sender's clock)"
    return None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


# --- internal signals ------------------------------------------------------------------------------------


def seal(payload: Any, workflow_id: str) -> dict[str, Any]:
    """An internal signal's argument for `workflow_id`: the payload as plain JSON data and, when the worker
    has an internal key, its seal. Call it in the sending workflow or activity (same worker process)."""
    data = _jsonable(payload)
    key_id = _internal_key_id
    if key_id is None:
        return {"payload": data, "seal": None}
    return {"payload": data, "seal": {"key_id": key_id, "mac": _seal_mac(_keyring[key_id], data, workflow_id, key_id)}}


def open_internal(args: tuple[Any, ...], workflow_id: str, *, sealed: bool) -> tuple[Any | None, str | None]:
    """What an internal signal handler received: (payload, None), or (None, why it is refused). `sealed`:
    the receiving run checks seals; a run from before them takes the payload, sealed (upgrade) or bare."""
    if not sealed:
        return (envelope_payload(args[0]) if len(args) == 1 else None), None
    raw, problem = single_input(args)
    return (None, problem) if problem is not None else unseal(raw, workflow_id)


def envelope_payload(raw: Any) -> Any:
    """The payload of a sealed envelope without checking it, else `raw` itself: for runs recorded before the
    seals, which must still take what upgraded senders send them."""
    return raw["payload"] if isinstance(raw, Mapping) and set(raw) == {"payload", "seal"} else raw


def unseal(raw: Any, workflow_id: str) -> tuple[Any | None, str | None]:
    """(payload, None) when `raw` was sealed for `workflow_id` by an internal key of the ring, else (None,
    why). Without an internal key (never configured), any payload is taken, sealed or bare. Never raises."""
    envelope = isinstance(raw, Mapping) and set(raw) == {"payload", "seal"}
    if _internal_key_id is None:
        return (raw["payload"] if envelope else raw), None
    if not envelope or raw["seal"] is None:
        return None, "seal: missing (internal signals come only from Spotcheck's own workflows)"
    given = raw["seal"]
    key_id = given.get("key_id") if isinstance(given, Mapping) else None
    mac = given.get("mac") if isinstance(given, Mapping) else None
    if not isinstance(key_id, str) or not isinstance(mac, str):
        return None, "seal: malformed"
    secret = _keyring.get(key_id) if is_internal(key_id) else None
    if secret is None:
        return None, f"seal: unknown key {_shown(key_id)}"
    try:
        expected = _seal_mac(secret, raw["payload"], workflow_id, key_id)
    except (ValueError, TypeError, RecursionError, OverflowError):
        return None, "seal: does not match"
    if not _same(expected, mac):
        return None, "seal: does not match (forged, altered, or sealed for another workflow)"
    return raw["payload"], None


def _seal_mac(secret: bytes, data: Any, workflow_id: str, key_id: str) -> str:
    return _mac(secret, _dumps({"tag": _SEAL_TAG, "payload": data, "workflow_id": workflow_id, "key_id": key_id}))
