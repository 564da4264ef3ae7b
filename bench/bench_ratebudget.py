"""How busy the rate budget keeps eMAG's 3 req/s on a long product scan (run by hand, never as a test).

    .venv/bin/python bench/bench_ratebudget.py [--pages 120] [--latency-ms 0 800] [--redis redis://127.0.0.1:6379/0]

Utilisation = requests that reached the sandbox / (scan seconds x 3/s), over the whole scan (start-up
and the last page's latency included) and from the first request to the last. The budget aims at 96% (4%
safety margin); prefetch keeps it there when eMAG is slow to answer a page.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from magflow.emag import AccountConfig, EmagClient, InProcessRateBudget, RateBudget, RateLimits, RedisRateBudget
from magflow.sandbox import SANDBOX_ACCOUNTS, SandboxServer, SandboxState

RATE = 3.0
PER_PAGE = 50


async def scan(server: SandboxServer, budget: RateBudget) -> tuple[int, float]:
    username, password = SANDBOX_ACCOUNTS["main"]
    config = AccountConfig("main", username, password, base_url=server.base_url, timeout_seconds=30)
    started = time.monotonic()
    async with EmagClient(config, budget=budget) as client:
        offers = 0
        async for page in client.iter_product_pages(items_per_page=PER_PAGE):
            offers += len(page.offers)
    return offers, time.monotonic() - started


async def run(pages: int, latency_ms: float, redis_url: str | None) -> None:
    state = SandboxState(products_per_account=pages * PER_PAGE, seed=1, rate_per_second=RATE, rate_per_minute=180)
    state.faults.set_latency(latency_ms)
    server = SandboxServer(state)
    server.start()
    limits = RateLimits()
    budget: RateBudget = (
        RedisRateBudget(redis_url, limits, key_prefix=f"bench-{uuid.uuid4().hex[:8]}")
        if redis_url
        else InProcessRateBudget(limits)
    )
    try:
        offers, elapsed = await scan(server, budget)
    finally:
        await budget.aclose()
        server.stop()
    requests = sum(state.requests_per_second("main").values())
    arrivals = state.limiter._counters[("main", "default")].arrivals
    steady = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) / RATE  # first to last request, no latency tail
    print(
        f"{type(budget).__name__:20} latency {latency_ms:5.0f} ms: {offers} offers, {requests} requests in "
        f"{elapsed:6.1f} s = {requests / elapsed:.2f} req/s; utilisation {requests / elapsed / RATE:6.1%} of the "
        f"scan, {steady:6.1%} first to last request; 429s {state.count_429('main')}, "
        f"busiest second {state.max_requests_in_any_second('main')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=120)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 800.0])
    parser.add_argument("--redis", default=None, help="use RedisRateBudget at this URL")
    args = parser.parse_args()
    for latency in args.latency_ms:
        asyncio.run(run(args.pages, latency, args.redis))


if __name__ == "__main__":
    main()
