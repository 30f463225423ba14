"""Payload encryption: the Temporal server and its database see only ciphertext (docs/design.md §6).

`EncryptionCodec` encrypts every payload with AES-GCM (`add_key` makes 256-bit keys) under the keyring's current key and names that key
in the payload's metadata (`encryption-key-id`), so a key can be rotated: add a new key and make it current,
keep the old ones, and everything written before still decodes. A payload without `encoding:
binary/encrypted` is passed through on decode: histories recorded before the codec was switched on stay
readable. Failure messages and stack traces go through the codec too (encoded failure attributes).

Not encrypted by any codec: search attributes (domain/visibility.py keeps personal data out of them),
workflow ids, activity types, signal and update names, task queues, failure types, and the SDK core's own
marker data (patch ids, local-activity timing). Static summary and details, activity, timer and child
summaries, memo, query answers (the Web UI's current details) and update and signal arguments are payloads
and are encrypted.

`SPOTCHECK_CODEC_KEYS` names the keyring file, JSON `{"current": "<key id>", "<key id>": "<base64 key>", ...}`;
when set, `worker.connect()` and `SpotcheckClient.connect()` use `data_converter_from_env()` with it.
`spotcheck up` creates one in its state dir; `add_key(path)` rotates (a new current key, old keys kept).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter, PydanticPayloadConverter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

ENV = "SPOTCHECK_CODEC_KEYS"
ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_SIZE = 12
CURRENT = "current"


class CodecError(ValueError):
    """A payload that cannot be decrypted (unknown key id, tampered or truncated), or a bad keyring."""


@dataclasses.dataclass(frozen=True)
class Keyring:
    keys: Mapping[str, bytes]
    current: str


class EncryptionCodec(PayloadCodec):
    """AES-GCM over the whole serialized payload (metadata included), a random 96-bit nonce per payload,
    stored as nonce + ciphertext + tag: the layout of Temporal's encryption samples."""

    def __init__(self, keyring: Mapping[str, bytes], current: str) -> None:
        super().__init__()
        if current not in keyring:
            raise CodecError(f"the current key {current!r} is not in the keyring")
        for key_id, key in keyring.items():
            if len(key) not in (16, 24, 32):
                raise CodecError(f"key {key_id!r}: AES needs 16, 24 or 32 bytes, not {len(key)}")
        self.current = current
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.items()}

    async def encode(self, payloads: Iterable[Payload]) -> list[Payload]:
        cipher = self._ciphers[self.current]
        encoded = []
        for p in payloads:
            nonce = os.urandom(NONCE_SIZE)
            encoded.append(Payload(
                metadata={"encoding": ENCODING, KEY_ID: self.current.encode()},
                data=nonce + cipher.encrypt(nonce, p.SerializeToString(), None),
            ))
        return encoded

    async def decode(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [self._decrypt(p) if p.metadata.get("encoding") == ENCODING else p for p in payloads]

    def _decrypt(self, p: Payload) -> Payload:
        key_id = p.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecError(f"payload encrypted with key {key_id!r}, which is not in the keyring")
        try:
            if len(p.data) < NONCE_SIZE + 16:  # nonce and tag at least
                raise InvalidTag
            plain = cipher.decrypt(p.data[:NONCE_SIZE], p.data[NONCE_SIZE:], None)
        except InvalidTag:
            raise CodecError(f"payload under key {key_id!r} fails authentication (tampered or truncated)") from None
        return Payload.FromString(plain)


def load_keyring(path: str | os.PathLike[str]) -> Keyring:
    """The keyring file: `{"current": key_id, key_id: base64 key, ...}`; errors name the file and entry,
    never a key."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CodecError(f"{path}: cannot read the keyring: {e}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get(CURRENT), str):
        raise CodecError(f'{path}: expected {{"{CURRENT}": "<key id>", "<key id>": "<base64 key>", ...}}')
    keys = {}
    for key_id, value in raw.items():
        if key_id == CURRENT:
            continue
        try:
            keys[key_id] = base64.b64decode(value, validate=True)
        except (TypeError, binascii.Error):
            raise CodecError(f"{path}: key {key_id!r} is not base64") from None
    keyring = Keyring(keys, raw[CURRENT])
    EncryptionCodec(keyring.keys, keyring.current)  # validates: current present, key sizes
    return keyring


def add_key(path: str | os.PathLike[str]) -> str:
    """A fresh 256-bit key becomes current (creating the file, mode 0600, if missing); older keys stay so
    existing histories still decode. Returns the new key id. Workers and clients read the file when they
    connect: restart them after a rotation."""
    file = Path(path)
    raw = json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
    key_id = f"k{time.strftime('%Y%m%d')}-{secrets.token_hex(3)}"
    raw[key_id] = base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()
    raw[CURRENT] = key_id
    write_private(file, json.dumps(raw, indent=2) + "\n")
    return key_id


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by its owner only (mode 0600 from the start), in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# One set of pydantic TypeAdapters for the whole process. The SDK makes a payload converter for every workflow
# instance (and again on every replay of an evicted one); the stock pydantic converter would build its own
# adapter per model each time: schema-building CPU on every start and replay, ~12 KiB per cached sample.
# Adapters are immutable once built, so one shared cache serves every workflow and activity.
_TYPE_ADAPTERS = functools.lru_cache(maxsize=1024)(TypeAdapter)


class SpotcheckPayloadConverter(PydanticPayloadConverter):
    """The pydantic payload converter with process-wide type adapters (`_TYPE_ADAPTERS`). A payload decoded
    without a type (a sample's start arguments, every handler's `*args`) that no converter can read — an
    unknown encoding, JSON that does not parse — is handed over as a `RawValue` for the receiver to refuse,
    naming it: raised here, it would fail the workflow task again and again (the SDK retries it for ever)."""

    _shared: ClassVar[SpotcheckPayloadConverter | None] = None

    def __new__(cls) -> SpotcheckPayloadConverter:
        # The SDK builds a payload converter for every workflow activation (a fresh DataConverter per
        # activation, `_CommandAwareDataConverter.create`): ~7% of a worker's CPU on decisions went there.
        # The converter holds no state once built, so each class has one instance, handed out again.
        shared = cls.__dict__.get("_shared")
        if shared is None:
            shared = super().__new__(cls)
            cls._shared = shared
        return shared

    def __init__(self) -> None:
        if "converters" in self.__dict__:
            return  # the shared instance, built already
        super().__init__()
        for converter in self.converters.values():
            if isinstance(converter, PydanticJSONPlainPayloadConverter):
                converter._type_adapter = _TYPE_ADAPTERS  # the SDK's per-instance cache, shared instead

    def from_payloads(self, payloads: Sequence[Payload], type_hints: list[type] | None = None) -> list[Any]:
        try:
            return super().from_payloads(payloads, type_hints)
        except Exception:
            if type_hints is not None:
                raise
        values: list[Any] = []
        for payload in payloads:
            try:
                values.append(super().from_payloads([payload], None)[0])
            except Exception:
                values.append(RawValue(payload))
        return values


# Spotcheck's data converter: pydantic models on the wire (the workers, the client, the tests, the replayer).
spotcheck_data_converter = DataConverter(payload_converter_class=SpotcheckPayloadConverter)


def data_converter(keyring: Keyring) -> DataConverter:
    """Spotcheck's pydantic converter with payloads and failure messages encrypted under `keyring`."""
    return dataclasses.replace(
        spotcheck_data_converter,
        payload_codec=EncryptionCodec(keyring.keys, keyring.current),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def data_converter_from_env() -> DataConverter:
    """Encrypting when SPOTCHECK_CODEC_KEYS names a keyring file, else the plain pydantic converter."""
    path = os.environ.get(ENV)
    return data_converter(load_keyring(path)) if path else spotcheck_data_converter
