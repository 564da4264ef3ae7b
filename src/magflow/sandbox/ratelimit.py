"""eMAG's rate limits, in the models eMAG might apply them, and the request counters tests assert on.

eMAG documents 3 requests/s (12/s for orders) per account and says invalid requests count; it does not say
whether the budget is per login or per client IP, whether refused requests use it up, or whether the windows
slide or are aligned to the clock. `RateModel` makes each of those a switch so a client can be tried against all.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

RateScope = Literal["account", "ip"]
RateWindow = Literal["sliding", "fixed"]
RATE_SCOPES: tuple[RateScope, ...] = ("account", "ip")
RATE_WINDOWS: tuple[RateWindow, ...] = ("sliding", "fixed")
SHARED_BY_IP = "*ip*"  # the budget key of every login when rate_scope="ip"


@dataclass
class Limit:
    per_second: float | None
    per_minute: int | None


@dataclass(frozen=True)
class RateModel:
    """How the limits are applied.

    - rate_scope: "account" (each login has its own budget) or "ip" (MAIN and FBE share one: the budget is the
      client's IP's; unverified, so a client must survive it).
    - count_rejected: a refused request (429) uses budget too, so a client that hammers never recovers.
    - rate_window: "sliding" (the last 1 s / 60 s) or "fixed" (clock-aligned seconds and minutes: a burst at the
      end of one second and another at the start of the next both pass).
    - limit_before_auth: the limit is checked before the credentials, so a wrong password uses budget (of the
      login it names).
    - retry_after: a 429 carries `Retry-After` (whole seconds until a request would pass); eMAG documents none."""

    rate_scope: RateScope = "account"
    count_rejected: bool = False
    rate_window: RateWindow = "sliding"
    limit_before_auth: bool = False
    retry_after: bool = False

    def checked(self) -> RateModel:
        if self.rate_scope not in RATE_SCOPES:
            raise ValueError(f"rate_scope must be one of {RATE_SCOPES}, not {self.rate_scope!r}")
        if self.rate_window not in RATE_WINDOWS:
            raise ValueError(f"rate_window must be one of {RATE_WINDOWS}, not {self.rate_window!r}")
        return self


@dataclass
class _Budget:
    admitted: deque[float] = field(default_factory=deque)  # monotonic times of requests that used budget
    second: int = -1  # the clock second and minute the fixed-window counts belong to
    in_second: int = 0
    minute: int = -1
    in_minute: int = 0


@dataclass
class _Counters:
    arrivals: list[float] = field(default_factory=list)  # monotonic times of every request, 429s included
    per_wall_second: dict[int, int] = field(default_factory=dict)
    rejected: int = 0


@dataclass
class Decision:
    allowed: bool
    headers: list[tuple[bytes, bytes]]


class RateLimiter:
    """A request is refused with 429 when its budget already had `per_second` requests in the current second
    or `per_minute` in the current minute (sliding or clock-aligned, as the model says). Every request is
    counted for the account it reached, whatever budget it was charged to."""

    def __init__(self, limits: dict[str, Limit], model: RateModel | None = None) -> None:
        self._lock = threading.Lock()
        self.limits = limits
        self.model = model or RateModel()
        self._budgets: dict[tuple[str, str], _Budget] = {}
        self._counters: dict[tuple[str, str], _Counters] = {}

    def reset_counters(self) -> None:
        with self._lock:
            self._budgets.clear()
            self._counters.clear()

    def check(self, account: str, bucket: str) -> Decision:
        now, wall = time.monotonic(), time.time()
        limit, model = self.limits[bucket], self.model
        with self._lock:
            counters = self._counters.setdefault((account, bucket), _Counters())
            counters.arrivals.append(now)
            second = int(wall)
            counters.per_wall_second[second] = counters.per_wall_second.get(second, 0) + 1
            if limit.per_second is None and limit.per_minute is None:
                return Decision(True, [])
            owner = account if model.rate_scope == "account" else SHARED_BY_IP
            budget = self._budgets.setdefault((owner, bucket), _Budget())
            _forget(budget, now, wall)
            over = _over(budget, limit, now, model.rate_window)
            if over:
                counters.rejected += 1
            if not over or model.count_rejected:
                _use(budget, now)
            headers = _headers(budget, limit, now, model.rate_window)
            if over and model.retry_after:
                wait = _wait(budget, limit, now, wall, model.rate_window)
                headers.append((b"retry-after", str(max(1, math.ceil(wait))).encode()))
        return Decision(not over, headers)

    def requests_per_second(self, account: str, bucket: str) -> dict[int, int]:
        with self._lock:
            counters = self._counters.get((account, bucket))
            return dict(counters.per_wall_second) if counters else {}

    def max_in_any_second(self, account: str, bucket: str) -> int:
        with self._lock:
            counters = self._counters.get((account, bucket))
            times = list(counters.arrivals) if counters else []
        best, start = 0, 0
        for end, moment in enumerate(times):
            while moment - times[start] >= 1.0:
                start += 1
            best = max(best, end - start + 1)
        return best

    def count_429(self, account: str, bucket: str) -> int:
        with self._lock:
            counters = self._counters.get((account, bucket))
            return counters.rejected if counters else 0


def _forget(budget: _Budget, now: float, wall: float) -> None:
    admitted = budget.admitted
    while admitted and admitted[0] <= now - 60.0:
        admitted.popleft()
    second, minute = int(wall), int(wall // 60)
    if second != budget.second:
        budget.second, budget.in_second = second, 0
    if minute != budget.minute:
        budget.minute, budget.in_minute = minute, 0


def _in_last(budget: _Budget, seconds: float, now: float) -> int:
    return len(budget.admitted) - bisect.bisect_right(budget.admitted, now - seconds)


def _over(budget: _Budget, limit: Limit, now: float, window: RateWindow) -> bool:
    if window == "fixed":
        in_second, in_minute = budget.in_second, budget.in_minute
    else:
        in_second, in_minute = _in_last(budget, 1.0, now), len(budget.admitted)
    return (limit.per_second is not None and in_second >= limit.per_second) or (
        limit.per_minute is not None and in_minute >= limit.per_minute
    )


def _use(budget: _Budget, now: float) -> None:
    budget.admitted.append(now)
    budget.in_second += 1
    budget.in_minute += 1


def _headers(budget: _Budget, limit: Limit, now: float, window: RateWindow) -> list[tuple[bytes, bytes]]:
    """Kong-style headers; eMAG's documentation shows the 3-second pair, the others are Kong's defaults."""
    fixed = window == "fixed"
    in_second = budget.in_second if fixed else _in_last(budget, 1.0, now)
    in_minute = budget.in_minute if fixed else len(budget.admitted)
    headers: list[tuple[bytes, bytes]] = []
    if limit.per_second is not None:
        per_second, per_3 = int(limit.per_second), int(limit.per_second * 3)
        headers += [
            (b"x-ratelimit-limit-second", str(per_second).encode()),
            (b"x-ratelimit-remaining-second", str(max(0, per_second - in_second)).encode()),
            (b"x-ratelimit-limit-3second", str(per_3).encode()),
            (b"x-ratelimit-remaining-3second", str(max(0, per_3 - _in_last(budget, 3.0, now))).encode()),
        ]
    if limit.per_minute is not None:
        headers += [
            (b"x-ratelimit-limit-minute", str(limit.per_minute).encode()),
            (b"x-ratelimit-remaining-minute", str(max(0, limit.per_minute - in_minute)).encode()),
        ]
    return headers


def _wait(budget: _Budget, limit: Limit, now: float, wall: float, window: RateWindow) -> float:
    """Seconds until a request would be admitted (for Retry-After)."""
    if window == "fixed":
        minute_full = limit.per_minute is not None and budget.in_minute >= limit.per_minute
        return (60 - wall % 60) if minute_full else (1 - wall % 1)
    waits = [0.0]
    admitted = budget.admitted
    for allowed, span in ((limit.per_second, 1.0), (limit.per_minute, 60.0)):
        if allowed is None:
            continue
        if _in_last(budget, span, now) >= allowed:
            # One request may pass once all but allowed-1 of those in the window have left it.
            waits.append(admitted[len(admitted) - math.ceil(allowed)] + span - now)
    return max(waits)
