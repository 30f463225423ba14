"""The gateway's settings: who may call it (one key per calling system) and its limits.

`SPOTCHECK_GATEWAY_KEYS` names a JSON file `{caller id: {"system": …, "secret": <base64>, …}}` (mode 0600,
like the signing keys); `spotcheck up` makes one in its state dir. Errors name the file and the field,
never a secret."""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from activities.keys import MIN_SECRET_BYTES, SECRET_BYTES, KeyFileError, read_key_file
from codec import write_private
from domain.bounds import MaybeName, error_lines, whole_number_setting, within
from domain.decisions import Actor
from domain.models import RegionCode
from domain.signing import KEY_ID
from domain.systems import System

KEYS_ENV = "SPOTCHECK_GATEWAY_KEYS"
MAX_BODY_ENV = "SPOTCHECK_GATEWAY_MAX_BODY"
MAX_BODY_BYTES = 256 * 1024  # an order or a decision is a few KiB; the workflow refuses 64 KiB of input anyway
MAX_SKEW_SECONDS = 300  # a request signed further from the gateway's clock is stale (or from the future)

CallerId = Annotated[str, Field(pattern=KEY_ID.pattern + "$")]


class Caller(BaseModel):
    """One calling system and what it proves itself with."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    system: System
    secret: bytes = Field(repr=False, description="base64 in the file, at least 16 bytes")
    organisation: MaybeName | None = Field(default=None, description="the system's operator, set as actor.organisation")
    region: RegionCode | None = Field(default=None, description="set as actor.region")
    starts_samples: bool = Field(default=False, description="may POST /samples")

    @field_validator("secret", mode="before")
    @classmethod
    def _base64(cls, value: Any) -> bytes:
        try:
            secret = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except (binascii.Error, ValueError):
            secret = b""
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"must be base64 of at least {MIN_SECRET_BYTES} bytes")
        return secret

    def actor(self, caller_id: str) -> Actor | None:
        """The actor of this caller's decisions: the proven caller in its system's role (None: it makes none)."""
        role = self.system.role
        if role is None:
            return None
        return Actor(id=caller_id, role=role, organisation=self.organisation, region=self.region)


class GatewaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    callers: dict[CallerId, Caller]
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, ge=1024, le=16 * 1024 * 1024)
    max_skew_seconds: int = Field(default=MAX_SKEW_SECONDS, ge=1, le=3600)


def load_callers(path: str | Path) -> dict[str, Caller]:
    """The callers of a key file; a KeyFileError naming the file and field (never a secret) when unusable."""
    raw = read_key_file(path, "gateway key file")
    try:
        return GatewaySettings.model_validate({"callers": raw}).callers
    except ValidationError as err:
        raise KeyFileError(f"the gateway key file {path}: " + "; ".join(within(error_lines(err)))) from None


def gateway_settings(environ: Mapping[str, str] = os.environ) -> GatewaySettings:
    """The settings from the environment: SPOTCHECK_GATEWAY_KEYS (required), SPOTCHECK_GATEWAY_MAX_BODY."""
    path = environ.get(KEYS_ENV, "").strip()
    if not path:
        raise KeyFileError(f"{KEYS_ENV} is not set: point it at the gateway key file (JSON {{caller id: "
                           '{"system": …, "secret": <base64>}})')
    return GatewaySettings(
        callers=load_callers(path),
        max_body_bytes=whole_number_setting(environ, MAX_BODY_ENV, MAX_BODY_BYTES, 1024, 16 * 1024 * 1024),
    )


def new_gateway_key_file(path: Path) -> None:
    """A fresh key file with one caller per system, named after it (the data hub starts samples), readable
    by its owner only."""
    callers = {
        system.value: {"system": system.value, "secret": base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode(),
                       **({"starts_samples": True} if system is System.DATA_HUB else {})}
        for system in System
    }
    write_private(path, json.dumps(callers, indent=2) + "\n")
