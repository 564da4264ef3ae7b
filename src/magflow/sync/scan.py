"""Reading one scan's pages: up to FETCH_AHEAD reads in flight within the counted pages, handed on in page order.

A scan ends on a short page, never on eMAG's count alone: the count can lag the listing, so a full last counted
page is followed by one more read. A short page before the counted end is checked against a fresh count and read
again; if eMAG still disagrees with itself, the scan stops with ScanGapError rather than call the catalogue read.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from magflow.emag import EmagClient, EmagError, ProductPage
from magflow.sync.runs import utcnow

PREFETCH = 2
FETCH_AHEAD = 3
# How far past eMAG's count a scan follows full pages before it decides the server is not paging.
OVERRUN_PAGES = 10


class ScanGapError(Exception):
    """eMAG's pages and its count disagree so that offers may be unread; the run ends partial, nothing swept."""


class PagingIgnoredError(ScanGapError):
    """A page came back with exactly the offers of an earlier page: eMAG is not reading the page number (the request
    body style does not match what the server reads), so scanning on would only read page 1 again and again."""


@dataclass
class PageRead:
    page_no: int
    page: ProductPage
    observed: datetime


@dataclass
class ScanEnd:
    reached_end: bool  # False when max_pages stopped the scan before the end of the catalogue


class PageReader:
    """Reads pages from `first_page` on into a queue; the caller writes them in order and checkpoints between."""

    def __init__(
        self,
        client: EmagClient,
        items_per_page: int,
        filters: dict[str, Any],
        first_page: int,
        known_pages: int,
        max_pages: int | None,
        known_items: int | None = None,
    ) -> None:
        self.client = client
        self.per_page = items_per_page
        self.filters = filters
        self.first_page = first_page
        self.known_pages = known_pages
        self.known_items = known_items if known_items is not None else known_pages * items_per_page
        self.max_pages = max_pages
        self.queue: asyncio.Queue[PageRead | ScanEnd | Exception] = asyncio.Queue(PREFETCH)
        self._pages_seen: dict[tuple[int, ...], int] = {}

    def _may_read(self, page: int) -> bool:
        return self.max_pages is None or page <= self.max_pages

    async def produce(self) -> None:
        inflight: deque[tuple[int, datetime, asyncio.Task[ProductPage]]] = deque()
        next_page = self.first_page
        overrun_limit = max(self.known_pages, 1) + max(OVERRUN_PAGES, self.known_pages)
        try:
            while True:
                # Past the counted pages, one read at a time: each may be the (short) last one.
                ahead = FETCH_AHEAD if next_page <= self.known_pages else 1
                while len(inflight) < ahead and self._may_read(next_page):
                    task = asyncio.create_task(self.client.read_products_page(next_page, self.per_page, self.filters))
                    inflight.append((next_page, utcnow(), task))
                    next_page += 1
                if not inflight:
                    await self.queue.put(ScanEnd(reached_end=False))  # max_pages reached with a full page
                    return
                page_no, observed, task = inflight.popleft()
                page = await task
                self._check_not_repeated(page_no, page)
                if page.raw_count < self._expected_on(page_no):
                    page, observed = await self._recheck(page_no, page, observed)
                await self.queue.put(PageRead(page_no, page, observed))
                if page.raw_count < self.per_page:
                    await self.queue.put(ScanEnd(reached_end=True))
                    return
                if page_no >= overrun_limit:
                    raise ScanGapError(
                        f"eMAG kept answering full pages up to page {page_no} although it counted "
                        f"{self.known_pages} pages: it may be ignoring the page number. Nothing was marked missing; "
                        "check the request format (EMAG_REQUEST_FORMAT) with `magflow test-connection`"
                    )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Whatever stops the reads (eMAG, the rate budget's Redis, a parser bug) must reach the writer: left in
            # this task it would leave the writer waiting on the queue for ever.
            await self.queue.put(exc)
        finally:
            for _, _, pending in inflight:
                pending.cancel()
            for _, _, pending in inflight:
                with contextlib.suppress(asyncio.CancelledError, EmagError, Exception):
                    await pending

    def _expected_on(self, page_no: int) -> int:
        """How many offers eMAG's count says this page holds (a full page before the counted end)."""
        return max(0, min(self.per_page, self.known_items - (page_no - 1) * self.per_page))

    def _check_not_repeated(self, page_no: int, page: ProductPage) -> None:
        ids = tuple(sorted([o.id for o in page.offers] + [r.offer_id for r in page.rejected if r.offer_id is not None]))
        if len(ids) < 2:
            return  # a page of one offer can repeat by a shift of the listing; and an empty one says nothing
        earlier = self._pages_seen.setdefault(ids, page_no)
        if earlier != page_no:
            config = self.client.config
            raise PagingIgnoredError(
                f"eMAG ignored the paging parameters with {config.request_format_origin} (page {page_no} "
                f"repeated page {earlier}): check EMAG_REQUEST_FORMAT or {config.request_format_advice}. "
                "Nothing was marked missing"
            )

    async def _recheck(self, page_no: int, page: ProductPage, observed: datetime) -> tuple[ProductPage, datetime]:
        """A short page before the counted end: the catalogue shrank, eMAG blinked, or pages are missing."""
        count = await self.client.count_products(self.filters)
        pages_now = math.ceil(count.items / self.per_page)
        expected = max(0, min(self.per_page, count.items - (page_no - 1) * self.per_page))
        if page.raw_count >= expected:
            return page, observed  # the catalogue shrank during the scan: this is its end now
        again_at = utcnow()
        again = await self.client.read_products_page(page_no, self.per_page, self.filters)
        if again.raw_count >= expected:
            return again, again_at
        if again.raw_count and _ids(again) == _ids(page):
            # The same offers twice: the listing really ends here and eMAG's count is ahead of it (it lags
            # deletions). An incremental run takes the listing; a full run's verification sees the count differ.
            return again, again_at
        raise ScanGapError(
            f"eMAG answered page {page_no} with {again.raw_count} offers twice although it counts {count.items} "
            f"offers ({pages_now} pages of {self.per_page}): offers after it may be unread, so this run is not "
            "complete and nothing was marked missing. Run the sync again; if it repeats, eMAG's listing is "
            "inconsistent for this account"
        )


def _ids(page: ProductPage) -> list[int]:
    return sorted([o.id for o in page.offers] + [r.offer_id or 0 for r in page.rejected])
