"""The client over real HTTP against the sandbox: complete scans under faults, and every error typed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from magflow.emag import (
    AccountConfig,
    EmagApiError,
    EmagAuthError,
    EmagClient,
    EmagIpNotWhitelistedError,
    EmagRateLimitedError,
    EmagRequestError,
    EmagTransientError,
    InProcessRateBudget,
    ProductPage,
    RateLimits,
)
from magflow.testing.sandbox import Sandbox

MakeConfig = Callable[..., AccountConfig]


async def scan(client: EmagClient, items_per_page: int = 25) -> list[ProductPage]:
    return [page async for page in client.iter_product_pages(items_per_page=items_per_page)]


def truth_ids(sandbox: Sandbox, account: str = "main") -> list[int]:
    return sorted(p["id"] for p in sandbox.state.truth(account))


async def test_a_scan_returns_every_product_exactly_once(
    sandbox: Sandbox, config: AccountConfig, fast_budget: InProcessRateBudget
) -> None:
    async with EmagClient(config, budget=fast_budget) as client:
        count = await client.count_products(items_per_page=25)
        pages = await scan(client)
    ids = [offer.id for page in pages for offer in page.offers]
    assert sorted(ids) == truth_ids(sandbox)
    assert count.items == len(ids) and count.pages == 12
    assert [p.page for p in pages] == list(range(1, 14))  # 12 full pages, then the empty 13th ends it
    assert client.stats.retries == 0 and client.stats.errors == {}


async def test_a_scan_under_injected_faults_still_returns_every_product_exactly_once(
    make_config: MakeConfig, sandbox: Sandbox, fast_budget: InProcessRateBudget
) -> None:
    faults = sandbox.state.faults
    for page, kind in enumerate(
        ["500", "502_html", "504", "timeout", "reset", "malformed_json", "ok_without_iserror"], 2
    ):
        faults.inject(kind, page=page, timeout_seconds=5)
    faults.inject("500", count=2, page=10)  # the same page failing twice in a row
    config = make_config(sandbox.base_url, timeout_seconds=0.5)
    async with EmagClient(config, budget=fast_budget) as client:
        pages = await scan(client)
    ids = Counter(offer.id for page in pages for offer in page.offers)
    assert sorted(ids) == truth_ids(sandbox)
    assert set(ids.values()) == {1}
    assert sorted(faults.triggered) == sorted(["500", "502_html", "504", "timeout", "reset", "malformed_json",
                                               "ok_without_iserror", "500", "500"])  # fmt: skip
    assert client.stats.retries == 9


async def test_a_random_error_rate_never_loses_a_page(
    make_config: MakeConfig, sandbox: Sandbox, fast_budget: InProcessRateBudget
) -> None:
    sandbox.state.faults.set_error_rate(0.3, kinds=["500", "502_html", "504", "reset", "malformed_json"], seed=4)
    config = make_config(sandbox.base_url, max_attempts=8)
    async with EmagClient(config, budget=fast_budget) as client:
        pages = await scan(client, items_per_page=10)
    ids = [offer.id for page in pages for offer in page.offers]
    assert sorted(ids) == truth_ids(sandbox)
    assert set(Counter(ids).values()) == {1}
    # a prefetched page past the end may fail and be dropped unretried once the short page is seen
    assert 0 < client.stats.retries <= len(sandbox.state.faults.triggered)


async def test_a_corrupt_product_is_reported_rejected_and_its_page_neighbours_kept(
    sandbox: Sandbox, config: AccountConfig, fast_budget: InProcessRateBudget
) -> None:
    sandbox.state.faults.inject("corrupt_product", page=3)
    async with EmagClient(config, budget=fast_budget) as client:
        pages = await scan(client)
    rejected = [r for page in pages for r in page.rejected]
    ids = [offer.id for page in pages for offer in page.offers]
    assert len(rejected) == 1 and rejected[0].offer_id is not None
    assert "sale_price" in rejected[0].reason
    assert sorted([*ids, rejected[0].offer_id]) == truth_ids(sandbox)
    assert len(pages[2].offers) == 24 and pages[2].raw_count == 25


async def test_a_page_that_keeps_failing_raises_naming_the_page_after_earlier_pages_were_yielded(
    sandbox: Sandbox, config: AccountConfig, fast_budget: InProcessRateBudget
) -> None:
    sandbox.state.faults.inject("502_html", count=10, page=4)
    seen: list[int] = []
    async with EmagClient(config, budget=fast_budget) as client:
        with pytest.raises(EmagTransientError) as caught:
            async for page in client.iter_product_pages(items_per_page=25):
                seen.append(page.page)
    error = caught.value
    assert seen == [1, 2, 3]
    assert (error.page, error.account, error.attempts, error.network) == (4, "main", 4, False)
    assert str(error) == (
        "eMAG failed product_offer/read page 4 for account main after 4 attempts "
        "(last: HTTP 502 with an HTML body): eMAG is having trouble; retry later"
    )
    assert client.stats.errors == {"transient": 1}


async def test_timeouts_that_never_end_raise_a_network_error_saying_what_to_do(
    make_config: MakeConfig, sandbox: Sandbox, fast_budget: InProcessRateBudget
) -> None:
    sandbox.state.faults.inject("timeout", count=3, page=2, timeout_seconds=5)
    config = make_config(sandbox.base_url, timeout_seconds=0.3, max_attempts=3)
    async with EmagClient(config, budget=fast_budget) as client:
        with pytest.raises(EmagTransientError) as caught:
            await client.read_products_page(2)
    assert caught.value.network and caught.value.page == 2
    assert "no answer within 0.3s" in str(caught.value)
    assert "EMAG_REQUEST_TIMEOUT_SECONDS" in str(caught.value)


async def test_the_deadline_bounds_the_retries(
    make_config: MakeConfig, sandbox: Sandbox, fast_budget: InProcessRateBudget
) -> None:
    sandbox.state.faults.inject("500", count=50)
    config = make_config(
        sandbox.base_url, max_attempts=20, deadline_seconds=0.5, backoff_base_seconds=0.2, backoff_max_seconds=0.2
    )
    async with EmagClient(config, budget=fast_budget) as client:
        with pytest.raises(EmagTransientError) as caught:
            await client.read_products_page(1)
    assert 2 <= caught.value.attempts < 6


async def test_wrong_credentials_are_refused_with_the_settings_to_check(
    make_config: MakeConfig, sandbox: Sandbox, fast_budget: InProcessRateBudget
) -> None:
    config = make_config(sandbox.base_url, account="fbe", password="Wr0ng-Secret-pw")
    async with EmagClient(config, budget=fast_budget) as client:
        with pytest.raises(EmagAuthError) as caught:
            await client.read_products_page(1)
        verdict = await client.check_connection()
    assert str(caught.value) == (
        "eMAG refused the credentials of account fbe: check EMAG_FBE_USERNAME and EMAG_FBE_PASSWORD "
        "and that the user has API rights in the eMAG seller portal"
    )
    assert client.stats.requests == 2  # refused credentials are not retried
    assert (verdict.status, verdict.product_count) == ("auth_failed", None)
    assert "Wr0ng-Secret-pw" not in repr(verdict) + repr(caught.value) + repr(config)


@pytest.mark.parametrize("status_code", [200, 403])
async def test_an_ip_that_is_not_whitelisted_is_named(
    sandbox: Sandbox, config: AccountConfig, fast_budget: InProcessRateBudget, status_code: int
) -> None:
    sandbox.state.set_ip_whitelisted(False, reported_ip="203.0.113.7", status_code=status_code)
    async with EmagClient(config, budget=fast_budget) as client:
        with pytest.raises(EmagIpNotWhitelistedError) as caught:
            await client.read_products_page(2)
        verdict = await client.check_connection()
    assert caught.value.ip == "203.0.113.7" and caught.value.page == 2
    assert str(caught.value) == (
        "eMAG rejected this server's IP 203.0.113.7 for account main: whitelist it in the eMAG seller portal"
    )
    assert verdict.status == "ip_not_whitelisted"


async def test_a_rejected_filter_names_emags_message_and_field(
    sandbox: Sandbox, config: AccountConfig, fast_budget: InProcessRateBudget
) -> None:
    sandbox.state.set_quirks(error_style="http400")  # the 400 shape; the classic 200 isError one is below
    async with EmagClient(config, budget=fast_budget) as client:
        with pytest.raises(EmagRequestError) as caught:
            await client.read_products_page(1, filters={"status": "active"})
    error = caught.value
    assert (error.status, error.field, error.emag_message) == (400, "status", "Validation errors in your request")
    assert "fix the request's filters" in str(error)
    assert client.stats.requests == 1


async def test_a_filter_rejected_with_a_200_iserror_answer_names_the_field(
    sandbox: Sandbox, config: AccountConfig, fast_budget: InProcessRateBudget
) -> None:
    async with EmagClient(config, budget=fast_budget) as client:
        with pytest.raises(EmagApiError) as caught:
            await client.read_products_page(1, filters={"status": "active"})
    assert caught.value.field == "status" and "status" in str(caught.value)
    assert client.stats.requests == 1


async def test_a_wrong_base_url_is_a_404_request_error(
    make_config: MakeConfig, sandbox: Sandbox, fast_budget: InProcessRateBudget
) -> None:
    config = make_config(sandbox.base_url.replace("/api-3", "/api-2"))
    async with EmagClient(config, budget=fast_budget) as client:
        with pytest.raises(EmagRequestError) as caught:
            await client.count_products()
        verdict = await client.check_connection()
    assert caught.value.status == 404 and "Invalid URL" in str(caught.value)
    assert "check the base URL" in str(caught.value)
    assert verdict.status == "error"


async def test_is_error_true_is_surfaced_with_emags_messages(
    sandbox: Sandbox, config: AccountConfig, fast_budget: InProcessRateBudget
) -> None:
    async with EmagClient(config, budget=fast_budget) as client:
        with pytest.raises(EmagApiError) as caught:
            await client.acknowledge_order(999_999_999)
    assert caught.value.messages and caught.value.messages[0] in str(caught.value)
    assert caught.value.route == "order/acknowledge/999999999"


async def test_429s_that_do_not_stop_raise_rate_limited(
    make_config: MakeConfig, sandbox: Sandbox, fast_budget: InProcessRateBudget
) -> None:
    sandbox.state.set_rate_limit(per_second=1, per_minute=None)
    config = make_config(sandbox.base_url, max_attempts=2, backoff_base_seconds=0.01)
    async with EmagClient(config, budget=fast_budget) as client:  # a budget far above eMAG's limit
        await client.read_products_page(1)
        with pytest.raises(EmagRateLimitedError) as caught:
            await client.read_products_page(2)
        verdict = await client.check_connection()
    assert caught.value.page == 2 and caught.value.attempts == 2
    assert "EMAG_RATE_LIMIT_PER_SECOND" in str(caught.value)
    assert verdict.status == "rate_limited"
    assert client.stats.http_429 >= 2


async def test_an_unreachable_server_is_reported_unreachable(
    make_config: MakeConfig, fast_budget: InProcessRateBudget
) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = make_config(f"http://127.0.0.1:{port}/api-3", max_attempts=2)
    async with EmagClient(config, budget=fast_budget) as client:
        verdict = await client.check_connection()
    assert verdict.status == "unreachable"
    assert "network access" in verdict.message


async def test_connection_check_reports_the_product_count_and_latency(
    sandbox: Sandbox, config: AccountConfig, fast_budget: InProcessRateBudget
) -> None:
    async with EmagClient(config, budget=fast_budget) as client:
        verdict = await client.check_connection()
    assert verdict.status == "ok" and verdict.ok
    assert verdict.product_count == len(sandbox.state.truth("main"))
    assert verdict.latency_ms is not None and verdict.latency_ms > 0


async def test_the_proactive_budget_keeps_a_scan_under_the_limit(make_config: MakeConfig, make_sandbox: object) -> None:
    sandbox = make_sandbox(products=200, rate_per_second=10.0, rate_per_minute=600)  # type: ignore[operator]
    limits = RateLimits(per_second=10.0, per_minute=600)
    async with EmagClient(make_config(sandbox.base_url), budget=InProcessRateBudget(limits)) as client:
        pages = await scan(client, items_per_page=10)
    assert sum(len(p.offers) for p in pages) == 200
    assert sandbox.state.count_429("main") == 0
    assert sandbox.state.max_requests_in_any_second("main") <= 10


async def test_single_id_read_carries_gpsr_details_and_scan_windows(
    sandbox: Sandbox, config: AccountConfig, fast_budget: InProcessRateBudget
) -> None:
    async with EmagClient(config, budget=fast_budget) as client:
        listed = await client.read_products_page(1, 10)
        flagged = next(o for o in listed.offers if o.gpsr_manufacturer is True)
        single = await client.read_product(flagged.id)
        missing = await client.read_product(1)
        window = [p.page async for p in client.iter_product_pages(items_per_page=10, start_page=5, max_pages=3)]
    assert single is not None and single.id == flagged.id
    assert isinstance(single.gpsr_manufacturer, list) and single.gpsr_manufacturer[0]["name"]
    assert missing is None
    assert window == [5, 6, 7]


async def test_orders_and_vat(sandbox: Sandbox, config: AccountConfig, fast_budget: InProcessRateBudget) -> None:
    async with EmagClient(config, budget=fast_budget) as client:
        count = await client.count_orders({"status": 1})
        new_orders = await client.read_orders_page(1, 100, {"status": 1})
        await client.acknowledge_order(new_orders[0]["id"])
        after = await client.count_orders({"status": 1})
        vat = await client.read_vat()
    assert count.items == len(new_orders) > 0
    assert after.items == count.items - 1
    assert {rate["vat_id"] for rate in vat} >= {1}
    assert sandbox.state.max_requests_in_any_second("main", bucket="orders") >= 1
