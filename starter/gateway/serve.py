"""Serving the gateway with uvicorn inside the caller's event loop (`spotcheck gateway`, `spotcheck up`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client

from activities.keys import KEYS_ENV, signatures_required
from codec import write_private
from starter.client import DEFAULT_TASK_QUEUE, Signer
from starter.gateway.app import build_app
from starter.gateway.settings import GatewaySettings
from starter.gateway.workbench import Workbench
from starter.users import UserStore

DEFAULT_PORT = 8288
SECRET_ENV = "SPOTCHECK_WORKBENCH_SECRET"  # a file: the key session cookies are signed with
EVIDENCE_ENV = "SPOTCHECK_EVIDENCE_DIR"  # the content-addressed store of evidence files


class _Embedded(uvicorn.Server):
    """A server that leaves signals to its host (`spotcheck up` stops everything on the first Ctrl-C)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def gateway_signer() -> Signer | None:
    """The deployment key the gateway signs decisions with: the first decision key of SPOTCHECK_SIGNING_KEYS;
    none where the deployment takes unsigned decisions and no key file is named. KeyFileError else."""
    from activities.keys import KeyFileError

    path = os.environ.get(KEYS_ENV)
    if not path:
        if signatures_required():
            raise KeyFileError(f"{KEYS_ENV} is not set: the gateway signs decisions with a decision key of it "
                               "(or set SPOTCHECK_REQUIRE_SIGNATURES=0)")
        return None
    return Signer.from_key_file(path)


async def serve(app: FastAPI, host: str, port: int) -> None:
    """Serve until cancelled, then shut down cleanly (open requests finish, the socket is closed)."""
    server = _Embedded(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(), name="gateway")
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True
        await task
        raise


def gateway_app(client: Client, settings: GatewaySettings, task_queue: str = DEFAULT_TASK_QUEUE,
                workbench: Workbench | None = None) -> FastAPI:
    return build_app(client, settings, task_queue=task_queue, signer=gateway_signer(), workbench=workbench)


def workbench_settings(pool: asyncpg.Pool, state: Path | None = None) -> Workbench:
    """The workbench on `pool`'s users: its session key from the file SPOTCHECK_WORKBENCH_SECRET names (else
    <state>/workbench-secret, made when missing), evidence under SPOTCHECK_EVIDENCE_DIR (else <state>/evidence).
    KeyFileError when there is no key file to use."""
    from activities.keys import KeyFileError

    named = os.environ.get(SECRET_ENV)
    if not named and state is None:
        raise KeyFileError(f"{SECRET_ENV} is not set: point it at a file holding the session key")
    path = Path(named) if named else Path(state or ".") / "workbench-secret"
    if not named and not path.exists():
        write_private(path, secrets.token_urlsafe(48) + "\n")
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise KeyFileError(f"cannot read the workbench key file {path}: {err.strerror or err}") from None
    if len(secret) < 32:
        raise KeyFileError(f"the workbench key file {path} holds fewer than 32 characters")
    evidence = os.environ.get(EVIDENCE_ENV) or str(Path(state or ".") / "evidence")
    return Workbench(UserStore(pool), secret, Path(evidence))
