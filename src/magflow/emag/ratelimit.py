"""A proactive request budget per account and bucket, so a normal scan never meets a 429.

Requests are spaced evenly: each `acquire` reserves the next free slot (`interval` seconds after the
previous one) and sleeps until it. Even spacing keeps every sliding window — eMAG's per-second and
per-minute — under its limit, and a long scan uses (1 - safety_margin) of the budget.

`RedisRateBudget` keeps the next free slot in Redis and reserves it with one Lua script timed by Redis's
own clock, so the API server, every Celery worker and the CLI share one budget per account. Every Redis call
is bounded by `timeout_seconds`; when Redis fails or does not answer in time the budget raises
`EmagRateBudgetError` and the request is not sent. It does not fall back to pacing in-process: the processes
sharing the account would each spend the whole budget and exceed eMAG's limit, while a failed sync resumes
from its checkpoint once Redis is back.

Whoever can write to that Redis could push a budget key an hour ahead and stall every sync. So a key further
ahead of Redis's clock than anything magflow writes (MAX_AHEAD_SECONDS: a queue of reservations plus a 429's
penalty, itself capped at MAX_PENALTY_SECONDS), or one that is not a number, is not believed: the slot is taken
from the clock and a warning is logged. Protect Redis itself with a password or an ACL user and TLS in REDIS_URL.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
import time
import weakref
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from magflow.emag.config import Bucket, RateLimits
from magflow.emag.errors import EmagRateBudgetError

MICROS = 1_000_000
MAX_RESERVATIONS = 3
# A 429's penalty never pushes the budget further than this: eMAG's longest window is a minute.
MAX_PENALTY_SECONDS = 60.0
# How far ahead of Redis's clock a budget key may legitimately be: the penalty plus a minute of queued
# reservations (180 of them at 3 requests/s). A key further ahead was not written by magflow's rules.
MAX_AHEAD_SECONDS = MAX_PENALTY_SECONDS + 60.0
DEFAULT_REDIS_TIMEOUT_SECONDS = 2.0
log = logging.getLogger("magflow.emag")


class RateBudget(abc.ABC):
    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits

    @abc.abstractmethod
    async def reserve(self, account: str, bucket: Bucket, weight: float = 1.0) -> float:
        """Reserve the next slot, `weight` intervals long; return how many seconds from now it starts."""

    @abc.abstractmethod
    async def penalize(self, account: str, bucket: Bucket, seconds: float) -> None:
        """Push the account's next free slot at least `seconds` into the future (after a 429), so every
        process sharing this budget slows down, not only the one that was refused."""

    async def acquire(self, account: str, bucket: Bucket = "default", weight: float = 1.0) -> float:
        """Wait for this account's next slot in `bucket`; return the seconds waited.

        `weight` > 1 leaves extra room after this request: the client asks for it when the request is
        likely to leave late (a new connection, a cold process), so the requests after it cannot bunch
        up with it inside one of eMAG's windows."""
        waited = 0.0
        tolerance = self.limits.lateness_tolerance(bucket) + (weight - 1.0) * self.limits.interval(bucket)
        for _ in range(MAX_RESERVATIONS):
            wait = max(0.0, await self.reserve(account, bucket, weight))
            # Lateness counts from the moment the answer arrived, not from before the reserve call: the slot
            # was granted during the round trip, and a Redis 30 ms away would otherwise make every request
            # "late" and burn all its reservations (a third of the budget). What this process alone adds
            # is oversleeping its slot, and that is what the tolerance guards.
            slot = time.monotonic() + wait
            if wait > 0:
                await asyncio.sleep(wait)
            waited += wait
            if time.monotonic() - slot <= tolerance:
                break
            # This process woke up too late (a busy CPU, a long GC pause): sending now could put this
            # request in one window with the ones reserved after it. Give the slot up, take a new one.
            log.debug("rate budget slot of account %s missed by more than %.0f ms", account, tolerance * 1000)
        return waited

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class InProcessRateBudget(RateBudget):
    """For one process (no Redis configured). Thread-safe, so several event loops may share it."""

    def __init__(self, limits: RateLimits | None = None) -> None:
        super().__init__(limits or RateLimits())
        self._lock = threading.Lock()
        self._next: dict[tuple[str, str], float] = {}

    async def reserve(self, account: str, bucket: Bucket, weight: float = 1.0) -> float:
        interval = self.limits.interval(bucket) * weight
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get((account, bucket), 0.0))
            self._next[(account, bucket)] = slot + interval
        return slot - now

    async def penalize(self, account: str, bucket: Bucket, seconds: float) -> None:
        with self._lock:
            key = (account, bucket)
            self._next[key] = max(self._next.get(key, 0.0), time.monotonic() + seconds)


# KEYS[1] next free slot (µs, Redis clock). ARGV: interval µs, penalty µs (0 = reserve), ttl ms, max ahead µs.
# A stored value that is not a number, or further than max-ahead past now, is ignored (next = now).
# Reserve: slot = max(now, next); next = slot + interval. Penalize: next = max(next, now + penalty).
# Returns {seconds-to-slot µs (0 for a penalty), how far ahead an ignored value was in ms (-1: not a number,
# 0: none ignored)}.
_RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local penalty = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local horizon = tonumber(ARGV[4])
local stored = redis.pcall('GET', KEYS[1])
local nxt = 0
local ignored = 0
if type(stored) == 'string' then
  nxt = tonumber(stored)
  if nxt == nil or nxt ~= nxt then
    nxt, ignored = 0, -1
  elseif nxt > now + horizon then
    ignored = math.min(math.floor((nxt - now) / 1000), 1e15)
    nxt = 0
  end
elseif type(stored) == 'table' then
  ignored = -1
end
if penalty > 0 then
  local pushed = math.max(nxt, now + penalty)
  redis.call('SET', KEYS[1], string.format('%.0f', pushed), 'PX', ttl + math.floor(penalty / 1000))
  return {0, ignored}
end
local slot = math.max(now, nxt)
local expiry = ttl + math.floor((slot - now) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', slot + interval), 'PX', expiry)
return {slot - now, ignored}
"""


class RedisRateBudget(RateBudget):
    """One budget per account and bucket for every process of a deployment, kept in Redis.

    The Redis connection is opened lazily inside the running event loop (a Celery task that runs its
    own loop gets its own connection). Each reservation must complete within `timeout_seconds` (connect
    included), or `EmagRateBudgetError` is raised."""

    def __init__(
        self,
        redis_url: str,
        limits: RateLimits | None = None,
        key_prefix: str = "magflow",
        *,
        timeout_seconds: float = DEFAULT_REDIS_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(limits or RateLimits())
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.timeout_seconds = timeout_seconds
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._scripts: dict[int, Any] = {}

    def key(self, account: str, bucket: Bucket) -> str:
        return f"{self.key_prefix}:emag-budget:{account}:{bucket}"

    def _script(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = aioredis.Redis.from_url(
                self.redis_url,
                socket_timeout=self.timeout_seconds,
                socket_connect_timeout=self.timeout_seconds,
                # One immediate reconnect when Redis closed an idle connection; never a backoff, which would
                # only spend the time the caller's slot is waiting on.
                retry=Retry(NoBackoff(), 1),
            )
            self._clients[loop] = client
            self._scripts[id(client)] = client.register_script(_RESERVE_LUA)
        return self._scripts[id(client)]

    async def _call(self, account: str, bucket: Bucket, penalty: float, weight: float = 1.0) -> int:
        interval_us = round(self.limits.interval(bucket) * weight * MICROS)
        ttl_ms = 60_000 + interval_us // 1000
        penalty_us = round(min(penalty, MAX_PENALTY_SECONDS) * MICROS)
        horizon_us = round(MAX_AHEAD_SECONDS * MICROS)
        key = self.key(account, bucket)
        try:
            # The socket timeouts bound each step; this bounds the whole call (connect, a reconnect, loading
            # the script), whatever the installed redis-py does about retries.
            async with asyncio.timeout(self.timeout_seconds):
                wait_us, ignored_ms = await self._script()(
                    keys=[key], args=[interval_us, penalty_us, ttl_ms, horizon_us]
                )
        except (TimeoutError, aioredis.TimeoutError):
            raise self._error(account, f"did not answer within {self.timeout_seconds:g}s") from None
        except (aioredis.RedisError, OSError) as exc:
            raise self._error(account, f"failed ({type(exc).__name__}: {exc})") from None
        if ignored_ms:
            _warn_ignored(key, int(ignored_ms))
        return int(wait_us)

    def _error(self, account: str, reason: str) -> EmagRateBudgetError:
        password = urlsplit(self.redis_url).password
        for secret in {password, unquote(password)} if password else ():
            reason = reason.replace(secret, "***")  # redis-py does not echo it; this keeps it so
        return EmagRateBudgetError(account=account, redis_url=redacted_url(self.redis_url), reason=reason)

    async def reserve(self, account: str, bucket: Bucket, weight: float = 1.0) -> float:
        return await self._call(account, bucket, 0.0, weight) / MICROS

    async def penalize(self, account: str, bucket: Bucket, seconds: float) -> None:
        if seconds > 0:
            await self._call(account, bucket, seconds)

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            self._scripts.pop(id(client), None)
            await client.aclose()


def _warn_ignored(key: str, ahead_ms: int) -> None:
    held = "a value that is not a number" if ahead_ms < 0 else f"a slot {ahead_ms / 1000:.0f} s ahead of its clock"
    log.warning(
        "rate budget key %s in Redis held %s, more than magflow ever sets (%.0f s): ignored it. Something other "
        "than magflow writes to this Redis; protect it with a password or an ACL user in REDIS_URL",
        key, held, MAX_AHEAD_SECONDS,
    )  # fmt: skip


def redacted_url(url: str) -> str:
    """`url` fit for an error message: the password becomes `***` and the query (which may carry one) is dropped."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if at and parts.password is not None:
        userinfo = f"{parts.username or ''}:***"
    return urlunsplit((parts.scheme, f"{userinfo}{at}{host}", parts.path, "", ""))
