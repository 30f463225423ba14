"""The codec server for the Web UI and the temporal CLI: Temporal's remote codec protocol (POST `…/encode` and
`…/decode`, a `Payloads` message as protobuf JSON each way) over `codec.EncryptionCodec`, as in Temporal's
encryption sample, with two guards:

- a bearer token, compared in constant time: `Authorization: Bearer <token>` (the temporal CLI's
  `--codec-auth`, scripts), or the token as the first path segment, `http://host:port/<token>/decode`. The
  second is for the Web UI, which sends an Authorization header only with its own OAuth login token and only to
  an https endpoint: its user pastes `http://host:port/<token>` as the codec endpoint instead (the protocol
  looks at the last path segment only). Anything else is 401. The access log is off: the path holds the token.
- CORS for the Web UI's origin(s) only: a preflight from there is answered with the allowed method and headers
  (content-type, x-namespace, authorization) and credentials allowed; another origin gets none of them, so a
  page elsewhere cannot read decoded data through the user's browser.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path

from aiohttp import hdrs, web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from codec import write_private

HOST = "127.0.0.1"
MAX_BODY = 16 * 1024 * 1024  # a history's payloads come a few at a time; Temporal caps one at 2 MB by default
ALLOW_HEADERS = "content-type,x-namespace,authorization"

Convert = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


def ensure_token(path: Path) -> str:
    """The bearer token kept in `path` (mode 0600), made on first use."""
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    return token


def build_app(codec: PayloadCodec, token: str, ui_origins: Iterable[str]) -> web.Application:
    origins = frozenset(o.rstrip("/") for o in ui_origins)
    expected = token.encode()

    def cors(req: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
        origin = req.headers.get(hdrs.ORIGIN)
        resp.headers[hdrs.VARY] = "Origin"
        if origin in origins:
            resp.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            resp.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "POST"
            resp.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = ALLOW_HEADERS
            resp.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
            resp.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = "600"
        return resp

    def authorised(req: web.Request, prefix: str) -> bool:
        header = req.headers.get(hdrs.AUTHORIZATION, "")
        given = header[len("Bearer "):].strip() if header[:7].lower() == "bearer " else prefix
        return bool(given) and hmac.compare_digest(given.encode(), expected)

    async def preflight(req: web.Request) -> web.StreamResponse:
        # A preflight never carries credentials; only the UI's origin learns it may send the real request.
        allowed = req.headers.get(hdrs.ORIGIN) in origins
        return cors(req, web.Response(status=204 if allowed else 403))

    async def convert(req: web.Request) -> web.StreamResponse:
        prefix, _, op = req.match_info["path"].rpartition("/")
        fn: Convert | None = {"encode": codec.encode, "decode": codec.decode}.get(op)
        if fn is None:
            return cors(req, web.json_response({"message": "POST …/encode or …/decode"}, status=404))
        if not authorised(req, prefix.strip("/")):
            return cors(req, web.json_response({"message": "unauthorised: bearer token required"}, status=401))
        try:
            payloads = json_format.Parse(await req.read(), Payloads())
            converted = await fn(payloads.payloads)
        except (json_format.ParseError, ValueError) as e:
            return cors(req, web.json_response({"message": f"cannot {op}: {e}"}, status=400))
        body = json_format.MessageToJson(Payloads(payloads=converted))
        return cors(req, web.Response(text=body, content_type="application/json"))

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_route("OPTIONS", "/{path:.*}", preflight)
    app.router.add_route("POST", "/{path:.*}", convert)
    return app


class CodecServer:
    """The app on HOST and a free port (or `port`), run inside the caller's event loop."""

    def __init__(
        self, codec: PayloadCodec, token: str, ui_origins: Iterable[str], *, host: str = HOST, port: int = 0
    ) -> None:
        self.app = build_app(codec, token, ui_origins)
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the port the OS picked when asked for 0

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
