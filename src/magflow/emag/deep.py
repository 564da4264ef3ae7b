"""`magflow test-connection --deep`: everything a first connection to a real eMAG account should establish.

Credentials, the IP whitelist, the body style (paging and filters honoured), the count against the listing,
the platform and currency, the clock offset against eMAG's `Date` header, the rate-limit headers eMAG sends,
the catalogue size and the time a full sync needs at the configured budget. About 6 requests per account.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from magflow.emag.client import MAX_ITEMS_PER_PAGE, EmagClient
from magflow.emag.config import RateLimits
from magflow.emag.connection import (
    CHECK_ATTEMPTS,
    ConnectionVerdict,
    PagingProbe,
    failure_verdict,
    offer_ids,
    paging_message,
    probe_filters,
    probe_paging,
    verdict_of,
)
from magflow.emag.errors import EmagError, EmagIpNotWhitelistedError

State = Literal["ok", "warn", "fail", "info"]
# eMAG's document, "Conventions": the API host of each platform and its default currency.
PLATFORMS = {
    "marketplace-api.emag.ro": ("RO", "RON"),
    "marketplace-api.emag.bg": ("BG", "BGN"),
    "marketplace-api.emag.hu": ("HU", "HUF"),
    "marketplace-ro-api.fashiondays.com": ("FD-RO", "RON"),
    "marketplace-bg-api.fashiondays.com": ("FD-BG", "BGN"),
}
CLOCK_TOLERANCE_SECONDS = 5.0
SCAN_COUNTS = 2  # a full scan counts at its start and at its end


@dataclass(frozen=True, slots=True)
class CheckLine:
    name: str
    state: State
    result: str
    advice: str | None = None


@dataclass(slots=True)
class DeepReport:
    account: str
    verdict: ConnectionVerdict
    host: str
    request_format: str
    request_format_origin: str
    platform: str | None = None
    expected_currency: str | None = None
    currencies_seen: list[str] = field(default_factory=list)
    paging: str | None = None
    filters: str | None = None
    product_count: int | None = None
    listing_agrees: bool | None = None
    clock_offset_seconds: float | None = None
    rate_limit_headers: dict[str, str] = field(default_factory=dict)
    full_sync_requests: int | None = None
    requests_per_second: float | None = None
    predicted_full_sync_seconds: float | None = None
    requests_used: int = 0
    checks: list[CheckLine] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(line.state == "fail" for line in self.checks)


def full_sync_requests(items: int) -> int:
    """Every page, one more read after a full last page (the count may lag), and the two counts."""
    pages = math.ceil(items / MAX_ITEMS_PER_PAGE)
    return pages + (1 if items % MAX_ITEMS_PER_PAGE == 0 else 0) + SCAN_COUNTS


def predicted_seconds(requests: int, limits: RateLimits) -> float:
    """The budget is the floor: requests leave one interval apart (pages are prefetched to keep it busy)."""
    return round(requests * limits.interval("default"), 2)


async def deep_check(client: EmagClient) -> DeepReport:
    config = client.config
    host = urlsplit(config.base_url).hostname or config.base_url
    platform, currency = PLATFORMS.get(host.lower(), (None, None))
    report = DeepReport(
        client.account, ConnectionVerdict(client.account, "error", ""), host, config.request_format,
        config.request_format_origin, platform, currency,
    )  # fmt: skip
    try:
        probe = await probe_paging(client)
        filter_problem = await probe_filters(client, probe)
        agrees, currencies = await _listing_agrees(client, probe)
    except EmagError as exc:
        report.verdict = failure_verdict(client.account, exc)
        report.checks = _failure_lines(report, exc)
        report.requests_used = client.stats.requests
        return report
    report.verdict = verdict_of(client, probe)
    report.paging = probe.paging
    report.filters = "ignored" if filter_problem else "honoured" if probe.count.items >= 2 else "unproven"
    report.product_count = probe.count.items
    report.listing_agrees = agrees
    report.currencies_seen = sorted(probe.currencies | currencies)
    report.clock_offset_seconds = client.stats.clock_offset_seconds
    report.rate_limit_headers = dict(client.stats.rate_limit_headers)
    limits = client.budget.limits
    report.requests_per_second = round(1 / limits.interval("default"), 2)
    report.full_sync_requests = full_sync_requests(probe.count.items)
    report.predicted_full_sync_seconds = predicted_seconds(report.full_sync_requests, limits)
    report.requests_used = client.stats.requests
    report.checks = [
        CheckLine("credentials", "ok", "accepted"),
        CheckLine("IP whitelist", "ok", "this server's IP is accepted"),
        _style_line(client, probe, filter_problem),
        _listing_line(probe, agrees),
        _platform_line(report),
        _currency_line(report),
        _clock_line(report.clock_offset_seconds),
        _rate_line(report.rate_limit_headers, client.stats.http_429),
        CheckLine("catalogue", "ok", _catalogue(probe.count.items)),
        CheckLine("full sync estimate", "info", describe_estimate(report)),
    ]
    return report


async def _listing_agrees(client: EmagClient, probe: PagingProbe) -> tuple[bool | None, set[str]]:
    """Does the listing end where the count says? Pages N and N+1 of one offer each: one offer, then none."""
    items = probe.count.items
    if probe.problem is not None or items < 1:
        return None, set()
    known = {1: probe.first, 2: probe.second}
    currencies: set[str] = set()
    sizes: dict[int, int] = {}
    for page in (items, items + 1):
        read = known.get(page) or await client._read_once(page, 1, None, CHECK_ATTEMPTS)
        sizes[page] = len(offer_ids(read))
        currencies.update(o.currency for o in read.offers if o.currency)
    return sizes[items] == 1 and sizes[items + 1] == 0, currencies


def _failure_lines(report: DeepReport, exc: EmagError) -> list[CheckLine]:
    verdict = report.verdict
    if verdict.status == "auth_failed":
        return [CheckLine("credentials", "fail", "refused", str(exc))]
    if isinstance(exc, EmagIpNotWhitelistedError):
        shown = exc.ip or "(eMAG did not say which)"
        return [
            CheckLine("credentials", "info", "not checked: eMAG refused the IP first"),
            CheckLine("IP whitelist", "fail", f"refused: {shown}", f"whitelist {shown} in the eMAG seller portal"),
        ]
    return [CheckLine("connection", "fail", verdict.status, verdict.message)]


def _style_line(client: EmagClient, probe: PagingProbe, filter_problem: str | None) -> CheckLine:
    config = client.config
    if probe.problem is not None:
        return CheckLine("request format", "fail", config.request_format_origin, paging_message(client, probe))
    if filter_problem is not None:
        advice = f"eMAG ignored the filters with {config.request_format_origin}: {config.request_format_advice}"
        return CheckLine("request format", "fail", f"{config.request_format_origin}: {filter_problem}", advice)
    if not probe.proven:
        return CheckLine("request format", "warn", f"{config.request_format_origin}: unproven (no offers)")
    proven = "paging and filters honoured" if probe.count.items >= 2 else "paging honoured"
    return CheckLine("request format", "ok", f"{config.request_format_origin}: {proven}")


def _listing_line(probe: PagingProbe, agrees: bool | None) -> CheckLine:
    items = probe.count.items
    if agrees is None:
        return CheckLine("count vs listing", "info", f"{items} counted; the listing was not compared")
    if agrees:
        return CheckLine("count vs listing", "ok", f"{items} counted, {items} listed")
    return CheckLine(
        "count vs listing", "warn", f"{items} counted, but the listing does not end at offer {items}",
        "eMAG's count lags its listing while the catalogue changes; a full sync reads past the count, so this is "
        "harmless unless it persists",
    )  # fmt: skip


def _platform_line(report: DeepReport) -> CheckLine:
    if report.platform is None:
        return CheckLine("platform", "info", f"{report.host} is not an eMAG API host (a sandbox or a proxy?)")
    return CheckLine("platform", "ok", f"{report.platform} ({report.host})")


def _currency_line(report: DeepReport) -> CheckLine:
    seen = ", ".join(report.currencies_seen) or "none (no offer read)"
    expected = report.expected_currency
    if expected is None or not report.currencies_seen:
        return CheckLine("currency", "info", seen)
    if report.currencies_seen == [expected]:
        return CheckLine("currency", "ok", f"{seen}, the platform's currency")
    return CheckLine(
        "currency", "warn", f"{seen}, but {report.platform}'s currency is {expected}",
        "check the account's base URL: offers priced in another currency than the platform's are unusual",
    )  # fmt: skip


def _clock_line(offset: float | None) -> CheckLine:
    if offset is None:
        return CheckLine("clock", "info", "eMAG sent no Date header")
    way = "ahead of" if offset > 0 else "behind"
    shown = f"eMAG's clock is {abs(offset):.1f} s {way} this machine's" if offset else "in step with eMAG's"
    if abs(offset) <= CLOCK_TOLERANCE_SECONDS:
        return CheckLine("clock", "ok", shown)
    return CheckLine(
        "clock", "warn", shown,
        "set this machine's clock by NTP (timedatectl set-ntp true): order filters and the logs compare times",
    )  # fmt: skip


def _rate_line(headers: dict[str, str], http_429: int) -> CheckLine:
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(headers.items())) or "eMAG sent none"
    if http_429:
        return CheckLine(
            "rate limit", "warn", f"{http_429} answer(s) 429 during the check; {shown}",
            "another client is spending this account's budget: stop it, or lower EMAG_RATE_LIMIT_PER_SECOND",
        )  # fmt: skip
    return CheckLine("rate limit", "ok" if headers else "info", shown)


def _catalogue(items: int) -> str:
    pages = math.ceil(items / MAX_ITEMS_PER_PAGE)
    return f"{items} offers, {pages} page{'s' if pages != 1 else ''} of {MAX_ITEMS_PER_PAGE}"


def describe_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def describe_estimate(report: DeepReport) -> str:
    if report.predicted_full_sync_seconds is None or report.requests_per_second is None:
        return "unknown"
    return (
        f"about {describe_duration(report.predicted_full_sync_seconds)} "
        f"({report.full_sync_requests} requests at {report.requests_per_second:g}/s)"
    )


def combined_estimate(reports: list[DeepReport]) -> tuple[float, float] | None:
    """Seconds for a full sync of every account checked: in parallel (each account has its own budget, as
    eMAG documents), and one after the other (should eMAG count every account of an IP against one budget)."""
    seconds = [r.predicted_full_sync_seconds for r in reports if r.predicted_full_sync_seconds is not None]
    if len(seconds) < 2:
        return None
    return max(seconds), round(sum(seconds), 1)
