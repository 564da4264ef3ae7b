"""Parsing eMAG answers: every quirk in docs/emag-api.md is read correctly, unknown keys survive, and one
corrupt offer is set aside without failing its page."""

from __future__ import annotations

import copy
import pickle
from decimal import Decimal
from typing import Any

import pytest

from magflow.emag import EmagIpNotWhitelistedError, EmagTransientError, PayloadError, ProductOffer
from magflow.emag.payloads import parse_count, parse_product_page

OFFER: dict[str, Any] = {
    "id": 243409,
    "part_number": "md788hc/a",
    "part_number_key": "ES0NKBBBM",
    "ean": ["5941234567890"],
    "name": "Test product",
    "brand": "Brand test",
    "description": "<p>Garan&#539;ie</p>",
    "url": "http://valid-url.html",
    "category_id": 506,
    "vendor_category_id": None,
    "family": {"id": 295, "name": "Test family", "family_type_id": 95},
    "warranty": 24,
    "images": [{"url": "http://valid-url.jpg", "display_type": 1}],
    "characteristics": [{"id": 38, "value": "test", "tag": "x"}],
    "attachments": [],
    "sale_price": 51.6477,
    "recommended_price": 0,
    "min_sale_price": "40.6477",
    "max_sale_price": 60.6477,
    "best_offer_sale_price": 49.99,
    "best_offer_recommended_price": 0,
    "green_tax": 0.5,
    "currency": "RON",
    "vat_id": 1,
    "stock": [{"warehouse_id": 1, "value": 20}],
    "general_stock": 20,
    "estimated_stock": 18,
    "handling_time": [{"warehouse_id": 1, "value": 0}],
    "supply_lead_time": 5,
    "status": 1,
    "validation_status": [{"value": 9, "description": "Approved documentation", "errors": None}],
    "translation_validation_status": [],
    "offer_validation_status": {"value": 1, "description": "Valid"},
    "doc_errors": None,
    "ownership": 1,
    "number_of_offers": 3,
    "buy_button_rank": 1,
    "genius_eligibility": 1,
    "genius_eligibility_type": 2,
    "genius_computed": 0,
    "safety_information": None,
    "manufacturer": True,
    "eu_representative": False,
    "commission": {"value": 12.8, "type": "percentage"},
    "start_date": [],
}


def offer(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(OFFER)
    data.update(changes)
    return data


def test_documented_fields_are_typed_and_money_is_exact_decimal() -> None:
    parsed = ProductOffer.from_payload(OFFER)
    assert parsed.id == 243409
    assert parsed.sale_price == Decimal("51.6477")
    assert parsed.min_sale_price == Decimal("40.6477")
    assert parsed.green_tax == Decimal("0.5")
    assert parsed.validation_status == 9
    assert parsed.validation_status_description == "Approved documentation"
    assert parsed.offer_validation_status == 1
    assert parsed.translation_validation_status is None
    assert parsed.family == {"id": 295, "name": "Test family", "family_type_id": 95}
    assert parsed.stock == [{"warehouse_id": 1, "value": 20}]
    assert parsed.is_sellable


def test_unknown_keys_are_kept_in_raw_and_never_fatal() -> None:
    parsed = ProductOffer.from_payload(offer(brand_new_key={"nested": [1, 2]}, rrp_guidelines=None))
    assert parsed.raw["brand_new_key"] == {"nested": [1, 2]}
    assert parsed.raw["commission"] == {"value": 12.8, "type": "percentage"}


@pytest.mark.parametrize(
    ("shape", "value", "description"),
    [
        ([{"value": 2, "description": "Invalid price"}], 2, "Invalid price"),
        ({"value": 2, "description": "Invalid price"}, 2, "Invalid price"),
        ({"value": "1", "Description": "Valid"}, 1, "Valid"),
        ([], None, None),
        (None, None, None),
    ],
)
def test_offer_validation_status_as_list_or_object(shape: Any, value: int | None, description: str | None) -> None:
    parsed = ProductOffer.from_payload(offer(offer_validation_status=shape))
    assert (parsed.offer_validation_status, parsed.offer_validation_status_description) == (value, description)


@pytest.mark.parametrize(("raw", "expected"), [(1, 1), (2, 2), ("2", 2), (True, 1), (False, 2), (None, None)])
def test_ownership_int_or_bool_maps_to_the_documented_values(raw: Any, expected: int | None) -> None:
    assert ProductOffer.from_payload(offer(ownership=raw)).ownership == expected


def test_gpsr_is_a_flag_in_list_reads_and_details_when_read_by_id() -> None:
    flags = ProductOffer.from_payload(offer(manufacturer=True, eu_representative=0))
    assert flags.gpsr_manufacturer is True
    assert flags.gpsr_eu_representative is False
    details = [{"name": "Company Ltd.", "address": "Street 1", "email": "c@example.com"}]
    full = ProductOffer.from_payload(offer(manufacturer=details, eu_representative=details))
    assert full.gpsr_manufacturer == details
    assert full.gpsr_eu_representative == details


def test_numbers_as_strings_and_php_empty_arrays() -> None:
    parsed = ProductOffer.from_payload(
        offer(id="243409", warranty="24", general_stock="7", family=[], stock={}, ean="5941234567890", status=True)
    )
    assert parsed.id == 243409
    assert parsed.warranty == 24
    assert parsed.general_stock == 7
    assert parsed.family is None
    assert parsed.stock == []
    assert parsed.ean == ["5941234567890"]
    assert parsed.status == 1


@pytest.mark.parametrize(
    ("changes", "sellable"),
    [
        ({}, True),
        ({"general_stock": 0}, False),
        ({"status": 0}, False),
        ({"status": 2}, False),
        ({"offer_validation_status": [{"value": 2, "description": "Invalid price"}]}, False),
        ({"validation_status": [{"value": 4, "description": "pending"}]}, False),
        ({"validation_status": [{"value": 12, "description": "Update rejected"}]}, True),
        ({"general_stock": None, "stock": [{"warehouse_id": 1, "value": 0}, {"warehouse_id": 2, "value": 3}]}, True),
    ],
)
def test_is_sellable_follows_emags_rule(changes: dict[str, Any], sellable: bool) -> None:
    assert ProductOffer.from_payload(offer(**changes)).is_sellable is sellable


def test_a_corrupt_offer_is_rejected_with_its_reason_and_the_page_survives() -> None:
    corrupt = offer(id=7, sale_price="abc", stock="n/a")
    page = parse_product_page([OFFER, corrupt, offer(id=8), "garbage"], page=3, items_per_page=4)
    assert [o.id for o in page.offers] == [243409, 8]
    assert [(r.offer_id, r.raw) for r in page.rejected] == [(7, corrupt), (None, "garbage")]
    assert "sale_price" in page.rejected[0].reason
    assert page.raw_count == 4
    assert not page.is_last


def test_an_offer_without_an_id_is_rejected() -> None:
    with pytest.raises(PayloadError, match="id"):
        ProductOffer.from_payload(offer(id=None))


@pytest.mark.parametrize(
    "results",
    [
        {"noOfItems": "1234", "noOfPages": "13", "itemsPerPage": "100"},
        {"noOfItems": 1234, "noOfPages": 13, "itemsPerPage": 100},
        [{"noOfItems": "1234", "noOfPages": "13", "itemsPerPage": "100"}],
        {"noOfItems": "1234"},
    ],
)
def test_counts_arrive_as_strings_or_ints(results: Any) -> None:
    count = parse_count(results, items_per_page=100)
    assert (count.items, count.pages, count.items_per_page) == (1234, 13, 100)


def test_errors_survive_pickling_for_celery_and_multiprocessing() -> None:
    errors = [
        EmagIpNotWhitelistedError(account="fbe", ip="203.0.113.7", route="product_offer/read", page=2),
        EmagTransientError(account="main", route="product_offer/read", page=7, reason="HTTP 502", attempts=6),
    ]
    for error in errors:
        copy_ = pickle.loads(pickle.dumps(error))
        assert type(copy_) is type(error)
        assert (str(copy_), copy_.account, copy_.page, copy_.kind) == (
            str(error),
            error.account,
            error.page,
            error.kind,
        )
