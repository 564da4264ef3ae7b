from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from magflow.testing.sandbox import Sandbox, read


def _burst(sandbox: Sandbox, n: int, route: str = "product_offer/read") -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    with sandbox.client("main", limits=limits) as http, ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: read(http, route, itemsPerPage=1), range(n)))


def test_a_burst_over_3_per_second_gets_429(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(rate_per_second=3.0, rate_per_minute=180)
    responses = _burst(sandbox, 10)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 3 + [429] * 7
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json() == {"message": "API rate limit exceeded"}
    assert refused.headers["content-type"].startswith("application/json")
    assert refused.headers["x-ratelimit-limit-second"] == "3"
    assert refused.headers["x-ratelimit-remaining-second"] == "0"
    assert sandbox.state.count_429("main") == 7
    assert sum(sandbox.state.requests_per_second("main").values()) == 10
    assert sandbox.state.max_requests_in_any_second("main") == 10
    # other account and the order bucket have budgets of their own
    with sandbox.client("fbe") as fbe, sandbox.client("main") as main:
        assert read(fbe).status_code == 200
        assert read(main, "order/read").status_code == 200
    time.sleep(1.05)
    with sandbox.client() as http:
        assert read(http).status_code == 200


def test_a_client_pacing_itself_never_exceeds_the_budget(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(rate_per_second=3.0, rate_per_minute=180)
    with sandbox.client() as http:
        for _ in range(7):
            assert read(http).status_code == 200
            time.sleep(0.34)
    assert sandbox.state.count_429("main") == 0
    assert sandbox.state.max_requests_in_any_second("main") <= 3


def test_the_per_minute_budget_and_runtime_changes(sandbox: Sandbox) -> None:
    sandbox.state.set_rate_limit(per_second=None, per_minute=4)
    with sandbox.client() as http:
        statuses = [read(http).status_code for _ in range(6)]
        assert statuses == [200] * 4 + [429] * 2
        sandbox.state.set_rate_limit(None, None)
        assert read(http).status_code == 200


def test_order_routes_allow_12_per_second(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(order_rate_per_second=12.0, order_rate_per_minute=720)
    statuses = sorted(r.status_code for r in _burst(sandbox, 15, route="order/count"))
    assert statuses == [200] * 12 + [429] * 3
    assert sandbox.state.count_429("main", bucket="orders") == 3
