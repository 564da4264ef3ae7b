"""How `magflow serve` runs uvicorn: connection limits, and a deadline for a request's head.

uvicorn arms its keep-alive timeout only after a first response, so a client that opens a connection and sends
its request line and headers slowly (one header every few seconds) or not at all holds the connection forever,
and nothing bounds the size of the headers it sends. `GuardedHttpProtocol` closes a connection whose request
head is not complete within `header_timeout` seconds or grows past `max_head_bytes`. The request body has its
own deadline and limit in the API's request guard.

When the answer goes out before the request body was read (a refused caller), uvicorn discards the rest of the
body as it arrives, and a client that keeps sending (or drips) keeps the connection. Closing at once would lose
the answer (a close with unread data sends a reset), so the connection lingers: the rest is discarded for at
most LINGER_SECONDS and LINGER_BYTES, past which the connection is closed; a body that ends within them leaves
an ordinary keep-alive connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from magflow.api.settings import DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_LIMIT_CONCURRENCY

MAX_HEAD_BYTES = 64 * 1024
LINGER_SECONDS = 5.0
LINGER_BYTES = 4 * 1024 * 1024
REQUEST_HEADER_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
)
REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


@dataclass(frozen=True)
class ServerLimits:
    limit_concurrency: int = DEFAULT_LIMIT_CONCURRENCY
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    keep_alive_timeout: int = DEFAULT_KEEP_ALIVE_TIMEOUT
    max_head_bytes: int = MAX_HEAD_BYTES


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on each request's head."""

    header_timeout = DEFAULT_HEADER_TIMEOUT
    max_head_bytes = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._in_head = True
        self._linger_timer: asyncio.TimerHandle | None = None
        self._discarded = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def _start_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _end_head(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self.logger.info("closing a connection whose request head took over %gs", self.header_timeout)
            self._refuse(REQUEST_TIMEOUT)

    def _refuse(self, answer: bytes) -> None:
        # Only when no response of this connection is in flight: its bytes must not interleave with ours.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(answer)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Still in the head after this chunk (one that ends the head may carry a large body after it).
        if self._in_head and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self.logger.info("closing a connection whose request head is over %d bytes", self.max_head_bytes)
            self._refuse(REQUEST_HEADER_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head()

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        body_unread = self.cycle is not None and self.cycle.more_body
        super().on_response_complete()
        if body_unread and not self.transport.is_closing():
            self._discarded = 0
            self._linger_timer = self.loop.call_later(LINGER_SECONDS, self._stop_lingering)

    def on_body(self, body: bytes) -> None:
        if self._linger_timer is not None:
            self._discarded += len(body)
            if self._discarded > LINGER_BYTES:
                self._stop_lingering()
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._linger_timer is not None:
            # The rest of the body arrived and was dropped: the connection may serve the next request, and
            # waits for it like any idle connection (the chunks of the body cancelled that timer).
            self._linger_timer.cancel()
            self._linger_timer = None
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
            return
        super().on_message_complete()

    def _stop_lingering(self) -> None:
        """The client is still sending a body nobody reads, long after its answer: hang up."""
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        super().connection_lost(exc)


def protocol_class(limits: ServerLimits) -> type[GuardedHttpProtocol]:
    return type(
        "MagflowHttpProtocol",
        (GuardedHttpProtocol,),
        {"header_timeout": limits.header_timeout, "max_head_bytes": limits.max_head_bytes},
    )


def server_options(limits: ServerLimits, forwarded_allow_ips: str) -> dict[str, Any]:
    """The uvicorn settings of `magflow serve` (also for `uvicorn.Config(app, **server_options(...))`)."""
    return {
        "http": protocol_class(limits),
        "limit_concurrency": limits.limit_concurrency,
        "timeout_keep_alive": limits.keep_alive_timeout,
        "proxy_headers": True,
        "forwarded_allow_ips": forwarded_allow_ips,
        "server_header": False,
    }


def config(app: Any, host: str, port: int, limits: ServerLimits, forwarded_allow_ips: str, **extra: Any) -> Any:
    return uvicorn.Config(app, host=host, port=port, **server_options(limits, forwarded_allow_ips), **extra)
