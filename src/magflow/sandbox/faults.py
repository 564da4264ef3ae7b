"""Fault injection for product_offer/read: scheduled faults, a random error rate, added latency.

Kinds that replace the answer: "500", "502_html", "504", "timeout", "reset". Kinds that spoil a page:
"malformed_json", "corrupt_product", "ok_without_iserror", "empty_page" (`results: []` for a page that has
offers) and "no_results" (no `results` key at all), the last two as eMAG sometimes answers mid-scan."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass

FAULT_KINDS = frozenset(
    {"500", "502_html", "504", "timeout", "reset", "malformed_json", "corrupt_product", "ok_without_iserror"}
    | {"empty_page", "no_results"}
)
DEFAULT_RANDOM_KINDS = ("500", "502_html", "504")


@dataclass
class Fault:
    kind: str
    remaining: int
    page: int | None = None
    timeout_seconds: float = 30.0


class FaultInjector:
    """Thread-safe: tests configure it from their thread while the server consumes it in its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scheduled: list[Fault] = []
        self._rate = 0.0
        self._kinds: tuple[str, ...] = DEFAULT_RANDOM_KINDS
        self._rng = random.Random(0)
        self.latency_ms = 0.0
        self.timeout_seconds = 30.0
        self.triggered: list[str] = []

    def inject(self, kind: str, count: int = 1, page: int | None = None, timeout_seconds: float = 30.0) -> None:
        """Make the next `count` product_offer/read requests (only those for `page`, if set) fail."""
        _check(kind)
        with self._lock:
            self._scheduled.append(Fault(kind, count, page, timeout_seconds))

    def set_error_rate(self, rate: float, kinds: Iterable[str] = DEFAULT_RANDOM_KINDS, seed: int = 0) -> None:
        """Fail each product_offer/read with probability `rate`, picking a kind from `kinds` (seeded)."""
        kinds = tuple(kinds)
        for kind in kinds:
            _check(kind)
        with self._lock:
            self._rate, self._kinds, self._rng = rate, kinds, random.Random(seed)

    def set_latency(self, ms: float) -> None:
        """Delay every eMAG API response by `ms` milliseconds."""
        self.latency_ms = ms

    def clear(self) -> None:
        with self._lock:
            self._scheduled.clear()
            self._rate = 0.0
            self.latency_ms = 0.0
            self.triggered.clear()

    def pending(self) -> int:
        with self._lock:
            return sum(f.remaining for f in self._scheduled)

    def take(self, page: int) -> Fault | None:
        """The fault, if any, that the product_offer/read request for `page` must suffer."""
        with self._lock:
            for fault in self._scheduled:
                if fault.page is None or fault.page == page:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._scheduled.remove(fault)
                    self.triggered.append(fault.kind)
                    return fault
            if self._rate and self._rng.random() < self._rate:
                kind = self._rng.choice(self._kinds)
                self.triggered.append(kind)
                return Fault(kind, 1, None, self.timeout_seconds)
        return None


def _check(kind: str) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; choose one of {sorted(FAULT_KINDS)}")
