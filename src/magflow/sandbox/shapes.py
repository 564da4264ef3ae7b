"""Offer and order shapes as real eMAG data has them, applied when an answer is serialised.

`sparse` (the sparse_products quirk): optional keys absent, empty lists sent as null, `weight` as a string,
`commission` null and a translation_validation_status on some offers — what production clients' strict records
and the 2022 dump show. `php_empty` (empty_objects_as_lists): some objects emptied and every empty object written
as PHP's json_encode writes an empty array, `[]`. Both are an overlay like hostile values: filters see the offer
as generated, and each offer is shaped the same way every time (drawn from the seed and its id)."""

from __future__ import annotations

from typing import Any

from magflow.sandbox.catalog import Draw, Product

# Keys a list read can leave out; the identity, price, stock and state keys a sync needs are always there.
OPTIONAL_KEYS = (
    "ean", "family", "vendor_category_id", "url", "warranty", "attachments", "safety_information", "brand_name",
    "recommended_price", "min_sale_price", "max_sale_price", "best_offer_sale_price", "best_offer_recommended_price",
    "green_tax", "handling_time", "supply_lead_time", "doc_errors", "ownership", "number_of_offers",
    "buy_button_rank", "genius_eligibility", "genius_eligibility_type", "genius_computed", "offer_details",
    "availability", "offer_properties", "content_details", "rrp_guidelines", "barcode", "start_date",
)  # fmt: skip
ABSENT_CHANCE = 0.25
_TRANSLATION = {1: "In MKTP validation", 4: "Translation pending", 9: "Translation approved", 17: "Not translated"}
_EMPTIED = ("offer_details", "content_details", "commission")


def sparse(product: Product, seed: int, account: str, product_id: int) -> Product:
    draw = Draw("sparse", seed, account, product_id)
    shown = {k: v for k, v in product.items() if not (k in OPTIONAL_KEYS and draw.random() < ABSENT_CHANCE)}
    for key, value in shown.items():
        if value == [] and key != "start_date":  # start_date is documented as [] on read
            shown[key] = None
    if "weight" in shown and isinstance(shown["weight"], int | float):
        shown["weight"] = f"{shown['weight']:.3f}"
    shown["commission"] = None
    if draw.random() < 0.3:
        value = draw.choice(tuple(_TRANSLATION))
        shown["translation_validation_status"] = [{"value": value, "description": _TRANSLATION[value], "errors": None}]
    return shown


def php_empty(product: Product, seed: int, account: str, product_id: int) -> Product:
    draw = Draw("php-empty", seed, account, product_id)
    shown = dict(product)
    if shown.get("family", 0) is None:
        shown["family"] = {}
    for key in _EMPTIED:
        if isinstance(shown.get(key), dict) and draw.random() < 0.35:
            shown[key] = {}
    result: Product = empty_objects_as_lists(shown)
    return result


def php_empty_order(order: dict[str, Any]) -> dict[str, Any]:
    """An order with PHP's `[]` for its empty objects; `details` with nothing set is such an object."""
    shown = dict(order)
    details = shown.get("details")
    if isinstance(details, dict) and not any(details.values()):
        shown["details"] = {}
    result: dict[str, Any] = empty_objects_as_lists(shown)
    return result


def empty_objects_as_lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: empty_objects_as_lists(v) for k, v in value.items()} if value else []
    if isinstance(value, list):
        return [empty_objects_as_lists(v) for v in value]
    return value
