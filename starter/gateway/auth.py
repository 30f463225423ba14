"""Who is calling: every gateway request is signed by its calling system.

Three headers: `X-Spotcheck-Caller` (the caller id of the gateway key file), `X-Spotcheck-Timestamp` (Unix
seconds) and `X-Spotcheck-Signature`, the hex HMAC-SHA256 by the caller's secret over

    METHOD \\n request target (path and ?query, as sent) \\n timestamp \\n raw body

A request whose signature does not match, whose caller is unknown, or whose timestamp is more than
`max_skew_seconds` from the gateway's clock is refused with 401 before its body is parsed: nothing reaches
a workflow. A replay inside that window re-sends the same request: starts and decisions are idempotent
(by sample number, by request id), so it changes nothing."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import Headers

from starter.gateway.settings import Caller, GatewaySettings

CALLER, TIMESTAMP, SIGNATURE = "X-Spotcheck-Caller", "X-Spotcheck-Timestamp", "X-Spotcheck-Signature"


def signature(secret: bytes, method: str, target: str, timestamp: str, body: bytes) -> str:
    message = b"\n".join([method.upper().encode(), target.encode(), timestamp.encode(), body])
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_headers(caller_id: str, secret: bytes, method: str, target: str, body: bytes = b"",
                   now: float | None = None) -> dict[str, str]:
    """The headers that sign a request (for callers written in Python, and the tests)."""
    timestamp = str(int(time.time() if now is None else now))
    return {CALLER: caller_id, TIMESTAMP: timestamp, SIGNATURE: signature(secret, method, target, timestamp, body)}


def _unauthorised(why: str) -> HTTPException:
    return HTTPException(401, f"unauthenticated: {why}", headers={"WWW-Authenticate": "Spotcheck-HMAC-SHA256"})


def authenticate(settings: GatewaySettings, method: str, target: str, headers: Headers, body: bytes,
                 now: float) -> tuple[str, Caller]:
    """(caller id, caller) when the request is signed by a known caller within the allowed clock skew;
    else HTTPException 401 naming the header, never its value."""
    caller_id, timestamp, given = (headers.get(h) for h in (CALLER, TIMESTAMP, SIGNATURE))
    for name, value in ((CALLER, caller_id), (TIMESTAMP, timestamp), (SIGNATURE, given)):
        if not value:
            raise _unauthorised(f"{name}: missing")
    assert caller_id is not None and timestamp is not None and given is not None
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise _unauthorised(f"{TIMESTAMP}: not Unix seconds")
    if abs(now - int(timestamp)) > settings.max_skew_seconds:
        raise _unauthorised(f"{TIMESTAMP}: more than {settings.max_skew_seconds} s from the gateway's clock")
    caller = settings.callers.get(caller_id)
    # An unknown caller and a wrong signature get the same answer: the gateway's caller ids are not told.
    expected = signature(caller.secret if caller else b"", method, target, timestamp, body)
    if caller is None or not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        raise _unauthorised(f"{SIGNATURE}: does not match a caller of this gateway")
    return caller_id, caller


def request_target(request: Request) -> str:
    """The path and query as sent (percent-encoding kept): what the caller signed."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    return (raw + (b"?" + query if query else b"")).decode("latin-1")


class _BoundedRequest(Request):
    """A request whose body is read at most `limit` bytes far (413 past it)."""

    limit = 0

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            declared = self.headers.get("content-length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > self.limit:
                raise _too_large(self.limit)
            chunks, size = [], 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > self.limit:
                    raise _too_large(self.limit)
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"body: larger than {limit} bytes")


class SignedRoute(APIRoute):
    """A gateway route: the body is bounded and the signature checked before FastAPI parses anything; the
    proven caller is `request.state.caller` (`proven_caller`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def signed(request: Request) -> Response:
            settings: GatewaySettings = request.app.state.gateway_settings
            bounded = _BoundedRequest(request.scope, request.receive)
            bounded.limit = settings.max_body_bytes
            body = await bounded.body()
            bounded.state.caller = authenticate(settings, request.method, request_target(request),
                                                request.headers, body, time.time())
            return await handler(bounded)

        return signed


def proven_caller(request: Request) -> tuple[str, Caller]:
    """The dependency giving a route its authenticated caller (set by SignedRoute)."""
    caller: Any = getattr(request.state, "caller", None)
    if caller is None:  # a route outside SignedRoute: never authenticated, so never trusted
        raise _unauthorised("not a signed route")
    return caller  # type: ignore[no-any-return]
