"""eMAG's per-account rate limits over sliding windows, and the request counters tests assert on."""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Limit:
    per_second: float | None
    per_minute: int | None


@dataclass
class _Bucket:
    admitted: deque[float] = field(default_factory=deque)  # monotonic times of requests let through
    arrivals: list[float] = field(default_factory=list)  # monotonic times of every request, 429s included
    per_wall_second: dict[int, int] = field(default_factory=dict)
    rejected: int = 0


@dataclass
class Decision:
    allowed: bool
    headers: list[tuple[bytes, bytes]]


class RateLimiter:
    """A request is refused with 429 when the account already had `per_second` admitted requests in the
    last second, or `per_minute` in the last 60 s. Refused requests are counted (they reached the
    account) but do not consume budget, so a client that backs off recovers."""

    def __init__(self, limits: dict[str, Limit]) -> None:
        self._lock = threading.Lock()
        self.limits = limits
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def reset_counters(self) -> None:
        with self._lock:
            self._buckets.clear()

    def check(self, account: str, bucket: str) -> Decision:
        now, wall = time.monotonic(), int(time.time())
        limit = self.limits[bucket]
        with self._lock:
            state = self._buckets.setdefault((account, bucket), _Bucket())
            state.arrivals.append(now)
            state.per_wall_second[wall] = state.per_wall_second.get(wall, 0) + 1
            if limit.per_second is None and limit.per_minute is None:
                return Decision(True, [])
            admitted = state.admitted
            while admitted and admitted[0] <= now - 60.0:
                admitted.popleft()
            in_second = len(admitted) - bisect.bisect_right(admitted, now - 1.0)
            in_3_seconds = len(admitted) - bisect.bisect_right(admitted, now - 3.0)
            over = (limit.per_second is not None and in_second >= limit.per_second) or (
                limit.per_minute is not None and len(admitted) >= limit.per_minute
            )
            if over:
                state.rejected += 1
            else:
                admitted.append(now)
                in_second, in_3_seconds = in_second + 1, in_3_seconds + 1
            in_minute = len(admitted)
        # Kong-style headers; eMAG's documentation shows the 3-second pair, the others are Kong's defaults.
        headers: list[tuple[bytes, bytes]] = []
        if limit.per_second is not None:
            per_second, per_3 = int(limit.per_second), int(limit.per_second * 3)
            headers += [
                (b"x-ratelimit-limit-second", str(per_second).encode()),
                (b"x-ratelimit-remaining-second", str(max(0, per_second - in_second)).encode()),
                (b"x-ratelimit-limit-3second", str(per_3).encode()),
                (b"x-ratelimit-remaining-3second", str(max(0, per_3 - in_3_seconds)).encode()),
            ]
        if limit.per_minute is not None:
            headers += [
                (b"x-ratelimit-limit-minute", str(limit.per_minute).encode()),
                (b"x-ratelimit-remaining-minute", str(max(0, limit.per_minute - in_minute)).encode()),
            ]
        return Decision(not over, headers)

    def requests_per_second(self, account: str, bucket: str) -> dict[int, int]:
        with self._lock:
            state = self._buckets.get((account, bucket))
            return dict(state.per_wall_second) if state else {}

    def max_in_any_second(self, account: str, bucket: str) -> int:
        with self._lock:
            state = self._buckets.get((account, bucket))
            times = list(state.arrivals) if state else []
        best, start = 0, 0
        for end, moment in enumerate(times):
            while moment - times[start] >= 1.0:
                start += 1
            best = max(best, end - start + 1)
        return best

    def count_429(self, account: str, bucket: str) -> int:
        with self._lock:
            state = self._buckets.get((account, bucket))
            return state.rejected if state else 0
