"""What the client needs to know about one seller account, and the rate limits it must respect."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Bucket = Literal["default", "orders"]
# How a request's parameters travel. eMAG's document says the POST data has one key, `data`; its own PHP plugins send
# it form-encoded (`data[currentPage]=2`); every production JSON client puts the keys at the top level, no wrapper.
#   json       {"currentPage": 2, "itemsPerPage": 100, ...}          (the default)
#   json-data  {"data": {"currentPage": 2, ...}}
#   form       data[currentPage]=2&data[itemsPerPage]=100, lists as data[key][]=v
RequestFormat = Literal["json", "json-data", "form"]
REQUEST_FORMATS: tuple[RequestFormat, ...] = ("json", "json-data", "form")
# Where an account's style came from, strongest first: EMAG_<ACCOUNT>_REQUEST_FORMAT, the style recorded by
# `magflow test-connection --detect`, EMAG_REQUEST_FORMAT, the default. "explicit": built in code (tests, the sandbox).
RequestFormatSource = Literal["account_setting", "recorded", "setting", "default", "explicit"]
DEFAULT_BASE_URL = "https://marketplace-api.emag.ro/api-3"
MIN_LATENESS_TOLERANCE = 0.01  # below this, re-reserving cannot help: every wake-up is a little late
# A page of 100 offers is a few hundred KiB; an answer past this is refused unread (EMAG_MAX_RESPONSE_BYTES).
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


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
    request_format: RequestFormat = "json"
    request_format_source: RequestFormatSource = "explicit"
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_response_bytes < 1:
            raise ValueError("max_response_bytes must be positive")
        if self.timeout_seconds <= 0 or self.connect_timeout_seconds <= 0 or self.deadline_seconds <= 0:
            raise ValueError("timeouts and the deadline must be positive")
        if self.request_format not in REQUEST_FORMATS:
            raise ValueError(f"request_format must be one of {', '.join(REQUEST_FORMATS)}")

    def __repr__(self) -> str:
        return (
            f"AccountConfig(account={self.account!r}, username={self.username!r}, password='***', "
            f"base_url={self.base_url!r}, request_format={self.request_format!r})"
        )

    __str__ = __repr__

    @property
    def env_prefix(self) -> str:
        return f"EMAG_{self.account.upper()}"

    @property
    def request_format_origin(self) -> str:
        """The body style as the user set it: `EMAG_REQUEST_FORMAT=json`, or where else it came from."""
        if self.request_format_source == "account_setting":
            return f"{self.env_prefix}_REQUEST_FORMAT={self.request_format}"
        if self.request_format_source == "recorded":
            return f"the request format {self.request_format} recorded by `magflow test-connection --detect`"
        return f"EMAG_REQUEST_FORMAT={self.request_format}"

    @property
    def request_format_advice(self) -> str:
        """What to do when eMAG does not honour this style."""
        if self.request_format_source == "account_setting":
            return (
                f"run `magflow test-connection --detect` and set {self.env_prefix}_REQUEST_FORMAT to the "
                "format it finds (or unset it)"
            )
        return "run `magflow test-connection --detect`"
