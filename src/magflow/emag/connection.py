"""The `test-connection` verdict: can this account reach eMAG, does eMAG honour the paging this client sends,
and if not, what to do about it.

A server that ignores what it does not read (eMAG may, for a body style it does not expect) answers page 1 to
every page: a count alone says "ok" while a sync would read page 1 forever. So the check reads the count and two
one-offer pages, and says when the pages repeat or disagree with the count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from magflow.emag.errors import (
    EmagAuthError,
    EmagError,
    EmagIpNotWhitelistedError,
    EmagRateLimitedError,
    EmagTransientError,
)
from magflow.emag.payloads import ProductCount, ProductPage

if TYPE_CHECKING:
    from magflow.emag.client import EmagClient

Status = Literal[
    "ok", "auth_failed", "ip_not_whitelisted", "unreachable", "rate_limited", "error", "paging_ignored",
    "count_mismatch",
]  # fmt: skip
Proof = Literal["honoured", "ignored", "unproven"]
CHECK_ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class ConnectionVerdict:
    account: str
    status: Status
    message: str
    product_count: int | None = None
    latency_ms: float | None = None
    request_format: str | None = None
    paging: Proof | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class PagingProbe:
    """The count and pages 1 and 2 of one offer each, and what they say about paging."""

    count: ProductCount
    first: ProductPage
    second: ProductPage
    problem: str | None  # what was seen when paging is not honoured; None when it is (or cannot be shown)
    kind: Status  # ok, paging_ignored or count_mismatch
    latency_ms: float  # of the count, the first answer
    currencies: frozenset[str] = field(default_factory=frozenset)

    @property
    def proven(self) -> bool:
        """Whether the pages could show paging at all: an empty catalogue cannot."""
        return self.problem is None and self.count.items >= 1

    @property
    def paging(self) -> Proof:
        if self.problem is not None:
            return "ignored"
        return "honoured" if self.proven else "unproven"


def offer_ids(page: ProductPage) -> list[int | None]:
    """Every entry of the page by id, rejected offers included (they still show which offer a page holds)."""
    return [o.id for o in page.offers] + [r.offer_id for r in page.rejected]


def judge_pages(count: ProductCount, first: ProductPage, second: ProductPage) -> tuple[str | None, Status]:
    """What pages 1 and 2 (one offer each) and the count say about paging; (None, "ok") when all agree."""
    items, one, two = count.items, offer_ids(first), offer_ids(second)
    if first.raw_count > 1:
        return f"a page of one offer held {first.raw_count} (itemsPerPage ignored)", "paging_ignored"
    if one and one == two and None not in one:  # two unreadable offers without ids prove nothing
        return "page 2 repeated page 1 (currentPage ignored)", "paging_ignored"
    if items >= 1 and not one:
        return f"the count says {items} offers but page 1 is empty", "count_mismatch"
    if items >= 2 and not two:
        return f"the count says {items} offers but page 2 of one-offer pages is empty", "count_mismatch"
    if items == 0 and one:
        return "the count says 0 offers but page 1 lists an offer", "count_mismatch"
    if items == 1 and two:
        return "the count says 1 offer but page 2 lists another", "count_mismatch"
    return None, "ok"


async def probe_paging(client: EmagClient, attempts: int = CHECK_ATTEMPTS) -> PagingProbe:
    """The count and two one-offer pages (3 requests). Raises the `EmagError` of a call that fails."""
    started = time.monotonic()
    count = await client._count_once(attempts)
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    first = await client._read_once(1, 1, None, attempts)
    second = await client._read_once(2, 1, None, attempts)
    problem, kind = judge_pages(count, first, second)
    currencies = frozenset(o.currency for page in (first, second) for o in page.offers if o.currency)
    return PagingProbe(count, first, second, problem, kind, latency_ms, currencies)


async def probe_filters(client: EmagClient, probe: PagingProbe, attempts: int = CHECK_ATTEMPTS) -> str | None:
    """Read the offer of page 2 by its id: a server that ignores filters answers page 1's offer instead.

    None when the filter is honoured or cannot be shown (fewer than two offers); else what was seen."""
    target = next((i for i in offer_ids(probe.second) if i is not None), None)
    if target is None or probe.problem is not None:
        return None
    page = await client._read_once(1, 1, {"id": target}, attempts)
    got = offer_ids(page)
    if got != [target]:
        shown = ", ".join(str(i) for i in got) or "nothing"
        return f"a filter by id {target} answered {shown} (filters ignored)"
    return None


def failure_verdict(account: str, exc: EmagError) -> ConnectionVerdict:
    """The verdict for a call that failed: what was refused, or why eMAG could not be reached."""
    if isinstance(exc, EmagAuthError):
        return ConnectionVerdict(account, "auth_failed", str(exc))
    if isinstance(exc, EmagIpNotWhitelistedError):
        return ConnectionVerdict(account, "ip_not_whitelisted", str(exc))
    if isinstance(exc, EmagRateLimitedError):
        return ConnectionVerdict(account, "rate_limited", str(exc))
    if isinstance(exc, EmagTransientError):
        return ConnectionVerdict(account, "unreachable" if exc.network else "error", str(exc))
    return ConnectionVerdict(account, "error", str(exc))


def paging_message(client: EmagClient, probe: PagingProbe) -> str:
    config = client.config
    what = "ignored the paging parameters" if probe.kind == "paging_ignored" else "counts and lists differently"
    return f"eMAG {what} with {config.request_format_origin} — {probe.problem}: {config.request_format_advice}"


async def check_connection(client: EmagClient) -> ConnectionVerdict:
    """The count and two one-offer pages (two attempts each at most): a quick answer that proves paging, never a
    secret in the message."""
    try:
        probe = await probe_paging(client)
    except EmagError as exc:
        return failure_verdict(client.account, exc)
    return verdict_of(client, probe)


def verdict_of(client: EmagClient, probe: PagingProbe) -> ConnectionVerdict:
    account, style, items = client.account, client.config.request_format, probe.count.items
    if probe.problem is not None:
        message = paging_message(client, probe)
        return ConnectionVerdict(account, probe.kind, message, items, probe.latency_ms, style, probe.paging)
    paging = "paging honoured" if probe.proven else "paging not provable without offers"
    message = (
        f"account {account} is connected: {items} products, {paging} (request format {style}), "
        f"answered in {probe.latency_ms:.0f} ms"
    )
    return ConnectionVerdict(account, "ok", message, items, probe.latency_ms, style, probe.paging)
