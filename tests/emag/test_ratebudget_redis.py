"""The shared rate budget against a real Redis that is far away, or that accepts connections and never answers.

Both are real TCP servers on 127.0.0.1 (a delaying proxy in front of the test Redis, a "black hole"), so
redis-py meets them exactly as it would meet a distant or wedged Redis. test_ratebudget_sync.py and
bench/ratebudget_latency.py use them too, so this module imports nothing beyond the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis

from magflow.emag import RateLimits, RedisRateBudget
from magflow.emag.errors import EmagRateBudgetError
from magflow.emag.ratelimit import redacted_url

PASSWORD = "s3cret"


class _Server:
    """A TCP server on 127.0.0.1, a random port, that closes every connection it accepted on exit."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        # Closing the sockets ends every handler's reads; cancelling the handlers instead would make Python
        # 3.11's start_server log a spurious traceback for each of them.
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._handlers, *(w.wait_closed() for w in self._writers), return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str = "/0", userinfo: str = "") -> str:
        return f"redis://{userinfo}127.0.0.1:{self.port}{path}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        with contextlib.suppress(ConnectionError):  # the client hung up mid-write
            await self.serve(reader, writer)
        writer.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class BlackHole(_Server):
    """Accepts the connection, reads every command, never answers: a Redis that is wedged (or not Redis)."""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass


class LatencyProxy(_Server):
    """Forwards to `upstream` (host, port), holding every chunk `delay` seconds in each direction. It adds
    latency, not a bandwidth limit: chunks in flight do not wait behind each other's delay."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        super().__init__()
        self.upstream = upstream
        self.delay = delay

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await chunks.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data or sink.is_closing():
                    sink.close()
                    return
                sink.write(data)
                await sink.drain()

        delivery = asyncio.create_task(deliver())
        try:
            while data := await source.read(65536):
                chunks.put_nowait((loop.time() + self.delay, data))
            chunks.put_nowait((loop.time() + self.delay, b""))
            await delivery
        finally:
            delivery.cancel()


def _via(proxy: LatencyProxy, redis_url: str) -> str:
    """`redis_url` with its host and port replaced by the proxy's."""
    parts = urlsplit(redis_url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


async def _next_slot(client: aioredis.Redis, key: str) -> int:
    value = await client.get(key)
    assert value is not None, f"the budget wrote no {key}"
    return int(value)


async def test_a_redis_30_ms_away_still_spends_one_slot_per_request(redis_url: str, redis_prefix: str) -> None:
    parts = urlsplit(redis_url)
    limits = RateLimits()  # eMAG's 3 requests/s
    interval_us = limits.interval("default") * 1_000_000
    direct = aioredis.Redis.from_url(redis_url)
    async with (
        LatencyProxy((parts.hostname or "127.0.0.1", parts.port or 6379), delay=0.03) as proxy,
        RedisRateBudget(_via(proxy, redis_url), limits, key_prefix=redis_prefix) as budget,
    ):
        key = budget.key("main", "default")
        await budget.acquire("main")
        first = await _next_slot(direct, key)
        for _ in range(12):
            await budget.acquire("main")
        last = await _next_slot(direct, key)
    await direct.aclose()
    # The key holds the account's next free slot: how far 12 requests moved it is how much of eMAG's budget
    # they used. Before the fix every request gave up two slots for the Redis round trip (36 slots, 1 req/s).
    slots = (last - first) / interval_us
    assert slots <= 13, f"12 requests used {slots:.1f} slots = {12 / slots * 3:.2f} requests/s of a 3/s budget"


@pytest.mark.timeout(15)
async def test_a_redis_that_never_answers_fails_the_request_with_an_error_that_says_what_to_do() -> None:
    async with BlackHole() as hole, RedisRateBudget(hole.url()) as budget:
        with pytest.raises(EmagRateBudgetError) as raised:
            await budget.acquire("main")
        assert str(raised.value) == (
            f"Redis at redis://127.0.0.1:{hole.port}/0 did not answer within 2s (the shared rate budget of "
            "account main): check REDIS_URL and that Redis is up, or unset REDIS_URL to use an in-process budget"
        )
        # After a 429 the client pushes the shared budget back; that call must not hang either.
        with pytest.raises(EmagRateBudgetError):
            await budget.penalize("main", "default", 1.0)


@pytest.mark.timeout(15)
async def test_a_redis_that_refuses_the_connection_fails_with_the_same_advice() -> None:
    async with BlackHole() as hole:
        closed_port_url = hole.url()
    async with RedisRateBudget(closed_port_url) as budget:
        with pytest.raises(EmagRateBudgetError, match=r"failed \(ConnectionError: .*\): check REDIS_URL"):
            await budget.acquire("main")


@pytest.mark.timeout(15)
async def test_the_redis_password_never_reaches_the_error_or_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with BlackHole() as hole, RedisRateBudget(hole.url(userinfo=f":{PASSWORD}@")) as budget:
        with pytest.raises(EmagRateBudgetError) as raised:
            await budget.acquire("main")
    error = raised.value
    assert f"Redis at redis://:***@127.0.0.1:{hole.port}/0 did not answer" in str(error)
    restored = pickle.loads(pickle.dumps(error))  # Celery pickles a task's exception
    for text in (str(error), repr(error), str(restored), repr(vars(error)), caplog.text):
        assert PASSWORD not in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@redis.internal:6380/2", "redis://:***@redis.internal:6380/2"),
        ("rediss://app:s3cret@cache.example.com/0?ssl_cert_reqs=none", "rediss://app:***@cache.example.com/0"),
        ("redis://127.0.0.1:6379/0?password=s3cret", "redis://127.0.0.1:6379/0"),
        ("redis://app@127.0.0.1", "redis://app@127.0.0.1"),
    ],
)
def test_a_redis_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
