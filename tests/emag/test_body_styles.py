"""The three body styles (EMAG_REQUEST_FORMAT): what each one writes, and what a server reads from it over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from magflow.emag import AccountConfig, EmagClient, InProcessRateBudget, RateLimits
from magflow.emag.body import FORM, JSON, encode
from magflow.testing.standin import StandIn, parse_php_form

FAST = RateLimits(per_second=1000, per_minute=60_000, orders_per_second=1000, orders_per_minute=60_000)
FILTERS = {"status": 1, "part_number": "A&B=C [x]", "id": 1001}


def test_json_puts_every_key_at_the_top_level() -> None:
    body, content_type = encode({"currentPage": 2, "itemsPerPage": 100, "status": 1}, "json")
    assert content_type == JSON
    assert orjson.loads(body) == {"currentPage": 2, "itemsPerPage": 100, "status": 1}


def test_json_data_wraps_every_key_in_data() -> None:
    body, content_type = encode({"currentPage": 2, "itemsPerPage": 100}, "json-data")
    assert content_type == JSON
    assert orjson.loads(body) == {"data": {"currentPage": 2, "itemsPerPage": 100}}


def test_form_writes_phps_bracket_notation() -> None:
    body, content_type = encode({"currentPage": 2, "itemsPerPage": 100}, "form")
    assert content_type == FORM
    assert body == b"data[currentPage]=2&data[itemsPerPage]=100"


def test_form_writes_lists_with_empty_brackets_and_nested_objects_with_their_keys() -> None:
    body, _ = encode({"status": [1, 0], "filter": {"id": 5, "ids": [7, 8]}}, "form")
    assert body == (b"data[status][]=1&data[status][]=0&data[filter][id]=5&data[filter][ids][]=7&data[filter][ids][]=8")


def test_form_indexes_a_list_of_objects_so_php_keeps_each_object_whole() -> None:
    data = {"stock": [{"warehouse_id": 1, "value": 3}, {"warehouse_id": 2, "value": 4}]}
    body, _ = encode(data, "form")
    assert body == (
        b"data[stock][0][warehouse_id]=1&data[stock][0][value]=3&data[stock][1][warehouse_id]=2&data[stock][1][value]=4"
    )
    assert parse_php_form(body) == {
        "data": {"stock": [{"warehouse_id": "1", "value": "3"}, {"warehouse_id": "2", "value": "4"}]}
    }


def test_form_sends_booleans_as_1_and_0_and_none_as_empty_and_escapes_text() -> None:
    body, _ = encode({"on": True, "off": False, "none": None, "text": "A&B=C [x] ă"}, "form")
    assert body == b"data[on]=1&data[off]=0&data[none]=&data[text]=A%26B%3DC%20%5Bx%5D%20%C4%83"
    assert parse_php_form(body) == {"data": {"on": "1", "off": "0", "none": "", "text": "A&B=C [x] ă"}}


def test_json_styles_keep_booleans_none_and_nesting_as_json() -> None:
    data = {"on": True, "none": None, "filter": {"ids": [1, 2], "stock": [{"value": 3}]}}
    assert orjson.loads(encode(data, "json")[0]) == data
    assert orjson.loads(encode(data, "json-data")[0]) == {"data": data}


@pytest.mark.parametrize(
    ("style", "expected"), [("json", b"{}"), ("json-data", b"{}"), ("form", b"")]
)  # fmt: skip
def test_a_call_without_parameters_sends_an_empty_body(style: Any, expected: bytes) -> None:
    assert encode(None, style)[0] == expected


def test_an_empty_parameter_set_keeps_each_styles_shape() -> None:
    assert encode({}, "json")[0] == b"{}"
    assert orjson.loads(encode({}, "json-data")[0]) == {"data": {}}
    assert encode({}, "form")[0] == b""


@pytest.fixture(scope="module")
def emag() -> Iterator[StandIn]:
    with StandIn(products=5, reads="any") as server:
        yield server


def _config(emag: StandIn, style: str) -> AccountConfig:
    return emag.config(request_format=style)


@pytest.mark.parametrize("style", ["json", "json-data", "form"])
async def test_the_server_reads_exactly_the_parameters_each_style_sends(emag: StandIn, style: str) -> None:
    emag.received.clear()
    async with EmagClient(_config(emag, style), budget=InProcessRateBudget(FAST)) as client:
        page = await client.read_products_page(1, 10, FILTERS)
        await client.count_products(FILTERS, items_per_page=10)
    read, count = emag.received
    sent = {**FILTERS, "currentPage": 1, "itemsPerPage": 10}
    if style == "form":  # form values are text, as PHP's $_POST holds them
        sent = {k: str(v) for k, v in sent.items()}
    assert (read.route, count.route) == ("product_offer/read", "product_offer/count")
    assert read.params == sent
    assert count.params == {k: v for k, v in sent.items() if k != "currentPage"}
    assert read.content_type == (FORM if style == "form" else JSON)
    assert page.offers == []  # no offer 1001 has part_number "A&B=C [x]": the filters arrived intact


@pytest.mark.parametrize("reads", ["top_level", "wrapped", "form"])
async def test_a_strict_server_honours_only_its_own_style_and_the_check_says_which(reads: Any) -> None:
    own = {"top_level": "json", "wrapped": "json-data", "form": "form"}[reads]
    with StandIn(products=3, reads=reads) as emag:
        for style in ("json", "json-data", "form"):
            async with EmagClient(_config(emag, style), budget=InProcessRateBudget(FAST)) as client:
                verdict = await client.check_connection()
                ids = [o.id for o in (await client.read_products_page(2, 1)).offers]
            if style == own:
                assert verdict.status == "ok" and verdict.paging == "honoured"
                assert ids == [1001]
            else:
                # An ignored body means page 1 of 100: the check sees it instead of reporting "ok"
                assert verdict.status == "paging_ignored", verdict
                assert f"EMAG_REQUEST_FORMAT={style}" in verdict.message
                assert "run `magflow test-connection --detect`" in verdict.message
                assert ids == [1000, 1001, 1002]


@pytest.mark.parametrize(("style", "body_style"), [("json", "top_level"), ("json-data", "data"), ("form", "form")])
async def test_the_sandbox_reads_paging_and_filters_from_each_style(
    make_sandbox: Any, style: str, body_style: str
) -> None:
    from magflow.sandbox import SANDBOX_ACCOUNTS

    sandbox = make_sandbox(products=40, body_style=body_style)
    user, password = SANDBOX_ACCOUNTS["main"]
    config = AccountConfig(
        account="main", username=user, password=password, base_url=sandbox.base_url, request_format=style
    )
    active = sorted(p["id"] for p in sandbox.state.truth("main") if p["status"] == 1)
    async with EmagClient(config, budget=InProcessRateBudget(FAST)) as client:
        page = await client.read_products_page(2, 3, {"status": 1})
        count = await client.count_products({"status": 1}, items_per_page=3)
    assert [o.id for o in page.offers] == active[3:6]
    assert count.items == len(active)
