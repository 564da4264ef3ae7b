from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

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


def _statuses(sandbox: Sandbox, account: str, n: int, auth: tuple[str, str] | None = None) -> list[int]:
    with sandbox.client(account, **({"auth": auth} if auth else {})) as http:
        return [read(http, "product_offer/count").status_code for _ in range(n)]


def test_with_rate_scope_ip_main_and_fbe_share_one_budget(make_sandbox: Callable[..., Sandbox]) -> None:
    apart = make_sandbox(products=20, rate_per_second=None, rate_per_minute=4)
    shared = make_sandbox(products=20, rate_per_second=None, rate_per_minute=4, rate_scope="ip")
    for sandbox in (apart, shared):
        _statuses(sandbox, "main", 3)
    assert _statuses(apart, "fbe", 2) == [200, 200]
    assert _statuses(shared, "fbe", 2) == [200, 429]
    assert (shared.state.count_429("main"), shared.state.count_429("fbe")) == (0, 1), "counted where it arrived"


def test_with_count_rejected_a_refused_request_uses_budget_too(make_sandbox: Callable[..., Sandbox]) -> None:
    results = {}
    for count_rejected in (False, True):
        sandbox = make_sandbox(products=20, rate_per_second=None, rate_per_minute=4, count_rejected=count_rejected)
        assert _statuses(sandbox, "main", 6) == [200] * 4 + [429] * 2
        sandbox.state.set_rate_limit(per_second=None, per_minute=6)  # room for two more... if 429s were free
        results[count_rejected] = _statuses(sandbox, "main", 1)
    assert results == {False: [200], True: [429]}


def test_in_fixed_windows_a_burst_on_each_side_of_a_second_boundary_passes(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    def bursts(window: str) -> list[int]:
        sandbox = make_sandbox(products=20, rate_per_second=3.0, rate_per_minute=None, rate_window=window)
        with sandbox.client() as http:
            read(http, "vat/read")  # open the connection before timing the bursts
            sandbox.state.reset_counters()
            time.sleep(1.5 - time.time() % 1)  # the middle of a second
            statuses = [read(http, "vat/read").status_code for _ in range(3)]
            time.sleep(1.05 - time.time() % 1)  # just after the next boundary, well within a second of the first
            return statuses + [read(http, "vat/read").status_code for _ in range(3)]

    assert bursts("fixed") == [200] * 6
    assert bursts("sliding") == [200] * 3 + [429] * 3


def test_with_limit_before_auth_a_wrong_password_uses_the_logins_budget(make_sandbox: Callable[..., Sandbox]) -> None:
    results = {}
    for before in (False, True):
        sandbox = make_sandbox(products=20, rate_per_second=None, rate_per_minute=2, limit_before_auth=before)
        assert _statuses(sandbox, "main", 2, auth=("sandbox-main", "wrong")) == [403, 403]
        results[before] = _statuses(sandbox, "main", 1) + _statuses(sandbox, "fbe", 1)
    assert results == {False: [200, 200], True: [429, 200]}


@pytest.mark.parametrize("window", ["sliding", "fixed"])
def test_retry_after_says_when_a_request_would_pass(make_sandbox: Callable[..., Sandbox], window: str) -> None:
    sandbox = make_sandbox(products=20, rate_per_second=None, rate_per_minute=1, retry_after=True, rate_window=window)
    with sandbox.client() as http:
        assert read(http).status_code == 200
        refused = read(http)
        sandbox.state.set_quirks(retry_after=False)
        silent = read(http)
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
    assert silent.status_code == 429 and "retry-after" not in silent.headers


def test_the_rate_model_is_set_over_the_control_api(sandbox: Sandbox) -> None:
    with sandbox.control() as control:
        answer = control.post("/rate_limit", json={"rate_scope": "ip", "window": "fixed", "count_rejected": True})
        assert answer.json()["model"] == {
            "rate_scope": "ip", "count_rejected": True, "rate_window": "fixed", "limit_before_auth": False,
            "retry_after": False,
        }  # fmt: skip
        assert control.post("/quirks", json={"rate_scope": "planet"}).status_code == 400
    sandbox.state.reset()
    assert sandbox.state.limiter.model.rate_scope == "account"
