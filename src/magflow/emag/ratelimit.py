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

eMAG documents its limits per account, but whether MAIN and FBE (two logins on one base URL) share one budget,
the client IP's, is unverified. Pacing both together always would halve a two-account sync when they do not,
so the budget learns it instead: accounts are bound to the host they call (`bind`), and when eMAG refuses
(429) requests SHARED_AFTER_REFUSALS times within REFUSAL_WINDOW_SECONDS while another account of the same host
was active, those accounts draw from one budget for that host and bucket for the next SHARED_MEMORY_SECONDS
(then they try their own budgets again). Separate budgets see a stray refusal at most, so they keep their pace.
The Redis budget keeps what it learns in Redis, so every process paces the accounts together at once.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
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
# Learning that accounts share eMAG's budget. "Active": reserved a slot this recently (eMAG's windows are 1 and
# 3 seconds). A shared budget refuses about every other request while both accounts run: in ten trials the first
# three refusals came within 2 s of each other, 2.7 s after the start at the latest. Separate budgets see a stray
# 429 now and then (a request that reached eMAG 40 ms late on a busy machine: about one in 100 requests on a loaded
# test machine), seldom two within 3 s and practically never three. A wrong guess costs at most
# SHARED_MEMORY_SECONDS of the two accounts sharing one pace; a right one costs three 429s per SHARED_MEMORY_SECONDS.
ACTIVE_SECONDS = 3.0
SHARED_AFTER_REFUSALS = 3
REFUSAL_WINDOW_SECONDS = 3.0
SHARED_MEMORY_SECONDS = 600.0
log = logging.getLogger("magflow.emag")


class RateBudget(abc.ABC):
    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._hosts: dict[str, str] = {}
        # (host, bucket) -> monotonic time until which this process knows the host's accounts share one budget
        self._shared_until: dict[tuple[str, str], float] = {}

    def bind(self, account: str, base_url: str) -> None:
        """Tell the budget which host `account`'s requests go to: accounts of one host can learn, from eMAG's
        refusals, that they share its budget (see the module docstring)."""
        self._hosts[account] = host_of(base_url)

    def shares(self, account: str, bucket: Bucket = "default") -> bool:
        """Whether this process paces `account` together with the other accounts of its host, in `bucket`."""
        host = self._hosts.get(account)
        return host is not None and self._shared_until.get((host, bucket), 0.0) > time.monotonic()

    @abc.abstractmethod
    async def reserve(self, account: str, bucket: Bucket, weight: float = 1.0) -> float:
        """Reserve the next slot, `weight` intervals long; return how many seconds from now it starts."""

    @abc.abstractmethod
    async def penalize(self, account: str, bucket: Bucket, seconds: float) -> None:
        """Push the account's next free slot at least `seconds` into the future (after a 429), so every
        process sharing this budget slows down, not only the one that was refused."""

    async def refused(self, account: str, bucket: Bucket, seconds: float) -> None:
        """eMAG answered 429 to `account`: learn from it (see the module docstring), then `penalize`."""
        await self.penalize(account, bucket, seconds)

    async def acquire(self, account: str, bucket: Bucket = "default", weight: float = 1.0) -> float:
        """Wait for this account's next slot in `bucket`; return the seconds waited.

        `weight` > 1 leaves extra room after this request: the client asks for it when the request is
        likely to leave late (a new connection, a cold process), so the requests after it cannot bunch
        up with it inside one of eMAG's windows."""
        waited = 0.0
        tolerance = self.limits.lateness_tolerance(bucket) + (weight - 1.0) * self.limits.interval(bucket)
        for _ in range(MAX_RESERVATIONS):
            wait = max(0.0, await self.reserve(account, bucket, weight))
            shared = self.shares(account, bucket)
            # Lateness counts from the moment the answer arrived, not from before the reserve call: the slot
            # was granted during the round trip, and a Redis 30 ms away would otherwise make every request
            # "late" and burn all its reservations (a third of the budget). What this process alone adds
            # is oversleeping its slot, and that is what the tolerance guards.
            slot = time.monotonic() + wait
            if wait > 0:
                await asyncio.sleep(wait)
            waited += wait
            if self.shares(account, bucket) != shared:
                # Learned while waiting that the accounts share eMAG's budget (or that the sharing expired): this
                # slot belongs to a budget no longer in use, take one in the right one.
                continue
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


@dataclass
class _Host:
    """What an in-process budget knows of the accounts calling one host, in one bucket."""

    last_reserved: dict[str, float] = field(default_factory=dict)  # account -> monotonic time
    refusals: int = 0
    refusals_since: float = 0.0


class InProcessRateBudget(RateBudget):
    """For one process (no Redis configured). Thread-safe, so several event loops may share it."""

    def __init__(self, limits: RateLimits | None = None) -> None:
        super().__init__(limits or RateLimits())
        self._lock = threading.Lock()
        self._next: dict[tuple[str, str], float] = {}
        self._seen: dict[tuple[str, str], _Host] = {}

    async def reserve(self, account: str, bucket: Bucket, weight: float = 1.0) -> float:
        interval = self.limits.interval(bucket) * weight
        with self._lock:
            now = time.monotonic()
            host = self._hosts.get(account)
            if host is not None:
                self._seen.setdefault((host, bucket), _Host()).last_reserved[account] = now
            key = self._slot_key(account, bucket)
            slot = max(now, self._next.get(key, 0.0))
            self._next[key] = slot + interval
        return slot - now

    async def penalize(self, account: str, bucket: Bucket, seconds: float) -> None:
        with self._lock:
            key = self._slot_key(account, bucket)
            self._next[key] = max(self._next.get(key, 0.0), time.monotonic() + seconds)

    async def refused(self, account: str, bucket: Bucket, seconds: float) -> None:
        with self._lock:
            learned = self._learn(account, bucket, time.monotonic())
        if learned:
            _warn_shared(account, self._hosts[account], bucket)
        await self.penalize(account, bucket, seconds)

    def _slot_key(self, account: str, bucket: Bucket) -> tuple[str, str]:
        return (f"@{self._hosts[account]}", bucket) if self.shares(account, bucket) else (account, bucket)

    def _learn(self, account: str, bucket: Bucket, now: float) -> bool:
        """Count a refusal that came while another account of the host was active; True when it makes the
        accounts of the host share one budget."""
        host = self._hosts.get(account)
        if host is None or self.shares(account, bucket):
            return False
        seen = self._seen.setdefault((host, bucket), _Host())
        if not any(other != account and now - at <= ACTIVE_SECONDS for other, at in seen.last_reserved.items()):
            return False
        if now - seen.refusals_since > REFUSAL_WINDOW_SECONDS:
            seen.refusals, seen.refusals_since = 0, now
        seen.refusals += 1
        if seen.refusals < SHARED_AFTER_REFUSALS:
            return False
        seen.refusals = 0
        self._shared_until[(host, bucket)] = now + SHARED_MEMORY_SECONDS
        return True


# KEYS[1] the account's next free slot (µs, Redis clock). With a bound host also: KEYS[2] the host's shared next
# slot, KEYS[3] the flag "the host's accounts share one budget" (its TTL is how long that holds), KEYS[4] a hash
# account -> its last reservation (µs), KEYS[5] the refusals counted towards the flag.
# ARGV: interval µs, penalty µs, ttl ms, max ahead µs, mode ("reserve", "penalize" or "refused"), account,
# active µs, refusals needed, refusal window ms, sharing memory ms.
# A stored slot that is not a number, or further than max-ahead past now, is ignored (next = now); a key of the
# wrong type is replaced. Reserve: slot = max(now, next); next = slot + interval. Penalize and refused:
# next = max(next, now + penalty); refused first counts the refusal when another account of the host reserved a
# slot within `active`, and sets the flag once `refusals needed` came within the window.
# Returns {µs to the slot (0 unless reserving), how far ahead an ignored value was in ms (-1: not a number,
# 0: none ignored), ms the sharing still holds (0: not shared), 1 when this call set the flag}.
_RESERVE_LUA = """
local function replaced(command, key, ...)
  local result = redis.pcall(command, key, ...)
  if type(result) == 'table' and result.err then
    redis.call('DEL', key)
    result = redis.call(command, key, ...)
  end
  return result
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local penalty = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local horizon = tonumber(ARGV[4])
local mode = ARGV[5]
local slot_key = KEYS[1]
local shared, learned = 0, 0
if #KEYS > 1 then
  local account, memory = ARGV[6], tonumber(ARGV[10])
  shared = redis.call('PTTL', KEYS[3])
  if shared == -1 or shared > memory then
    redis.call('PEXPIRE', KEYS[3], memory)
    shared = memory
  end
  shared = math.max(shared, 0)
  if mode == 'reserve' then
    replaced('HSET', KEYS[4], account, string.format('%.0f', now))
    redis.call('PEXPIRE', KEYS[4], 60000)
  elseif mode == 'refused' and shared == 0 then
    local seen = redis.pcall('HGETALL', KEYS[4])
    local others = false
    if type(seen) == 'table' and not seen.err then
      for i = 1, #seen, 2 do
        local at = tonumber(seen[i + 1])
        if seen[i] ~= account and at ~= nil and at >= now - tonumber(ARGV[7]) then
          others = true
        end
      end
    end
    if others then
      local count = replaced('INCR', KEYS[5])
      if count == 1 then
        redis.call('PEXPIRE', KEYS[5], tonumber(ARGV[9]))
      end
      if count >= tonumber(ARGV[8]) then
        redis.call('DEL', KEYS[5])
        redis.call('SET', KEYS[3], '1', 'PX', memory)
        shared, learned = memory, 1
      end
    end
  end
  if shared > 0 then
    slot_key = KEYS[2]
  end
end
local stored = redis.pcall('GET', slot_key)
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
if mode ~= 'reserve' then
  local pushed = math.max(nxt, now + penalty)
  redis.call('SET', slot_key, string.format('%.0f', pushed), 'PX', ttl + math.floor(penalty / 1000))
  return {0, ignored, shared, learned}
end
local slot = math.max(now, nxt)
local expiry = ttl + math.floor((slot - now) / 1000)
redis.call('SET', slot_key, string.format('%.0f', slot + interval), 'PX', expiry)
return {slot - now, ignored, shared, learned}
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

    def _keys(self, account: str, bucket: Bucket) -> list[str]:
        own = self.key(account, bucket)
        host = self._hosts.get(account)
        if host is None:
            return [own]
        group = f"{host}:{bucket}"
        prefix = self.key_prefix
        return [
            own,
            self.key(f"@{host}", bucket),
            f"{prefix}:emag-shared:{group}",
            f"{prefix}:emag-active:{group}",
            f"{prefix}:emag-refusals:{group}",
        ]

    async def _call(self, account: str, bucket: Bucket, mode: str, seconds: float = 0.0, weight: float = 1.0) -> int:
        interval_us = round(self.limits.interval(bucket) * weight * MICROS)
        ttl_ms = 60_000 + interval_us // 1000
        penalty_us = round(min(seconds, MAX_PENALTY_SECONDS) * MICROS)
        keys = self._keys(account, bucket)
        args = [
            interval_us, penalty_us, ttl_ms, round(MAX_AHEAD_SECONDS * MICROS), mode, account,
            round(ACTIVE_SECONDS * MICROS), SHARED_AFTER_REFUSALS, round(REFUSAL_WINDOW_SECONDS * 1000),
            round(SHARED_MEMORY_SECONDS * 1000),
        ]  # fmt: skip
        try:
            # The socket timeouts bound each step; this bounds the whole call (connect, a reconnect, loading
            # the script), whatever the installed redis-py does about retries.
            async with asyncio.timeout(self.timeout_seconds):
                wait_us, ignored_ms, shared_ms, learned = await self._script()(keys=keys, args=args)
        except (TimeoutError, aioredis.TimeoutError):
            raise self._error(account, f"did not answer within {self.timeout_seconds:g}s") from None
        except (aioredis.RedisError, OSError) as exc:
            raise self._error(account, f"failed ({type(exc).__name__}: {exc})") from None
        self._note_shared(account, bucket, int(shared_ms))
        if ignored_ms:
            _warn_ignored(keys[1] if shared_ms else keys[0], int(ignored_ms))
        if learned:
            _warn_shared(account, self._hosts[account], bucket)
        return int(wait_us)

    def _note_shared(self, account: str, bucket: Bucket, shared_ms: int) -> None:
        host = self._hosts.get(account)
        if host is None:
            return
        if shared_ms > 0:
            self._shared_until[(host, bucket)] = time.monotonic() + shared_ms / 1000
        else:
            self._shared_until.pop((host, bucket), None)

    def _error(self, account: str, reason: str) -> EmagRateBudgetError:
        password = urlsplit(self.redis_url).password
        for secret in {password, unquote(password)} if password else ():
            reason = reason.replace(secret, "***")  # redis-py does not echo it; this keeps it so
        return EmagRateBudgetError(account=account, redis_url=redacted_url(self.redis_url), reason=reason)

    async def reserve(self, account: str, bucket: Bucket, weight: float = 1.0) -> float:
        return await self._call(account, bucket, "reserve", weight=weight) / MICROS

    async def penalize(self, account: str, bucket: Bucket, seconds: float) -> None:
        if seconds > 0:
            await self._call(account, bucket, "penalize", seconds)

    async def refused(self, account: str, bucket: Bucket, seconds: float) -> None:
        await self._call(account, bucket, "refused", max(0.0, seconds))

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


def _warn_shared(account: str, host: str, bucket: Bucket) -> None:
    log.warning(
        "eMAG refused requests of account %s (429) while another account calling %s was active: the accounts "
        "seem to share one rate budget (per IP, not per account), so their %s requests are paced together for "
        "the next %.0f minutes",
        account, host, "order" if bucket == "orders" else "non-order", SHARED_MEMORY_SECONDS / 60,
    )  # fmt: skip


def host_of(base_url: str) -> str:
    """The host (and port) a base URL's requests go to: the accounts that may share eMAG's budget."""
    parts = urlsplit(base_url)
    return (parts.hostname or base_url).lower() + (f":{parts.port}" if parts.port else "")


def redacted_url(url: str) -> str:
    """`url` fit for an error message: the password becomes `***` and the query (which may carry one) is dropped."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if at and parts.password is not None:
        userinfo = f"{parts.username or ''}:***"
    return urlunsplit((parts.scheme, f"{userinfo}{at}{host}", parts.path, "", ""))
