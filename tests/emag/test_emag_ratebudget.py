"""The rate budget: evenly spaced slots, shared by every process through Redis, pushed back by a 429."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from magflow.emag import InProcessRateBudget, RateLimits, RedisRateBudget
from magflow.testing.sandbox import Sandbox

WORKER = Path(__file__).with_name("budget_scan_worker.py")


async def _spacing(budget: Any, n: int, bucket: str = "default") -> list[float]:
    moments = []
    for _ in range(n):
        await budget.acquire("main", bucket)
        moments.append(time.monotonic())
    return [b - a for a, b in itertools.pairwise(moments)]


async def test_in_process_budget_spaces_requests_evenly_per_account_and_bucket() -> None:
    budget = InProcessRateBudget(RateLimits(per_second=20, per_minute=1200, orders_per_second=50))
    gaps = await _spacing(budget, 6)
    assert sum(gaps) >= 5 * budget.limits.interval("default") * 0.99  # slots are exact, wake-ups jitter
    started = time.monotonic()
    assert await budget.acquire("fbe") == 0  # another account has its own budget
    assert await budget.acquire("main", "orders") == 0  # and so has the orders bucket
    assert time.monotonic() - started < 0.01


async def test_a_heavier_reservation_leaves_more_room_after_it() -> None:
    budget = InProcessRateBudget(RateLimits(per_second=10, per_minute=600, safety_margin=0))
    await budget.acquire("main", weight=3)
    assert 0.28 <= await budget.acquire("main") <= 0.31


async def test_a_lower_per_minute_limit_sets_the_pace() -> None:
    limits = RateLimits(per_second=3, per_minute=60, safety_margin=0)
    assert limits.interval("default") == 1.0
    assert RateLimits().interval("orders") < RateLimits().interval("default")


async def test_redis_budget_is_shared_between_instances_and_pushed_back_by_a_429(
    redis_url: str, redis_prefix: str
) -> None:
    limits = RateLimits(per_second=20, per_minute=1200)
    async with (
        RedisRateBudget(redis_url, limits, key_prefix=redis_prefix) as first,
        RedisRateBudget(redis_url, limits, key_prefix=redis_prefix) as second,
    ):
        moments = []
        for budget in (first, second, first, second):
            await budget.acquire("main")
            moments.append(time.monotonic())
        gaps = [b - a for a, b in itertools.pairwise(moments)]
        assert sum(gaps) >= 3 * limits.interval("default") * 0.99
        await first.penalize("main", "default", 0.3)
        assert await second.acquire("main") >= 0.25


async def test_two_processes_share_one_redis_budget_and_never_exceed_emags_limit(
    make_sandbox: Callable[..., Sandbox], redis_url: str, redis_prefix: str
) -> None:
    sandbox = make_sandbox(products=160, rate_per_second=3.0, rate_per_minute=180)
    start_at = time.time() + 2.5  # both interpreters are up and waiting by then
    args = [sandbox.base_url, redis_url, redis_prefix, "20", str(start_at)]
    workers = [
        await asyncio.create_subprocess_exec(sys.executable, str(WORKER), *args, stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = await asyncio.gather(*(asyncio.wait_for(w.communicate(), 60) for w in workers))
    assert [w.returncode for w in workers] == [0, 0]
    results = [orjson.loads(stdout) for stdout, _ in outputs]
    truth = sorted(p["id"] for p in sandbox.state.truth("main"))
    for result in results:
        assert sorted(result["ids"]) == truth
        assert result["pages"] == list(range(1, 10))
    assert sandbox.state.count_429("main") == 0
    assert sandbox.state.max_requests_in_any_second("main") <= 3
    busiest_seconds = sorted(sandbox.state.requests_per_second("main").values())
    assert sum(busiest_seconds) == 18 and busiest_seconds[-1] == 3  # the budget was used, not idled
