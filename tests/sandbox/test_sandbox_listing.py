"""Listing order, where new offers enter it, sparse offers and the platform, over real HTTP (issue 13)."""

from __future__ import annotations

from typing import Any

import pytest

from magflow.sandbox import SandboxState
from magflow.sandbox.shapes import OPTIONAL_KEYS
from magflow.testing.sandbox import Sandbox, read, read_all


def _ids(sandbox: Sandbox, page: int, per_page: int = 100) -> list[int]:
    with sandbox.client() as http:
        return [r["id"] for r in read(http, currentPage=page, itemsPerPage=per_page).json()["results"]]


def test_id_desc_lists_the_highest_id_first(sandbox: Sandbox) -> None:
    sandbox.state.set_quirks(product_sort="id_desc")
    with sandbox.client() as http:
        ids = [r["id"] for r in read_all(http)]
    assert ids == sorted(ids, reverse=True) and len(ids) == 300
    assert ids == [p["id"] for p in sandbox.state.truth("main")]


def test_in_modified_desc_an_edit_moves_the_offer_to_the_front_and_every_later_page_shifts(sandbox: Sandbox) -> None:
    sandbox.state.set_quirks(product_sort="modified_desc")
    first = _ids(sandbox, 1)
    edited = first[-1] + 50  # an offer on page 2
    sandbox.state.set_field("main", edited, "sale_price", 9.99)
    second, third = _ids(sandbox, 2), _ids(sandbox, 3)
    assert _ids(sandbox, 1)[0] == edited
    assert second[0] == first[-1], "page 2 starts with the row page 1 ended on: read twice"
    scanned = first + second + third
    assert len(set(scanned)) == 299 and edited not in scanned, "the edited offer went to a page already read"
    added = sandbox.state.add_products("main", 2)
    assert _ids(sandbox, 1, per_page=3) == [*added, edited], "new offers count as just modified"


@pytest.mark.parametrize(("insert_at", "where"), [("end", slice(-2, None)), ("front", slice(0, 2))])
def test_insert_at_puts_new_offers_at_the_end_or_the_front(sandbox: Sandbox, insert_at: str, where: slice) -> None:
    sandbox.state.set_quirks(insert_at=insert_at)
    added = sandbox.state.add_products("main", 2)
    with sandbox.client() as http:
        ids = [r["id"] for r in read_all(http)]
        by_id = read(http, id=added[0]).json()["results"]
    assert ids[where] == added and len(ids) == 302
    assert [r["id"] for r in by_id] == [added[0]]


def test_insert_at_random_scatters_new_offers_the_same_way_for_the_same_seed(make_sandbox: Any) -> None:
    def positions() -> list[int]:
        sandbox = make_sandbox(products=200, insert_at="random")
        added = set(sandbox.state.add_products("fbe", 5))
        with sandbox.client("fbe") as http:
            ids = [r["id"] for r in read_all(http)]
        return [i for i, offer_id in enumerate(ids) if offer_id in added]

    first = positions()
    assert first == positions() and len(first) == 5
    assert first != list(range(200, 205)) and first != list(range(5))


def test_listing_order_is_an_alias_of_product_sort(sandbox: Sandbox) -> None:
    with sandbox.control() as control:
        answer = control.post("/quirks", json={"listing_order": "modified"}).json()
        assert (answer["product_sort"], answer["listing_order"]) == ("modified_asc", "modified")
        answer = control.post("/quirks", json={"product_sort": "modified_desc"}).json()
        assert answer["listing_order"] == "modified"
        assert control.post("/quirks", json=answer).json() == answer, "every switch, fed back, changes nothing"
        assert control.post("/quirks", json={"listing_order": "newest"}).status_code == 400
    assert sandbox.state.quirks.listing_order == "modified"
    sandbox.state.set_listing_order("id")
    assert sandbox.state.quirks.product_sort == "id_asc"


def test_sparse_offers_leave_keys_out_send_nulls_and_strings(sandbox: Sandbox) -> None:
    sandbox.state.set_quirks(sparse_products=True)
    with sandbox.client() as http:
        rows = read_all(http)
        (one,) = read(http, id=rows[0]["id"]).json()["results"]
    assert rows == sandbox.state.truth("main")
    assert all(set(OPTIONAL_KEYS) - set(row) for row in rows[:50]), "each offer lacks some optional keys"
    assert all({"id", "part_number", "sale_price", "stock", "status"} <= set(row) for row in rows)
    assert all(row["commission"] is None for row in rows)
    assert all(isinstance(row["weight"], str) for row in rows)
    assert any(row.get("attachments", "absent") is None for row in rows), "an empty list sent as null"
    assert sum(bool(row["translation_validation_status"]) for row in rows) > 30
    assert set(one) - {"manufacturer", "eu_representative"} == set(rows[0]) - {"manufacturer", "eu_representative"}


@pytest.mark.parametrize(
    ("platform", "currency", "rates"),
    [("bg", "EUR", {0.2, 0.09, 0.0}), ("hu", "HUF", {0.27, 0.18, 0.05, 0.0}), ("ro", "RON", {0.21, 0.11, 0.0})],
)
def test_the_platform_sets_currency_language_and_vat(
    make_sandbox: Any, platform: str, currency: str, rates: set[float]
) -> None:
    sandbox = make_sandbox(products=100, platform=platform)
    with sandbox.client() as http:
        rows = read_all(http)
        vat = read(http, "vat/read").json()["results"]
        lines = [line for o in read(http, "order/read").json()["results"] for line in o["products"]]
    assert {r["currency"] for r in rows} == {currency}
    assert {r["vat_rate"] for r in vat} == rates and {r["vat_id"] for r in rows} <= {r["vat_id"] for r in vat}
    assert {line["currency"] for line in lines} == {currency}
    assert {float(line["vat"]) for line in lines} <= rates
    if platform != "ro":
        assert {r["source_language"] for r in rows} == {f"{platform}_{platform.upper()}"}


def test_the_platform_and_currency_change_at_runtime(sandbox: Sandbox) -> None:
    with sandbox.control() as control, sandbox.client() as http:
        control.post("/quirks", json={"platform": "bg", "currency": "BGN"})
        assert {r["currency"] for r in read_all(http)} == {"BGN"}
        assert {o["products"][0]["currency"] for o in read(http, "order/read").json()["results"]} == {"BGN"}
        assert control.post("/quirks", json={"platform": "pl"}).status_code == 400
    assert SandboxState(products_per_account=5, platform="hu").truth("fbe")[0]["currency"] == "HUF"
