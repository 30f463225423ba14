"""An outside system's webhook endpoint, as a receiver should run one (aiohttp, in the test's process): it
checks the signature, counts every call, and applies each message's effect once, deduplicating by its
`Idempotency-Key`. A test scripts its answers (status, delay, hold until released) per key and call."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from domain.outbox import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, webhook_signature_problem

SECRET = "receiver-test-secret-0123456789"  # shared with the channel's configuration

# (key, how many calls with this key so far) -> the status to answer; may sleep or wait first
Script = Callable[[str, int], Awaitable[int]]


async def always_ok(key: str, call: int) -> int:
    return 200


def config_file(path: Path, channel: str, url: str, read_timeout: float = 1, **settings: float) -> Path:
    """An outbox configuration file (TOML, as operators write it) with one webhook channel to `url`."""
    lines = [f"{name} = {value}" for name, value in settings.items()]
    lines += [f"[channels.{channel}]", 'kind = "webhook"', f'url = "{url}"', f'secret = "{SECRET}"',
              "connect_timeout = 0.5", f"read_timeout = {read_timeout}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Receiver:
    def __init__(self, script: Script = always_ok) -> None:
        self.script = script
        self.calls: list[str] = []  # the key of every signed call, in order of arrival
        self.effects: Counter[str] = Counter()  # what the receiver did: once per key
        self.bodies: dict[str, dict[str, Any]] = {}
        self.refused: list[str] = []  # why unsigned or badly signed calls were refused
        self.arrived = asyncio.Event()  # set at each call
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        problem = webhook_signature_problem(SECRET.encode(), request.headers.get(SIGNATURE_HEADER), body,
                                            datetime.now(UTC))
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if problem or not key:
            self.refused.append(problem or "no idempotency key")
            return web.json_response({"error": problem}, status=401)
        self.calls.append(key)
        self.arrived.set()
        status = await self.script(key, self.calls.count(key))
        if status >= 300:
            return web.json_response({"error": "scripted"}, status=status)
        duplicate = key in self.effects
        if not duplicate:
            self.effects[key] += 1
            self.bodies[key] = await request.json()
        return web.json_response({"reference": f"R-{key[-8:]}", "duplicate": duplicate})

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=False)  # a held call finishes after a hang-up
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
