"""The request guard: an ASGI middleware in front of every route.

- The app gets a request body only through the guard's gate. The first time the app asks for it (FastAPI does so
  for a declared body model before it resolves any dependency, which is how a 30 MB body used to be parsed for a
  caller without a token), the request is already routed: the gate authorises the caller for the route's scope,
  and a refusal (401, 403, 429) is raised into the app and answered at once, without a byte of the body read.
- A body is limited to MAGFLOW_API_MAX_BODY_BYTES, by its Content-Length and while it streams (a chunked body
  has none), and must arrive within BODY_TIMEOUT_SECONDS. What a refused client still sends after the answer is
  discarded by the server, for a bounded time and size (`magflow.api.server`), never buffered.
- Every answer carries the security headers (no MIME sniffing, no caching, no framing, no referrer).
- Failed authorisations are logged (by `access`), and so is every call that changes something.
"""

from __future__ import annotations

import asyncio

from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect, HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from magflow.api.access import access_context, authorize, log_call, principal_of
from magflow.api.deps import required_scope
from magflow.api.errors import ApiError

BODY_TIMEOUT_SECONDS = 30.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
NO_STORE = (b"cache-control", b"no-store")


class _Exchange:
    """One request's answer: adds the security headers and notes the status."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 0

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers += [header for header in SECURITY_HEADERS if header[0] not in present]
            if NO_STORE[0] not in present:
                headers.append(NO_STORE)
            message = {**message, "headers": headers}
        await self._send(message)


def declared_length(conn: HTTPConnection) -> int | None:
    value = conn.headers.get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def has_body(conn: HTTPConnection) -> bool:
    length = declared_length(conn)
    return bool(length) or "transfer-encoding" in conn.headers


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"The request body is over {limit} bytes (MAGFLOW_API_MAX_BODY_BYTES); send a smaller one.",
    )


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, refused as soon as it passes `limit` bytes or takes over BODY_TIMEOUT_SECONDS."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise ApiError(
            408,
            "request_timeout",
            f"The request body did not arrive within {BODY_TIMEOUT_SECONDS:g} s; send it in one go and retry.",
        ) from None


class RequestGuard:
    """The middleware itself; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # By id: routes live as long as the app (and FastAPI's routes are not hashable).
        self._scopes: dict[int, str | None] = {}

    def needed_scope(self, scope: Scope) -> str | None:
        """The scope the routed request's route needs, or None (not routed, or open without a token)."""
        route = scope.get("route")
        if not isinstance(route, APIRoute):
            return None
        if id(route) not in self._scopes:
            self._scopes[id(route)] = required_scope(route)
        return self._scopes[id(route)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        exchange = _Exchange(send)
        if has_body(conn):
            receive = self._gate(conn, receive)
        try:
            await self.app(scope, receive, exchange.send)
        finally:
            principal = principal_of(scope)
            needed = self.needed_scope(scope)
            if principal is not None and (scope["method"] not in SAFE_METHODS or needed == "admin"):
                log_call(conn, principal, exchange.status or 500)

    def _gate(self, conn: HTTPConnection, receive: Receive) -> Receive:
        """The app's receive: its first call, made once the request is routed, authorises the caller for the
        route (a refusal is raised into the app as an ApiError) and only then reads the body, within the limit."""
        delivered = False

        async def gated_receive() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            needed = self.needed_scope(conn.scope)
            if needed is not None and principal_of(conn.scope) is None:
                await authorize(conn, needed)
            limit = access_context(conn).api.max_body_bytes
            length = declared_length(conn)
            if length is not None and length > limit:
                raise too_large(limit)
            body = await read_body(receive, limit)
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        return gated_receive
