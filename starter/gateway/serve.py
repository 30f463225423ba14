"""Serving the gateway with uvicorn inside the caller's event loop (`spotcheck gateway`, `spotcheck up`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI
from temporalio.client import Client

from activities.keys import KEYS_ENV, signatures_required
from starter.client import DEFAULT_TASK_QUEUE, Signer
from starter.gateway.app import build_app
from starter.gateway.settings import GatewaySettings

DEFAULT_PORT = 8288


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


def gateway_app(client: Client, settings: GatewaySettings, task_queue: str = DEFAULT_TASK_QUEUE) -> FastAPI:
    return build_app(client, settings, task_queue=task_queue, signer=gateway_signer())
