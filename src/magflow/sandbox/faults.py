"""Fault injection on any eMAG route: scheduled faults, a random error rate, added latency.

Kinds that replace the answer: "500", "502_html", "504", "timeout" (no answer for `timeout_seconds`), "reset"
(a TCP reset, no response), "captive_html" (HTTP 200 with an HTML login page, as a captive proxy answers),
"429" (a rate-limit refusal whatever the budget says), "applied_then_500" (the request is carried out — an order
acknowledged, a page served — and the answer is a 500). Kinds that spoil an answer: "malformed_json",
"corrupt_product" (product pages only), "ok_without_iserror", "empty_page" (`results: []` although there are
results) and "no_results" (no `results` key), the last two as eMAG sometimes answers mid-scan; "reset_mid_body"
(half the answer, then a reset) and "slow" (the answer after `delay_seconds`).

A fault targets one route ("product_offer/read" unless told; "order/acknowledge" covers every order id; "*" every
route) and, if `page` is set, only requests for that `currentPage` (1 when the request names none)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass

REPLACING_KINDS = frozenset({"500", "502_html", "504", "timeout", "reset", "captive_html", "429"})
FAULT_KINDS = REPLACING_KINDS | frozenset(
    {"malformed_json", "corrupt_product", "ok_without_iserror", "empty_page", "no_results"}
    | {"applied_then_500", "reset_mid_body", "slow"}
)
DEFAULT_RANDOM_KINDS = ("500", "502_html", "504")
DEFAULT_ROUTE = "product_offer/read"
ANY_ROUTE = "*"


@dataclass
class Fault:
    kind: str
    remaining: int
    page: int | None = None
    timeout_seconds: float = 30.0
    route: str = DEFAULT_ROUTE
    delay_seconds: float = 30.0

    def hits(self, route: str, page: int | None) -> bool:
        on_route = self.route in (ANY_ROUTE, route) or route.startswith(self.route + "/")
        return on_route and (self.page is None or self.page == page)


def parse_spec(spec: str) -> Fault:
    """A fault from its CLI form KIND[:COUNT][@ROUTE], e.g. "captive_html:3" or "applied_then_500@order/acknowledge"."""
    head, _, route = spec.partition("@")
    kind, _, count = head.partition(":")
    try:
        fault = Fault(kind.strip(), int(count) if count else 1, route=route.strip() or DEFAULT_ROUTE)
    except ValueError:
        raise ValueError(
            f"cannot read the fault {spec!r}; write it KIND[:COUNT][@ROUTE], e.g. 500:2@vat/read"
        ) from None
    _check(fault.kind)
    return fault


class FaultInjector:
    """Thread-safe: tests configure it from their thread while the server consumes it in its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scheduled: list[Fault] = []
        self._rate = 0.0
        self._kinds: tuple[str, ...] = DEFAULT_RANDOM_KINDS
        self._rate_route = DEFAULT_ROUTE
        self._rng = random.Random(0)
        self.latency_ms = 0.0
        self.timeout_seconds = 30.0
        self.triggered: list[str] = []

    def inject(
        self,
        kind: str,
        count: int = 1,
        page: int | None = None,
        timeout_seconds: float = 30.0,
        route: str = DEFAULT_ROUTE,
        delay_seconds: float = 30.0,
    ) -> None:
        """Make the next `count` requests to `route` (only those for `page`, if set) fail as `kind`."""
        _check(kind)
        with self._lock:
            self._scheduled.append(Fault(kind, count, page, timeout_seconds, route.strip("/"), delay_seconds))

    def schedule(self, fault: Fault) -> None:
        self.inject(fault.kind, fault.remaining, fault.page, fault.timeout_seconds, fault.route, fault.delay_seconds)

    def set_error_rate(
        self, rate: float, kinds: Iterable[str] = DEFAULT_RANDOM_KINDS, seed: int = 0, route: str = DEFAULT_ROUTE
    ) -> None:
        """Fail each request to `route` with probability `rate`, picking a kind from `kinds` (seeded)."""
        kinds = tuple(kinds)
        for kind in kinds:
            _check(kind)
        with self._lock:
            self._rate, self._kinds, self._rng, self._rate_route = rate, kinds, random.Random(seed), route.strip("/")

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

    def take(self, route: str, page: int | None) -> Fault | None:
        """The fault, if any, that this request must suffer."""
        if not self._scheduled and not self._rate:  # the normal path: no lock taken
            return None
        with self._lock:
            for fault in self._scheduled:
                if fault.hits(route, page):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._scheduled.remove(fault)
                    self.triggered.append(fault.kind)
                    return fault
            random_fault = Fault("", 1, route=self._rate_route, timeout_seconds=self.timeout_seconds)
            if self._rate and random_fault.hits(route, page) and self._rng.random() < self._rate:
                random_fault.kind = self._rng.choice(self._kinds)
                self.triggered.append(random_fault.kind)
                return random_fault
        return None


def _check(kind: str) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; choose one of {sorted(FAULT_KINDS)}")
