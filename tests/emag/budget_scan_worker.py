"""One OS process scanning the sandbox through the shared Redis budget (run by test_emag_ratebudget).

usage: budget_scan_worker.py BASE_URL REDIS_URL KEY_PREFIX ITEMS_PER_PAGE START_AT_EPOCH
Prints one JSON line: the offer ids read, the pages read and the client's stats.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson

from magflow.emag import AccountConfig, EmagClient, RedisRateBudget
from magflow.sandbox import SANDBOX_ACCOUNTS


async def main(base_url: str, redis_url: str, prefix: str, items_per_page: int, start_at: float) -> None:
    username, password = SANDBOX_ACCOUNTS["main"]
    config = AccountConfig("main", username, password, base_url=base_url, timeout_seconds=5, max_attempts=3)
    await asyncio.sleep(max(0.0, start_at - time.time()))  # both processes start together
    async with RedisRateBudget(redis_url, key_prefix=prefix) as budget, EmagClient(config, budget=budget) as client:
        pages = [page async for page in client.iter_product_pages(items_per_page=items_per_page)]
    result = {
        "ids": [offer.id for page in pages for offer in page.offers],
        "pages": [page.page for page in pages],
        "requests": client.stats.requests,
        "http_429": client.stats.http_429,
        "rate_wait_seconds": client.stats.rate_wait_seconds,
    }
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    base, redis_url, prefix, per_page, start = sys.argv[1:6]
    asyncio.run(main(base, redis_url, prefix, int(per_page), float(start)))
