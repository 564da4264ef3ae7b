"""What the client needs to know about one seller account, and the rate limits it must respect."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Bucket = Literal["default", "orders"]
DEFAULT_BASE_URL = "https://marketplace-api.emag.ro/api-3"
MIN_LATENESS_TOLERANCE = 0.01  # below this, re-reserving cannot help: every wake-up is a little late


@dataclass(frozen=True, slots=True)
class RateLimits:
    """eMAG's per-account limits (v4.4.7+): orders 12/s or 720/min, every other resource 3/s or 180/min.

    `safety_margin` keeps the client a little under the limit so that network jitter (a request sent on
    time but arriving 40 ms late, a new connection) never tips a request over a sliding window: at 3/s,
    0.04 leaves ~40 ms of slack per window and still uses 96% of the budget.
    """

    per_second: float = 3.0
    per_minute: int = 180
    orders_per_second: float = 12.0
    orders_per_minute: int = 720
    safety_margin: float = 0.04

    def __post_init__(self) -> None:
        if min(self.per_second, self.per_minute, self.orders_per_second, self.orders_per_minute) <= 0:
            raise ValueError("rate limits must be positive")
        if not 0 <= self.safety_margin < 1:
            raise ValueError("safety_margin must be in [0, 1)")

    def interval(self, bucket: Bucket) -> float:
        """Seconds between two requests of one account so that both the per-second and the per-minute
        limit hold: evenly spaced requests never bunch up inside any window."""
        per_second, per_minute = self._limits(bucket)
        return max(1.0 / per_second, 60.0 / per_minute) / (1.0 - self.safety_margin)

    def lateness_tolerance(self, bucket: Bucket) -> float:
        """How late a request may leave after its slot before it risks sharing eMAG's one-second window
        with the `per_second` requests reserved after it: the slack evenly spaced slots leave, with a
        part kept back for the delay between waking up and the request reaching eMAG."""
        per_second, _ = self._limits(bucket)
        return max(MIN_LATENESS_TOLERANCE, (int(per_second) * self.interval(bucket) - 1.0) * 0.6)

    def _limits(self, bucket: Bucket) -> tuple[float, int]:
        if bucket == "orders":
            return self.orders_per_second, self.orders_per_minute
        return self.per_second, self.per_minute


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One seller login. The password never appears in repr/str (see `__repr__`)."""

    account: str
    username: str
    password: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout_seconds: float = 120.0
    connect_timeout_seconds: float = 10.0
    max_attempts: int = 6
    deadline_seconds: float = 900.0
    detailed_log: bool = False
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    max_connections: int = 8

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.timeout_seconds <= 0 or self.connect_timeout_seconds <= 0 or self.deadline_seconds <= 0:
            raise ValueError("timeouts and the deadline must be positive")

    def __repr__(self) -> str:
        return (
            f"AccountConfig(account={self.account!r}, username={self.username!r}, password='***', "
            f"base_url={self.base_url!r})"
        )

    __str__ = __repr__

    @property
    def env_prefix(self) -> str:
        return f"EMAG_{self.account.upper()}"
