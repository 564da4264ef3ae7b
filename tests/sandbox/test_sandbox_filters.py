from __future__ import annotations

from typing import Any

import pytest

from magflow.testing.sandbox import Sandbox, read, read_all


def _status_value(entry: Any) -> int:
    return int((entry[0] if isinstance(entry, list) else entry)["value"])


FILTERS = [
    ("status", 0, lambda p: p["status"] == 0),
    ("status", 2, lambda p: p["status"] == 2),
    ("validation_status", 9, lambda p: _status_value(p["validation_status"]) == 9),
    ("validation_status", 8, lambda p: _status_value(p["validation_status"]) == 8),
    ("offer_validation_status", 2, lambda p: _status_value(p["offer_validation_status"]) == 2),
    ("general_stock", 5, lambda p: 0 <= p["general_stock"] <= 5),
]


@pytest.mark.parametrize(("key", "value", "expected"), FILTERS)
def test_filter_returns_exactly_the_matching_offers(sandbox: Sandbox, key: str, value: int, expected: Any) -> None:
    wanted = [p for p in sandbox.state.truth("main") if expected(p)]
    assert wanted, "the seed has offers for this filter"
    with sandbox.client() as http:
        rows = read_all(http, per_page=50, **{key: value})
        count = read(http, "product_offer/count", **{key: value}).json()["results"]["noOfItems"]
    assert rows == wanted
    assert count == str(len(wanted))


def test_part_number_filters_find_one_offer_per_account(sandbox: Sandbox) -> None:
    shared = {p["part_number"] for p in sandbox.state.truth("main")} & {
        p["part_number"] for p in sandbox.state.truth("fbe")
    }
    sku = sorted(shared)[0]
    with sandbox.client("main") as main, sandbox.client("fbe") as fbe:
        on_main = read(main, part_number=sku).json()["results"]
        on_fbe = read(fbe, part_number=sku).json()["results"]
        by_key = read(fbe, part_number_key=on_fbe[0]["part_number_key"]).json()["results"]
    assert len(on_main) == len(on_fbe) == 1
    assert on_main[0]["id"] != on_fbe[0]["id"]
    assert by_key == on_fbe


def test_gpsr_details_appear_only_when_filtered_by_one_id(sandbox: Sandbox) -> None:
    product = next(p for p in sandbox.state.truth("main") if p["manufacturer"] is True)
    with sandbox.client() as http:
        one = read(http, id=product["id"]).json()["results"]
    assert [p["id"] for p in one] == [product["id"]]
    assert isinstance(one[0]["manufacturer"], list) and one[0]["manufacturer"][0]["email"]
    assert isinstance(one[0]["eu_representative"], list)


def test_an_unknown_id_returns_no_results(sandbox: Sandbox) -> None:
    with sandbox.client() as http:
        assert read(http, id=1).json()["results"] == []
