"""Issue 13, `rate_scope=ip`: when MAIN and FBE share one eMAG budget (the client IP's, not each login's), the client
learns it from the first refusals and paces both accounts together, in one process or in several (Redis); when
each login has its own budget, both keep their full pace. Real HTTP against the sandbox at eMAG's 3/s and 180/min.

Run as a script, this file is one process scanning one account through a Redis budget:
    test_rate_adaptive.py ACCOUNT BASE_URL REDIS_URL KEY_PREFIX START_AT_EPOCH
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis

from magflow.emag import AccountConfig, EmagClient, InProcessRateBudget, RateBudget, RateLimits, RedisRateBudget
from magflow.emag.ratelimit import SHARED_AFTER_REFUSALS, SHARED_MEMORY_SECONDS
from magflow.sandbox import SANDBOX_ACCOUNTS
from magflow.testing.sandbox import Sandbox

ACCOUNTS = ("main", "fbe")
EMAG_LIMITS = {"rate_per_second": 3.0, "rate_per_minute": 180}
PRODUCTS = 1200  # 13 reads per account: enough for a client that does not adapt to show a storm
# What learning that the accounts share one budget may cost: the refusals it takes, and one more per account
# already on its way to eMAG when the budget learns it. A client that does not adapt gets 13 to 19 (of 40-47).
LEARNING_COST = SHARED_AFTER_REFUSALS + len(ACCOUNTS)


def _config(base_url: str, account: str) -> AccountConfig:
    """The production defaults for retries and backoff, so a 429 costs what it costs in production."""
    username, password = SANDBOX_ACCOUNTS[account]
    return AccountConfig(account, username, password, base_url=base_url, timeout_seconds=10, deadline_seconds=300)


async def _scan(base_url: str, account: str, budget: RateBudget) -> list[int]:
    async with EmagClient(_config(base_url, account), budget=budget) as client:
        return [offer.id async for page in client.iter_product_pages() for offer in page.offers]


def _truth(sandbox: Sandbox, account: str) -> list[int]:
    return [p["id"] for p in sandbox.state.truth(account)]


def _requests(sandbox: Sandbox, account: str) -> int:
    return sum(sandbox.state.requests_per_second(account).values())


def _refused(sandbox: Sandbox) -> int:
    return sum(sandbox.state.count_429(a) for a in ACCOUNTS)


def _pace_together(sandbox: Sandbox) -> list[int]:
    """Requests of both accounts together per wall-clock second, over the seconds both were scanning but the first
    and the last (the scans start and end inside them), from the sandbox's counters. Paced together, the accounts
    never send more than 3 in a second (one budget, evenly spaced); each at its own full pace, about 6."""
    counts = [sandbox.state.requests_per_second(a) for a in ACCOUNTS]
    both = sorted(set.intersection(*(set(c) for c in counts)))[1:-1]
    return [sum(c.get(second, 0) for c in counts) for second in both]


def _busiest_second(sandbox: Sandbox, account: str) -> int:
    return max(sandbox.state.requests_per_second(account).values())


@pytest.mark.parametrize(
    "switches",
    [{}, {"count_rejected": True, "rate_window": "fixed", "retry_after": True}],
    ids=["sliding", "fixed-window,count_rejected,retry_after"],
)
async def test_two_accounts_on_one_ip_budget_read_every_offer_without_a_storm_of_429s(
    make_sandbox: Callable[..., Sandbox], switches: dict[str, Any]
) -> None:
    sandbox = make_sandbox(products=PRODUCTS, rate_scope="ip", **EMAG_LIMITS, **switches)
    budget = InProcessRateBudget(RateLimits())
    read = await asyncio.gather(*(_scan(sandbox.base_url, a, budget) for a in ACCOUNTS))
    assert read == [_truth(sandbox, a) for a in ACCOUNTS]
    requests = sum(_requests(sandbox, a) for a in ACCOUNTS)
    assert _refused(sandbox) <= LEARNING_COST, f"{_refused(sandbox)} of {requests} requests refused"
    assert budget.shares("main") and budget.shares("fbe")


async def test_with_a_budget_per_account_both_accounts_keep_emags_full_pace(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(products=PRODUCTS, rate_scope="account", **EMAG_LIMITS)
    budget = InProcessRateBudget(RateLimits())
    read = await asyncio.gather(*(_scan(sandbox.base_url, a, budget) for a in ACCOUNTS))
    assert read == [_truth(sandbox, a) for a in ACCOUNTS]
    assert _refused(sandbox) <= 2  # a stray 429 (a request that reached the sandbox late) may happen; no more
    assert not budget.shares("main") and not budget.shares("fbe")
    assert statistics.median(_pace_together(sandbox)) > 3
    assert [_busiest_second(sandbox, a) for a in ACCOUNTS] == [3, 3]


async def test_one_stray_429_while_both_accounts_run_does_not_pace_them_together(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(products=PRODUCTS, rate_scope="account", **EMAG_LIMITS)
    sandbox.state.faults.inject("429", count=1, page=4)  # whichever account asks for page 4 first
    budget = InProcessRateBudget(RateLimits())
    read = await asyncio.gather(*(_scan(sandbox.base_url, a, budget) for a in ACCOUNTS))
    assert read == [_truth(sandbox, a) for a in ACCOUNTS]
    assert sandbox.state.faults.triggered == ["429"]
    assert not budget.shares("main") and not budget.shares("fbe")
    assert statistics.median(_pace_together(sandbox)) > 3
    assert [_busiest_second(sandbox, a) for a in ACCOUNTS] == [3, 3]


async def test_refusals_of_an_account_syncing_alone_do_not_pace_it_with_an_idle_one() -> None:
    budget = InProcessRateBudget(RateLimits())
    for account in ACCOUNTS:
        budget.bind(account, "https://marketplace-api.emag.ro/api-3")
    for _ in range(3):
        await budget.acquire("main")
        await budget.refused("main", "default", 0.0)
    assert not budget.shares("main")


async def test_processes_learn_through_redis_that_their_accounts_share_one_budget(
    redis_url: str, redis_prefix: str
) -> None:
    limits = RateLimits(per_second=20, per_minute=1200)
    url = "https://marketplace-api.emag.ro/api-3"
    async with (
        RedisRateBudget(redis_url, limits, key_prefix=redis_prefix) as first,
        RedisRateBudget(redis_url, limits, key_prefix=redis_prefix) as second,
    ):
        first.bind("main", url)
        second.bind("fbe", url)
        assert await first.reserve("main", "default") == 0
        assert await second.reserve("fbe", "default") == 0  # separate budgets so far: no wait
        for _ in range(3):  # three refusals while fbe, in the other process, was active
            await first.refused("main", "default", 0.0)
        assert first.shares("main")
        await first.reserve("main", "default")
        # The other process learns it from its next reservation: one slot sequence for both accounts.
        assert await second.reserve("fbe", "default") >= limits.interval("default") * 0.9
        assert second.shares("fbe")


async def test_a_sharing_flag_written_to_redis_by_someone_else_does_not_hold_forever(
    redis_url: str, redis_prefix: str
) -> None:
    async with RedisRateBudget(redis_url, RateLimits(), key_prefix=redis_prefix) as budget:
        budget.bind("main", "https://marketplace-api.emag.ro/api-3")
        flag = f"{redis_prefix}:emag-shared:marketplace-api.emag.ro:default"
        redis.Redis.from_url(redis_url).set(flag, "1")  # no expiry
        await budget.reserve("main", "default")
        assert budget.shares("main")
        assert 0 < redis.Redis.from_url(redis_url).pttl(flag) <= SHARED_MEMORY_SECONDS * 1000


async def test_two_processes_sharing_one_ip_budget_through_redis_read_every_offer_without_a_storm(
    make_sandbox: Callable[..., Sandbox], redis_url: str, redis_prefix: str
) -> None:
    sandbox = make_sandbox(products=PRODUCTS, rate_scope="ip", **EMAG_LIMITS)
    start_at = time.time() + 2.5  # both interpreters are up and waiting by then
    args = [sandbox.base_url, redis_url, redis_prefix, str(start_at)]
    workers = [
        await asyncio.create_subprocess_exec(sys.executable, __file__, account, *args, stdout=subprocess.PIPE)
        for account in ACCOUNTS
    ]
    outputs = await asyncio.gather(*(asyncio.wait_for(w.communicate(), 120) for w in workers))
    assert [w.returncode for w in workers] == [0, 0]
    results = [orjson.loads(stdout) for stdout, _ in outputs]
    assert [r["ids"] for r in results] == [_truth(sandbox, a) for a in ACCOUNTS]
    requests = sum(_requests(sandbox, a) for a in ACCOUNTS)
    assert _refused(sandbox) <= LEARNING_COST, f"{_refused(sandbox)} of {requests} requests refused"
    assert all(r["shares"] for r in results)


async def _worker(account: str, base_url: str, redis_url: str, prefix: str, start_at: float) -> dict[str, Any]:
    await asyncio.sleep(max(0.0, start_at - time.time()))
    async with RedisRateBudget(redis_url, RateLimits(), key_prefix=prefix) as budget:
        ids = await _scan(base_url, account, budget)
        return {"ids": ids, "shares": budget.shares(account)}


if __name__ == "__main__":
    account_arg, base_arg, redis_arg, prefix_arg, start_arg = sys.argv[1:6]
    found = asyncio.run(_worker(account_arg, base_arg, redis_arg, prefix_arg, float(start_arg)))
    sys.stdout.write(orjson.dumps(found).decode() + "\n")
