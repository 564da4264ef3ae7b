"""eMAG's answer envelope as it really arrives, over real HTTP: each variant is read, retried or explained."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from magflow.emag import (
    EmagApiError,
    EmagClient,
    EmagIpNotWhitelistedError,
    EmagTransientError,
    InProcessRateBudget,
    ProductOffer,
    RateLimits,
)
from magflow.testing.standin import StandIn

FAST = RateLimits(per_second=1000, per_minute=60_000, orders_per_second=1000, orders_per_minute=60_000)
MAIN_IDS = [1000, 1001, 1002, 1003, 1004]


@pytest.fixture
def emag() -> Iterator[StandIn]:
    with StandIn(products=5) as server:
        yield server


def client(emag: StandIn, **changes: Any) -> EmagClient:
    return EmagClient(emag.config(**changes), budget=InProcessRateBudget(FAST))


async def scan_ids(c: EmagClient, per_page: int = 2) -> list[int]:
    return [o.id async for page in c.iter_product_pages(items_per_page=per_page) for o in page.offers]


@pytest.mark.parametrize("flag", [False, "false", "False", "FALSE", " false ", "0", 0])
async def test_is_error_false_in_any_spelling_is_a_success(emag: StandIn, flag: Any) -> None:
    emag.fail_next("envelope", body={"isError": flag, "messages": [], "results": [{"id": 7}]})
    async with client(emag) as c:
        page = await c.read_products_page(1)
    assert [o.id for o in page.offers] == [7]
    assert c.stats.retries == 0


@pytest.mark.parametrize("flag", [True, "true", "TRUE", "1", 1])
async def test_is_error_true_in_any_spelling_is_an_error_with_emags_message(emag: StandIn, flag: Any) -> None:
    emag.fail_next("envelope", body={"isError": flag, "messages": ["Invalid page"], "results": []})
    async with client(emag) as c:
        with pytest.raises(EmagApiError, match="Invalid page"):
            await c.read_products_page(1)
    assert c.stats.requests == 1  # eMAG understood and refused: not retried


@pytest.mark.parametrize("kind", ["iserror_missing", "iserror_null"])
async def test_an_answer_without_a_readable_is_error_is_not_taken_as_applied(emag: StandIn, kind: Any) -> None:
    # Both carry `"results": []`: taking them at their word would end the scan on page 1 with nothing read.
    emag.fail_next(kind)
    async with client(emag) as c:
        ids = await scan_ids(c)
    assert ids == MAIN_IDS
    assert c.stats.retries == 1


async def test_an_errors_list_beside_messages_is_shown_with_them(emag: StandIn) -> None:
    emag.fail_next(
        "envelope",
        body={
            "isError": True,
            "messages": ["Validation failed"],
            "errors": [{"field": "status", "message": "status must be 0, 1 or 2"}, "itemsPerPage too big"],
            "results": [],
        },
    )
    async with client(emag) as c:
        with pytest.raises(EmagApiError) as caught:
            await c.read_products_page(1)
    text = str(caught.value)
    assert "Validation failed" in text and "status: status must be 0, 1 or 2" in text and "itemsPerPage too big" in text


async def test_messages_as_objects_are_shown_as_text_with_their_code(emag: StandIn) -> None:
    emag.fail_next(
        "envelope", body={"isError": True, "messages": [{"message": "Offer is locked", "code": 1034}], "results": []}
    )
    emag.fail_next(
        "envelope",
        body={"isError": True, "messages": {"0": {"message": "ERROR: Invalid vendor ip [198.51.100.4]"}}},
    )
    async with client(emag) as c:
        with pytest.raises(EmagApiError) as locked:
            await c.read_products_page(1)
        with pytest.raises(EmagIpNotWhitelistedError) as refused:
            await c.read_products_page(1)
    assert "\u201cOffer is locked (code 1034)\u201d" in str(locked.value)
    assert refused.value.ip == "198.51.100.4"


async def test_results_as_an_object_keyed_by_position_are_read_in_position_order(emag: StandIn) -> None:
    emag.variants.add("results_object")
    page_body = {"isError": False, "messages": [], "results": {"1": {"id": 11}, "0": {"id": 10}, "2": {"id": 12}}}
    emag.fail_next("envelope", route="product_offer/read", body=page_body)
    emag.fail_next(
        "envelope",
        route="product_offer/count",
        body={"isError": False, "results": {"0": {"noOfItems": "5", "noOfPages": "3", "itemsPerPage": "2"}}},
    )
    async with client(emag) as c:
        first = await c.read_products_page(1, 3)
        count = await c.count_products(items_per_page=2)
        ids = await scan_ids(c)
        vat = await c.read_vat()
        orders = await c.read_orders_page(1)
    assert [o.id for o in first.offers] == [10, 11, 12]
    assert (count.items, count.pages) == (5, 3)
    assert ids == MAIN_IDS
    assert vat == [{"vat_id": 1, "vat_rate": 0.21, "is_default": 1}] and orders == []
    assert c.stats.retries == 0


def test_an_empty_object_sent_as_php_list_is_tolerated_in_every_object_field() -> None:
    raw = {
        "id": 5,
        "family": [],
        "images": [[]],
        "characteristics": [[], {"id": 38, "value": "x"}],
        "stock": [[]],
        "handling_time": [[]],
        "validation_status": [[]],
        "translation_validation_status": [],
        "offer_validation_status": [[]],
        "manufacturer": [[]],
        "eu_representative": [],
        "doc_errors": {},
        "attachments": [[]],
        "offer_details": [],
        "start_date": [],
    }
    offer = ProductOffer.from_payload(raw)
    assert offer.family is None and offer.images == [{}] and offer.stock == [{}] and offer.handling_time == [{}]
    assert offer.characteristics == [{}, {"id": 38, "value": "x"}]
    assert offer.validation_status is None and offer.offer_validation_status is None
    assert offer.gpsr_manufacturer == [{}] and offer.gpsr_eu_representative == []
    assert offer.doc_errors == [] and offer.total_stock == 0


async def test_an_html_page_answering_200_is_retried_and_blamed_on_a_proxy(emag: StandIn) -> None:
    emag.fail_next("html_200")
    async with client(emag) as c:
        assert await scan_ids(c) == MAIN_IDS
        assert c.stats.retries == 1
        emag.fail_next("html_200", count=4)
        with pytest.raises(EmagTransientError) as caught:
            await c.count_products()
    assert "HTTP 200 with an HTML body" in str(caught.value)
    assert "a proxy or captive portal may be answering" in str(caught.value)


async def test_gzip_bodies_are_decoded_and_a_body_falsely_labelled_gzip_is_retried(emag: StandIn) -> None:
    emag.variants.add("gzip")
    async with client(emag) as c:
        assert await scan_ids(c) == MAIN_IDS
        emag.fail_next("gzip_garbage")
        count = await c.count_products()
    assert count.items == 5
    assert c.stats.retries == 1 and c.stats.errors == {}


@pytest.mark.parametrize("retry_after", [None, "0"])
async def test_a_429_with_rate_limit_headers_is_retried_and_its_headers_kept(
    emag: StandIn, retry_after: str | None
) -> None:
    headers = {"X-RateLimit-Limit-3second": "3", "X-RateLimit-Remaining-3second": "0"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    emag.fail_next("429", headers=headers)
    async with client(emag) as c:
        ids = await scan_ids(c)
    assert ids == MAIN_IDS
    assert c.stats.http_429 == 1 and c.stats.retries == 1
    assert c.stats.rate_limit_headers == {"X-RateLimit-Limit-3second": "3", "X-RateLimit-Remaining-3second": "0"}


async def test_the_rate_limit_headers_of_ordinary_answers_are_kept(emag: StandIn) -> None:
    emag.variants.add("rate_headers")
    async with client(emag) as c:
        await c.count_products()
    assert c.stats.rate_limit_headers == {"X-RateLimit-Limit-3second": "9", "X-RateLimit-Remaining-3second": "8"}


async def test_a_connection_reset_in_the_middle_of_a_body_is_retried(emag: StandIn) -> None:
    emag.fail_next("reset_mid_body", route="product_offer/read")
    async with client(emag) as c:
        ids = await scan_ids(c)
    assert ids == MAIN_IDS
    assert c.stats.retries == 1


async def test_a_30_second_page_within_the_default_timeout_is_simply_read(emag: StandIn) -> None:
    emag.fail_next("slow", route="product_offer/count", seconds=30)
    async with client(emag, timeout_seconds=120.0) as c:  # EMAG_REQUEST_TIMEOUT_SECONDS' default
        count = await c.count_products()
    assert count.items == 5 and c.stats.retries == 0


async def test_a_page_slower_than_the_timeout_is_retried_then_named_with_the_setting_to_raise(emag: StandIn) -> None:
    emag.fail_next("slow", route="product_offer/read", seconds=3)
    async with client(emag, timeout_seconds=1.0) as c:
        assert await scan_ids(c, per_page=5) == MAIN_IDS  # one slow answer: retried
        emag.fail_next("slow", count=4, route="product_offer/read", seconds=3)
        with pytest.raises(EmagTransientError) as caught:
            await c.read_products_page(2)
    assert "no answer within 1s" in str(caught.value)
    assert "raise EMAG_REQUEST_TIMEOUT_SECONDS" in str(caught.value)
    assert caught.value.page == 2


async def test_a_page_that_trickles_in_past_the_timeout_is_a_timeout_not_a_hang(emag: StandIn) -> None:
    # Each piece arrives well within the read timeout, so only a bound on the whole answer (read timeout plus
    # connect timeout: 3 s here) notices a page that takes 6 s.
    emag.fail_next("trickle", count=2, route="product_offer/read", seconds=6)
    async with client(emag, timeout_seconds=1.0, max_attempts=2) as c:
        with pytest.raises(EmagTransientError) as caught:
            await c.read_products_page(1)
    assert "no answer within 1s" in str(caught.value)
    assert c.stats.requests == 2
