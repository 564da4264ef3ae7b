"""Two accounts scanning at once, with a budget per login and with one budget per IP (run by hand, never as a test).

    .venv/bin/python bench/bench_shared_budget.py [--pages 60] [--redis redis://127.0.0.1:6379/0]

The sandbox enforces eMAG's 3/s and 180/min either per account (`rate_scope=account`, eMAG's documentation) or for
both accounts together (`rate_scope=ip`, unverified). Reported per scope: each account's requests/s from its first
to its last request, both together, the 429s, and whether the budget learned that the accounts share one budget.
With a budget per login each account should keep ~2.85/s (as `bench_ratebudget.py` alone); with one per IP both
together should get ~2.85/s after a few refusals.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from magflow.emag import AccountConfig, EmagClient, InProcessRateBudget, RateBudget, RateLimits, RedisRateBudget
from magflow.sandbox import SANDBOX_ACCOUNTS, SandboxServer, SandboxState

ACCOUNTS = ("main", "fbe")
PER_PAGE = 50


async def scan(base_url: str, account: str, budget: RateBudget) -> int:
    username, password = SANDBOX_ACCOUNTS[account]
    config = AccountConfig(account, username, password, base_url=base_url, timeout_seconds=30)
    async with EmagClient(config, budget=budget) as client:
        return sum([len(page.offers) async for page in client.iter_product_pages(items_per_page=PER_PAGE)])


def pace(arrivals: list[float]) -> float:
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0


async def run(scope: str, pages: int, redis_url: str | None) -> None:
    state = SandboxState(products_per_account=pages * PER_PAGE, seed=1, rate_scope=scope)
    server = SandboxServer(state)
    server.start()
    budget: RateBudget = (
        RedisRateBudget(redis_url, RateLimits(), key_prefix=f"bench-{uuid.uuid4().hex[:8]}")
        if redis_url
        else InProcessRateBudget(RateLimits())
    )
    started = time.monotonic()
    try:
        offers = await asyncio.gather(*(scan(server.base_url, a, budget) for a in ACCOUNTS))
        elapsed = time.monotonic() - started
        learned = budget.shares("main")
    finally:
        await budget.aclose()
        server.stop()
    arrivals = {a: list(state.limiter._counters[(a, "default")].arrivals) for a in ACCOUNTS}
    together = sorted(t for times in arrivals.values() for t in times)
    requests = len(together)
    per_account = ", ".join(f"{a} {pace(arrivals[a]):.2f}" for a in ACCOUNTS)
    refused = sum(state.count_429(a) for a in ACCOUNTS)
    print(
        f"{type(budget).__name__:20} rate_scope={scope:7}: {sum(offers)} offers, {requests} requests in "
        f"{elapsed:5.1f} s; req/s first to last: {per_account}, together {pace(together):.2f}; "
        f"429s {refused}; learned shared: {learned}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--redis", default=None, help="use RedisRateBudget at this URL")
    args = parser.parse_args()
    for scope in ("account", "ip"):
        asyncio.run(run(scope, args.pages, args.redis))


if __name__ == "__main__":
    main()
