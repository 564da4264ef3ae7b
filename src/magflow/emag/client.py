"""The eMAG client for one seller account: products, orders, VAT, and the connection check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

from magflow.emag.config import AccountConfig
from magflow.emag.connection import ConnectionVerdict, check_connection
from magflow.emag.payloads import (
    ProductCount,
    ProductOffer,
    ProductPage,
    parse_count,
    parse_product_page,
    parse_records,
)
from magflow.emag.ratelimit import InProcessRateBudget, RateBudget
from magflow.emag.transport import ClientStats, Transport

MAX_ITEMS_PER_PAGE = 100


class EmagClient:
    """Use as `async with EmagClient(config, budget=budget) as client:`; one connection pool per account.

    `budget` should be shared by every client of the deployment (a `RedisRateBudget` when Redis is
    configured); without one the client makes its own `InProcessRateBudget` and closes it on exit.
    """

    def __init__(self, config: AccountConfig, budget: RateBudget | None = None, *, prefetch: int = 3) -> None:
        self.config = config
        self._owns_budget = budget is None
        self.budget = budget if budget is not None else InProcessRateBudget()
        self.stats = ClientStats()
        self.prefetch = max(1, prefetch)
        self._transport = Transport(config, self.budget, self.stats)

    @property
    def account(self) -> str:
        return self.config.account

    async def __aenter__(self) -> EmagClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()
        if self._owns_budget:
            await self.budget.aclose()

    def __repr__(self) -> str:
        return f"EmagClient(account={self.account!r}, base_url={self.config.base_url!r})"

    async def count_products(self, filters: Mapping[str, Any] | None = None, items_per_page: int = 100) -> ProductCount:
        data = {**(filters or {}), "itemsPerPage": _per_page(items_per_page)}
        return await self._transport.call(
            "product_offer/count", data, lambda results: parse_count(results, items_per_page)
        )

    async def read_products_page(
        self, page: int, items_per_page: int = 100, filters: Mapping[str, Any] | None = None
    ) -> ProductPage:
        """One page of offers (pages count from 1). Raises an `EmagError` naming the page, never skips it."""
        if page < 1:
            raise ValueError("pages count from 1")
        data = {**(filters or {}), "currentPage": page, "itemsPerPage": _per_page(items_per_page)}
        return await self._transport.call(
            "product_offer/read",
            data,
            lambda results: parse_product_page(results, page, items_per_page),
            page=page,
        )

    async def iter_product_pages(
        self,
        filters: Mapping[str, Any] | None = None,
        items_per_page: int = 100,
        start_page: int = 1,
        max_pages: int | None = None,
    ) -> AsyncIterator[ProductPage]:
        """Every page of `filters` in order, from `start_page`, ending after the first short page.

        Up to `prefetch` pages are in flight at once so slow eMAG pages still keep the rate budget busy;
        pages are yielded strictly in order, and a page that fails after its retries raises (naming the
        page) when its turn comes — pages before it have been yielded, none after it is.
        """
        _per_page(items_per_page)
        last = None if max_pages is None else start_page + max_pages - 1
        pending: dict[int, asyncio.Task[ProductPage]] = {}
        next_to_start = start_page

        def fill() -> None:
            nonlocal next_to_start
            while len(pending) < self.prefetch and (last is None or next_to_start <= last):
                pending[next_to_start] = asyncio.ensure_future(
                    self.read_products_page(next_to_start, items_per_page, filters)
                )
                next_to_start += 1

        try:
            page_number = start_page
            while last is None or page_number <= last:
                fill()
                page = await pending.pop(page_number)
                yield page
                if page.is_last:
                    return
                page_number += 1
        finally:
            await _cancel(pending.values())

    async def read_product(self, offer_id: int) -> ProductOffer | None:
        """One offer read by id: unlike list reads, it carries the GPSR manufacturer/EU representative."""
        page = await self.read_products_page(1, 1, {"id": offer_id})
        if page.rejected:  # say why the offer is unreadable rather than pretend it does not exist
            ProductOffer.from_payload(page.rejected[0].raw)
        return page.offers[0] if page.offers else None

    async def count_orders(self, filters: Mapping[str, Any] | None = None, items_per_page: int = 100) -> ProductCount:
        data = {**(filters or {}), "itemsPerPage": _per_page(items_per_page)}
        return await self._transport.call(
            "order/count", data, lambda results: parse_count(results, items_per_page), bucket="orders"
        )

    async def read_orders_page(
        self, page: int, items_per_page: int = 100, filters: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        data = {**(filters or {}), "currentPage": page, "itemsPerPage": _per_page(items_per_page)}
        return await self._transport.call("order/read", data, parse_records, bucket="orders", page=page)

    async def acknowledge_order(self, order_id: int) -> None:
        """Move a new order (status 1) to in progress (2)."""
        await self._transport.call(f"order/acknowledge/{int(order_id)}", None, lambda _: None, bucket="orders")

    async def read_vat(self) -> list[dict[str, Any]]:
        return await self._transport.call("vat/read", {}, parse_records)

    async def check_connection(self) -> ConnectionVerdict:
        return await check_connection(self)

    async def _count_once(self, attempts: int) -> ProductCount:
        return await self._transport.call(
            "product_offer/count", {"itemsPerPage": 100}, lambda r: parse_count(r, 100), max_attempts=attempts
        )

    async def _read_once(
        self, page: int, items_per_page: int, filters: Mapping[str, Any] | None, attempts: int
    ) -> ProductPage:
        """One page with few attempts: the connection checks answer quickly rather than wait out an outage."""
        data = {**(filters or {}), "currentPage": page, "itemsPerPage": _per_page(items_per_page)}
        return await self._transport.call(
            "product_offer/read",
            data,
            lambda results: parse_product_page(results, page, items_per_page),
            page=page,
            max_attempts=attempts,
        )


def _per_page(items_per_page: int) -> int:
    if not 1 <= items_per_page <= MAX_ITEMS_PER_PAGE:
        raise ValueError(f"items_per_page must be between 1 and {MAX_ITEMS_PER_PAGE}")
    return items_per_page


async def _cancel(tasks: Any) -> None:
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
