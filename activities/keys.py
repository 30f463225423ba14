"""Signing keys on disk: a key file is JSON `{key_id: base64 secret}`. The worker's file holds the decision
keys it accepts and the internal key(s) (ids starting `internal`) that seal Spotcheck's own signals; a
client's file needs only its decision key. `spotcheck up` generates one in its state dir; the worker reads
SPOTCHECK_SIGNING_KEYS, the CLI `--key-file` (or the same variable). Retired keys stay in the worker's file
(verify-only) while workflows they signed for may replay: domain/signing.py."""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain import signing

KEYS_ENV = "SPOTCHECK_SIGNING_KEYS"
REQUIRE_ENV = "SPOTCHECK_REQUIRE_SIGNATURES"
SECRET_BYTES = 32
MIN_SECRET_BYTES = 16


class KeyFileError(ValueError):
    """A key file that cannot be used; the message names the file and the key, never a secret."""


def read_key_file(path: str | Path, what: str = "key file", shape: str = "") -> Any:
    """A key file's JSON; a KeyFileError naming the file (`what`, and the `shape` expected) when it cannot be
    read or parsed, never its content."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise KeyFileError(f"cannot read the {what} {path}: {err.strerror or err}") from None
    except (ValueError, UnicodeDecodeError):
        raise KeyFileError(f"the {what} {path} is not JSON{shape}") from None


def load_keyring(path: str | Path) -> dict[str, bytes]:
    raw = read_key_file(path, shape=" {key_id: base64 secret}")
    if not isinstance(raw, dict) or not raw:
        raise KeyFileError(f"the key file {path} holds no keys: expected JSON {{key_id: base64 secret}}")
    ring: dict[str, bytes] = {}
    for key_id, value in raw.items():
        if not signing.KEY_ID.fullmatch(key_id):
            raise KeyFileError(f"the key file {path} has a key id that is not 1-64 letters, digits or ._:-")
        try:
            secret = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except (binascii.Error, ValueError):
            secret = b""
        if len(secret) < MIN_SECRET_BYTES:
            raise KeyFileError(f"key {key_id} in {path}: the secret must be base64 of at least "
                               f"{MIN_SECRET_BYTES} bytes")
        ring[key_id] = secret
    return ring


def new_key_file(path: Path, client_key_id: str = "dev-1") -> None:
    """Write a fresh key file (an internal key and one decision key), readable by its owner only; an
    existing file is never overwritten."""
    keys = {"internal": secrets.token_bytes(SECRET_BYTES), client_key_id: secrets.token_bytes(SECRET_BYTES)}
    text = json.dumps({k: base64.b64encode(v).decode() for k, v in keys.items()}, indent=2) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def signing_key(ring: Mapping[str, bytes], key_id: str | None = None) -> tuple[str, bytes]:
    """The key a client signs decisions with: `key_id`, else the first decision key of the file."""
    if key_id is not None:
        if key_id not in ring or signing.is_internal(key_id):
            raise KeyFileError(f"no decision key {key_id} in the key file")
        return key_id, ring[key_id]
    ids = [k for k in ring if not signing.is_internal(k)]
    if not ids:
        raise KeyFileError("the key file holds no decision key (only internal ones)")
    return ids[0], ring[ids[0]]


def signatures_required() -> bool:
    """SPOTCHECK_REQUIRE_SIGNATURES: on unless it says 0, false, no or off."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in {"0", "false", "no", "off"}


@dataclass(frozen=True)
class SigningSetup:
    """What a worker process is configured with: its keyring, whether decisions must be signed, and
    where the keys came from."""

    keyring: Mapping[str, bytes]
    require: bool
    path: Path | None = None

    def describe(self) -> str:
        if not self.keyring:
            return "signatures not required; no keys: internal signals are not sealed"
        keys = ", ".join(signing.decision_key_ids(self.keyring)) or "none"
        return f"{'required' if self.require else 'not required'}; decision keys {keys}; key file {self.path}"

    def apply(self) -> None:
        """Configure domain.signing in this process (before the worker starts)."""
        signing.configure(self.keyring, require=self.require)


def signing_setup(key_file: str | Path | None = None) -> SigningSetup:
    """The worker's setup from `key_file` or SPOTCHECK_SIGNING_KEYS, and SPOTCHECK_REQUIRE_SIGNATURES. A
    worker that requires signatures needs a key file; any key file needs an internal key."""
    require = signatures_required()
    where = key_file or os.environ.get(KEYS_ENV) or None
    if where is None:
        if require:
            raise KeyFileError(f"{KEYS_ENV} is not set: point it at the key file (JSON {{key_id: base64 "
                               f"secret}}, with an internal key), or set {REQUIRE_ENV}=0")
        return SigningSetup({}, require=False)
    ring = load_keyring(where)
    if not any(signing.is_internal(k) for k in ring):
        raise KeyFileError(f"the key file {where} has no internal key (an id starting 'internal'): "
                           "the worker seals its own signals with it")
    return SigningSetup(ring, require=require, path=Path(where))
