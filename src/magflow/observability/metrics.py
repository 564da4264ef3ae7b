"""Per-request eMAG figures that only the process making the request knows: latency, 429s, budget waits.

The recording functions are called from the eMAG client on the event loop, so they only add to an
in-memory buffer under a lock (about a microsecond) and never raise. With `REDIS_URL` set, a daemon thread
flushes the buffered deltas to Redis every `FLUSH_SECONDS` (one pipeline), so `/metrics` served by any
process reports the sum over the API server, every worker and the CLI. Without Redis, the process's own
totals are reported. A failed flush keeps its deltas for the next attempt; nothing is counted twice.

Storage in Redis (one hash per family, fields joined by `SEP`): bucket counts are stored per bucket (not
cumulative, one HINCRBY per observation) and made cumulative when read.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

log = logging.getLogger(__name__)

LATENCY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, math.inf)
FLUSH_SECONDS = 1.0
DEFAULT_PREFIX = "magflow:metrics"
SEP = "\x1f"
REDIS_TIMEOUT_SECONDS = 0.5

Labels = tuple[str, ...]


def _bucket_label(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


BUCKET_LABELS = tuple(_bucket_label(b) for b in LATENCY_BUCKETS)


def _zeroes() -> dict[Labels, float]:
    return defaultdict(float)


@dataclass
class RequestFigures:
    """Totals (or deltas) of the three families, keyed by their label values."""

    buckets: dict[Labels, float] = field(default_factory=_zeroes)  # (account, route, status, le)
    latency_sum: dict[Labels, float] = field(default_factory=_zeroes)  # (account, route, status)
    rate_limited: dict[Labels, float] = field(default_factory=_zeroes)  # (account, bucket)
    wait_seconds: dict[Labels, float] = field(default_factory=_zeroes)  # (account, bucket)
    waits: dict[Labels, float] = field(default_factory=_zeroes)  # (account, bucket)

    def empty(self) -> bool:
        return not (self.buckets or self.latency_sum or self.rate_limited or self.wait_seconds or self.waits)

    def families(self) -> tuple[dict[Labels, float], ...]:
        """In the order of `FAMILIES`."""
        return self.buckets, self.latency_sum, self.rate_limited, self.wait_seconds, self.waits

    def merge(self, other: RequestFigures) -> None:
        for mine, theirs in zip(self.families(), other.families(), strict=True):
            for key, value in theirs.items():
                mine[key] += value


# Redis hash names (after the prefix) and how many label values each field holds.
FAMILIES: tuple[tuple[str, int], ...] = (
    ("emag_request_bucket", 4),
    ("emag_request_sum", 3),
    ("emag_rate_limited", 2),
    ("emag_budget_wait_sum", 2),
    ("emag_budget_wait_count", 2),
)
INTEGRAL = {"emag_request_bucket", "emag_rate_limited", "emag_budget_wait_count"}


class _Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.local = RequestFigures()  # everything this process recorded: the fallback without Redis
        self.pending = RequestFigures()  # not yet flushed to Redis
        self.redis_url: str | None = None
        self.prefix = DEFAULT_PREFIX
        self.configured = False
        self.thread: threading.Thread | None = None
        self.thread_pid = 0
        self.wake = threading.Event()
        self.client: redis.Redis | None = None

    def configure(self, redis_url: str | None, prefix: str) -> None:
        self.flush()
        with self.lock:
            self.pending = RequestFigures()  # what the old target could not take must not reach the new one
            self.redis_url = redis_url
            self.prefix = prefix
            self.configured = True
            if self.client is not None:
                self.client.close()
                self.client = None

    def ensure_configured(self) -> None:
        if self.configured:
            return
        url: str | None = None
        try:
            from magflow.config import get_settings

            url = get_settings().redis_url
        except Exception:  # settings a process cannot read are reported elsewhere; count in-process
            url = None
        with self.lock:
            if not self.configured:
                self.redis_url, self.configured = url, True

    def record(self, apply: Callable[[RequestFigures], None]) -> None:
        self.ensure_configured()
        with self.lock:
            apply(self.local)
            if self.redis_url:
                apply(self.pending)
        if self.redis_url:
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        # A forked worker inherits the parent's thread object but not the thread: start one per pid.
        if self.thread is not None and self.thread_pid == os.getpid() and self.thread.is_alive():
            return
        with self.lock:
            if self.thread is not None and self.thread_pid == os.getpid() and self.thread.is_alive():
                return
            self.thread_pid = os.getpid()
            self.client = None
            self.thread = threading.Thread(target=self._loop, name="magflow-metrics-flush", daemon=True)
            self.thread.start()

    def _loop(self) -> None:
        while True:
            self.wake.wait(FLUSH_SECONDS)
            self.wake.clear()
            self.flush()

    def _redis(self) -> redis.Redis:
        if self.client is None:
            assert self.redis_url is not None
            self.client = redis.Redis.from_url(
                self.redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
        return self.client

    def flush(self) -> bool:
        """Push pending deltas to Redis; True when nothing is left pending."""
        with self.lock:
            if self.pending.empty() or not self.redis_url:
                return True
            batch, self.pending = self.pending, RequestFigures()
            prefix = self.prefix
        try:
            pipe = self._redis().pipeline(transaction=False)
            for (family, _), values in zip(FAMILIES, batch.families(), strict=True):
                for labels, amount in values.items():
                    if family in INTEGRAL:
                        pipe.hincrby(f"{prefix}:{family}", SEP.join(labels), int(amount))
                    else:
                        pipe.hincrbyfloat(f"{prefix}:{family}", SEP.join(labels), amount)
            pipe.execute()
        except redis.RedisError as exc:
            with self.lock:
                batch.merge(self.pending)
                self.pending = batch
            log.warning("could not push eMAG request metrics to Redis (%s); will retry", exc)
            return False
        return True


_recorder = _Recorder()
atexit.register(_recorder.flush)


def configure_metrics(redis_url: str | None, *, prefix: str = DEFAULT_PREFIX) -> None:
    """Where request figures go: Redis shared by every process, or (None) this process only.

    Optional: without a call the first recording reads `REDIS_URL` from the settings."""
    _recorder.configure(redis_url, prefix)


def flush_metrics() -> bool:
    """Push buffered figures to Redis now (the scrape handler and tests call it); True when done."""
    return _recorder.flush()


def metrics_target() -> tuple[str | None, str]:
    """The Redis URL (None: in-process) and key prefix the figures are kept under."""
    _recorder.ensure_configured()
    return _recorder.redis_url, _recorder.prefix


def local_figures() -> RequestFigures:
    """A copy of this process's own totals."""
    with _recorder.lock:
        copy = RequestFigures()
        copy.merge(_recorder.local)
        return copy


def _le(seconds: float) -> str:
    for bound, label in zip(LATENCY_BUCKETS, BUCKET_LABELS, strict=True):
        if seconds <= bound:
            return label
    return BUCKET_LABELS[-1]


def record_emag_request(account: str, route: str, status: int | str, seconds: float) -> None:
    """One eMAG HTTP request answered (status code) or not (e.g. "timeout", "network") after `seconds`."""
    try:
        seconds = max(float(seconds), 0.0)
        labels = (str(account), str(route).strip("/"), str(status))
        le = _le(seconds)

        def apply(figures: RequestFigures) -> None:
            figures.buckets[(*labels, le)] += 1
            figures.latency_sum[labels] += seconds

        _recorder.record(apply)
    except Exception:  # metrics must never break a sync
        log.debug("record_emag_request failed", exc_info=True)


def record_rate_limit_hit(account: str, bucket: str) -> None:
    """eMAG answered HTTP 429 to this account in this rate bucket ("default" or "orders")."""
    try:
        labels = (str(account), str(bucket))

        def apply(figures: RequestFigures) -> None:
            figures.rate_limited[labels] += 1

        _recorder.record(apply)
    except Exception:
        log.debug("record_rate_limit_hit failed", exc_info=True)


def record_budget_wait(account: str, bucket: str, seconds: float) -> None:
    """A request waited `seconds` for its slot in the account's rate budget (0 counts as a wait too)."""
    try:
        labels = (str(account), str(bucket))
        seconds = max(float(seconds), 0.0)

        def apply(figures: RequestFigures) -> None:
            figures.wait_seconds[labels] += seconds
            figures.waits[labels] += 1

        _recorder.record(apply)
    except Exception:
        log.debug("record_budget_wait failed", exc_info=True)


def _split(field_name: bytes | str, parts: int) -> Labels | None:
    text = field_name.decode() if isinstance(field_name, bytes) else field_name
    labels = tuple(text.split(SEP))
    return labels if len(labels) == parts else None


def read_shared_figures(client: redis.Redis, prefix: str) -> RequestFigures:
    """Every process's totals as stored in Redis (raises redis.RedisError when Redis cannot answer)."""
    pipe = client.pipeline(transaction=False)
    for family, _ in FAMILIES:
        pipe.hgetall(f"{prefix}:{family}")
    stored: list[dict[bytes, bytes]] = pipe.execute()
    figures = RequestFigures()
    for (_, parts), raw, target in zip(FAMILIES, stored, figures.families(), strict=True):
        for key, value in raw.items():
            labels = tuple(key.decode().split(SEP))
            if len(labels) == parts:
                target[labels] += float(value)
    return figures
