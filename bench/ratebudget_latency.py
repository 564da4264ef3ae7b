"""How much of eMAG's 3 req/s a scan gets when the shared budget's Redis is far away (run by hand, never as a test).

    .venv/bin/python bench/ratebudget_latency.py [--latency-ms 0 30 100] [--pages 40] [--redis redis://127.0.0.1:6379/0]

For each one-way latency, a TCP proxy (the one tests/emag/test_ratebudget_redis.py uses) delays every packet
between the budget and Redis, and one account's product scan runs against the sandbox, which enforces eMAG's
3/s and 180/min. Reported: requests/s over the scan, budget slots reserved per request (a slot given up for
lateness costs one more), 429s and the busiest second.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from magflow.emag import AccountConfig, Bucket, EmagClient, RateLimits, RedisRateBudget
from magflow.sandbox import SANDBOX_ACCOUNTS, SandboxServer, SandboxState

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "emag"))
from test_ratebudget_redis import LatencyProxy

RATE = 3.0
PER_PAGE = 50


class CountingBudget(RedisRateBudget):
    reservations = 0

    async def reserve(self, account: str, bucket: Bucket, weight: float = 1.0) -> float:
        self.reservations += 1
        return await super().reserve(account, bucket, weight)


async def scan(base_url: str, budget: RedisRateBudget) -> float:
    username, password = SANDBOX_ACCOUNTS["main"]
    config = AccountConfig("main", username, password, base_url=base_url, timeout_seconds=30)
    started = time.monotonic()
    async with EmagClient(config, budget=budget) as client:
        async for _ in client.iter_product_pages(items_per_page=PER_PAGE):
            pass
    return time.monotonic() - started


async def run(pages: int, latency_ms: float, redis_url: str) -> None:
    state = SandboxState(products_per_account=pages * PER_PAGE, seed=1, rate_per_second=RATE, rate_per_minute=180)
    server = SandboxServer(state)
    server.start()
    parts = urlsplit(redis_url)
    try:
        async with LatencyProxy((parts.hostname or "127.0.0.1", parts.port or 6379), latency_ms / 1000) as proxy:
            proxied = parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
            prefix = f"bench-{uuid.uuid4().hex[:8]}"  # keys expire a minute after the scan
            budget = CountingBudget(proxied, RateLimits(), key_prefix=prefix)
            async with budget:
                elapsed = await scan(server.base_url, budget)
    finally:
        server.stop()
    requests = sum(state.requests_per_second("main").values())
    arrivals = state.limiter._counters[("main", "default")].arrivals
    print(
        f"Redis {latency_ms:4.0f} ms away (each way): {requests} requests in {elapsed:5.1f} s = "
        f"{requests / elapsed:.2f} req/s ({(len(arrivals) - 1) / (arrivals[-1] - arrivals[0]):.2f} first to last); "
        f"{budget.reservations / requests:.2f} slots reserved per request; 429s {state.count_429('main')}, "
        f"busiest second {state.max_requests_in_any_second('main')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 30.0, 100.0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    for latency in args.latency_ms:
        asyncio.run(run(args.pages, latency, args.redis))


if __name__ == "__main__":
    main()
