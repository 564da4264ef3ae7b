"""eMAG answers parsed once, at the edge, into typed objects that tolerate the documented quirks.

Tolerated (see docs/emag-api.md): counts as strings, `offer_validation_status` as a list or an object,
`ownership` as an int or a bool, GPSR `manufacturer`/`eu_representative` as a flag or a list, PHP's
`[]` for an empty object wherever an object belongs (alone or inside a list), `results` (and any list) as
an object keyed by position, numbers sent as strings. Unknown keys are kept in `raw`. A value of the wrong
kind where a number or a list is required (a price of "abc") rejects that one offer, never the page.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from magflow.emag.cleaning import clean, describe, needs_cleaning
from magflow.emag.errors import emag_text

SELLABLE_VALIDATION_STATUSES = frozenset({3, 9, 11, 12})
OWNERSHIP_FROM_BOOL = {True: 1, False: 2}  # official doc: 1 eligible for content updates, 2 not
log = logging.getLogger("magflow.emag")


class PayloadError(ValueError):
    """One value could not be read as the type eMAG documents for it."""

    def __init__(self, key: str, value: Any, expected: str) -> None:
        shown = repr(value)
        super().__init__(f"{key} is {shown[:60]}, expected {expected}")
        self.key = key


@dataclass(frozen=True, slots=True)
class ProductCount:
    items: int
    pages: int
    items_per_page: int


@dataclass(frozen=True, slots=True)
class RejectedOffer:
    offer_id: int | None
    reason: str
    raw: Any


@dataclass(frozen=True, slots=True)
class ProductOffer:
    id: int
    part_number: str | None
    part_number_key: str | None
    ean: list[str]
    name: str | None
    brand: str | None
    description: str | None
    url: str | None
    category_id: int | None
    vendor_category_id: int | None
    family: dict[str, Any] | None
    warranty: int | None
    images: list[dict[str, Any]]
    characteristics: list[dict[str, Any]]
    attachments: list[Any]
    sale_price: Decimal | None
    recommended_price: Decimal | None
    min_sale_price: Decimal | None
    max_sale_price: Decimal | None
    best_offer_sale_price: Decimal | None
    best_offer_recommended_price: Decimal | None
    green_tax: Decimal | None
    currency: str | None
    vat_id: int | None
    stock: list[dict[str, Any]]
    general_stock: int | None
    estimated_stock: int | None
    handling_time: list[dict[str, Any]]
    supply_lead_time: int | None
    status: int | None
    validation_status: int | None
    validation_status_description: str | None
    translation_validation_status: int | None
    offer_validation_status: int | None
    offer_validation_status_description: str | None
    doc_errors: list[Any] | None
    ownership: int | None
    number_of_offers: int | None
    buy_button_rank: int | None
    genius_eligibility: int | None
    genius_eligibility_type: int | None
    genius_computed: int | None
    safety_information: str | None
    gpsr_manufacturer: bool | list[dict[str, Any]] | None
    gpsr_eu_representative: bool | list[dict[str, Any]] | None
    raw: dict[str, Any] = field(repr=False, compare=False)
    # What was cleaned from eMAG's payload before it was parsed (see magflow.emag.cleaning); None when nothing.
    cleaned: str | None = field(default=None, compare=False)

    @property
    def total_stock(self) -> int:
        if self.general_stock is not None:
            return self.general_stock
        return sum(_int(entry.get("value"), "stock.value") or 0 for entry in self.stock)

    @property
    def is_sellable(self) -> bool:
        """eMAG's rule: stock > 0, status 1, offer_validation_status 1, validation_status in 3/9/11/12."""
        return (
            self.total_stock > 0
            and self.status == 1
            and self.offer_validation_status == 1
            and self.validation_status in SELLABLE_VALIDATION_STATUSES
        )

    @classmethod
    def from_payload(cls, raw: Mapping[str, Any]) -> ProductOffer:
        """Parse one `product_offer/read` result; raises PayloadError when a value is unusable."""
        if not isinstance(raw, Mapping):
            raise PayloadError("offer", raw, "an object")
        cleaned: str | None = None
        if needs_cleaning(raw):
            raw, notes = clean(dict(raw))
            cleaned = describe(notes) if notes else None
        offer_id = _offer_id(raw.get("id"))
        if offer_id is None:
            raise PayloadError("id", raw.get("id"), "an integer offer id")
        get = raw.get
        validation, validation_text = _status(get("validation_status"), "validation_status")
        translation, _ = _status(get("translation_validation_status"), "translation_validation_status")
        offer_validation, offer_validation_text = _status(get("offer_validation_status"), "offer_validation_status")
        return cls(
            id=offer_id,
            part_number=_str(get("part_number"), "part_number"),
            part_number_key=_str(get("part_number_key"), "part_number_key"),
            ean=_eans(get("ean")),
            name=_str(get("name"), "name"),
            brand=_str(get("brand"), "brand"),
            description=_str(get("description"), "description"),
            url=_str(get("url"), "url"),
            category_id=_int(get("category_id"), "category_id"),
            vendor_category_id=_int(get("vendor_category_id"), "vendor_category_id"),
            family=_object(get("family"), "family"),
            warranty=_int(get("warranty"), "warranty"),
            images=_objects(get("images"), "images"),
            characteristics=_objects(get("characteristics"), "characteristics"),
            attachments=_list(get("attachments"), "attachments"),
            sale_price=_money(get("sale_price"), "sale_price"),
            recommended_price=_money(get("recommended_price"), "recommended_price"),
            min_sale_price=_money(get("min_sale_price"), "min_sale_price"),
            max_sale_price=_money(get("max_sale_price"), "max_sale_price"),
            best_offer_sale_price=_money(get("best_offer_sale_price"), "best_offer_sale_price"),
            best_offer_recommended_price=_money(get("best_offer_recommended_price"), "best_offer_recommended_price"),
            green_tax=_money(get("green_tax"), "green_tax"),
            currency=_str(get("currency"), "currency"),
            vat_id=_int(get("vat_id"), "vat_id"),
            stock=_objects(get("stock"), "stock"),
            general_stock=_int(get("general_stock"), "general_stock"),
            estimated_stock=_int(get("estimated_stock"), "estimated_stock"),
            handling_time=_objects(get("handling_time"), "handling_time"),
            supply_lead_time=_int(get("supply_lead_time"), "supply_lead_time"),
            status=_int(get("status"), "status"),
            validation_status=validation,
            validation_status_description=validation_text,
            translation_validation_status=translation,
            offer_validation_status=offer_validation,
            offer_validation_status_description=offer_validation_text,
            doc_errors=_optional_list(get("doc_errors"), "doc_errors"),
            ownership=_ownership(get("ownership")),
            number_of_offers=_int(get("number_of_offers"), "number_of_offers"),
            buy_button_rank=_int(get("buy_button_rank"), "buy_button_rank"),
            genius_eligibility=_int(get("genius_eligibility"), "genius_eligibility"),
            genius_eligibility_type=_int(get("genius_eligibility_type"), "genius_eligibility_type"),
            genius_computed=_int(get("genius_computed"), "genius_computed"),
            safety_information=_str(get("safety_information"), "safety_information"),
            gpsr_manufacturer=_gpsr(get("manufacturer"), "manufacturer"),
            gpsr_eu_representative=_gpsr(get("eu_representative"), "eu_representative"),
            raw=dict(raw),
            cleaned=cleaned,
        )


@dataclass(frozen=True, slots=True)
class ProductPage:
    page: int
    items_per_page: int
    offers: list[ProductOffer]
    rejected: list[RejectedOffer]
    raw_count: int  # entries in `results`, rejected ones included: a short page ends a scan

    @property
    def is_last(self) -> bool:
        return self.raw_count < self.items_per_page


def parse_product_page(results: Any, page: int, items_per_page: int) -> ProductPage:
    if results is None:
        # An answer with no `results` at all is not an empty page: ending the scan on it would end a run as
        # complete with pages unread. It is retried like any unreadable answer.
        raise PayloadError("results", results, "a list of offers")
    entries = _results_list(results)
    offers: list[ProductOffer] = []
    rejected: list[RejectedOffer] = []
    for entry in entries:
        try:
            offers.append(ProductOffer.from_payload(entry))
        except PayloadError as exc:
            if isinstance(entry, Mapping) and needs_cleaning(entry):
                entry, _ = clean(dict(entry))  # a quarantined offer's payload is stored too
            raw_id = entry.get("id") if isinstance(entry, Mapping) else None
            try:
                offer_id = _offer_id(raw_id)
            except PayloadError:
                offer_id = None
            rejected.append(RejectedOffer(offer_id=offer_id, reason=emag_text(exc), raw=entry))
    return ProductPage(page, items_per_page, offers, rejected, len(entries))


# No seller has two billion offers or orders: a larger count (or a negative one) is a broken answer. Clamped to
# what a PostgreSQL INTEGER holds, one count fits every column it may land in, and sums of counts fit the BIGINT
# counters of emag_sync_logs / emag_sync_progress (migration 0005).
MAX_COUNT = 2**31 - 1


def parse_count(results: Any, items_per_page: int) -> ProductCount:
    """`{"noOfItems": "1234", "noOfPages": "13", "itemsPerPage": "100"}`, numbers as strings or ints; also
    wrapped in a list of one or in an object keyed by position (`{"0": {...}}`). A count outside 0..MAX_COUNT is
    clamped into it, with a warning."""
    if isinstance(results, Mapping) and "noOfItems" not in results and _by_position(results):
        results = list(results.values())
    if isinstance(results, list) and len(results) == 1:
        results = results[0]
    if not isinstance(results, Mapping):
        raise PayloadError("results", results, "an object with noOfItems")
    items = _int(results.get("noOfItems"), "noOfItems")
    if items is None:
        raise PayloadError("noOfItems", results.get("noOfItems"), "a count")
    items = _clamped_count(items, "noOfItems")
    per_page = _int(results.get("itemsPerPage"), "itemsPerPage")
    per_page = per_page if per_page is not None and 1 <= per_page <= MAX_COUNT else items_per_page
    pages = _int(results.get("noOfPages"), "noOfPages")
    pages = math.ceil(items / per_page) if pages is None else _clamped_count(pages, "noOfPages")
    return ProductCount(items=items, pages=pages, items_per_page=per_page)


def _clamped_count(value: int, key: str) -> int:
    if 0 <= value <= MAX_COUNT:
        return value
    clamped = min(max(value, 0), MAX_COUNT)
    log.warning(
        "eMAG answered %s %s, which no catalogue holds: read as %d (a scan still ends at the last page eMAG serves)",
        key, emag_text(value, 40), clamped,
    )  # fmt: skip
    return clamped


def parse_records(results: Any) -> list[dict[str, Any]]:
    """Results of order/vat reads: a list of objects (PHP may send an object keyed by index)."""
    return [entry for entry in _results_list(results) if isinstance(entry, dict)]


def _results_list(results: Any) -> list[Any]:
    if results is None:
        return []
    if isinstance(results, list):
        return results
    if isinstance(results, Mapping):
        # PHP's json_encode turns an array whose keys are not 0..n-1 into an object keyed by position.
        return _in_position_order(results)
    raise PayloadError("results", results, "a list")


def _by_position(value: Mapping[Any, Any]) -> bool:
    return all(isinstance(key, str) and key.isdigit() for key in value)


def _in_position_order(value: Mapping[Any, Any]) -> list[Any]:
    if value and _by_position(value):
        return [value[key] for key in sorted(value, key=int)]
    return list(value.values())


def _offer_id(value: Any) -> int | None:
    """An offer id, which keys a BIGINT column: an id beyond 64 bits cannot name a row (the offer is rejected
    without an id, so it can never block the statements that record which offers a page listed)."""
    offer_id = _int(value, "id")
    if offer_id is not None and not -(2**63) <= offer_id < 2**63:
        raise PayloadError("id", value, "an offer id within 64 bits")
    return offer_id


def _int(value: Any, key: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                pass
            else:
                # "1e999999999" is an integer too, whose int() would take minutes: nothing eMAG counts is that big.
                if number.is_finite() and number.adjusted() <= 30 and number == number.to_integral_value():
                    return int(number)
    raise PayloadError(key, value, "an integer")


def _money(value: Any, key: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise PayloadError(key, value, "a decimal amount")
    if isinstance(value, int | float | str):
        try:
            amount = Decimal(str(value).strip())  # str(float) is the shortest exact repr: no float math
        except InvalidOperation:
            raise PayloadError(key, value, "a decimal amount") from None
        if amount.is_finite():
            return amount
    raise PayloadError(key, value, "a decimal amount")


def _str(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if value == [] or value == {}:  # PHP's empty array for an empty value
        return None
    raise PayloadError(key, value, "a string")


def _eans(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str | int) and not isinstance(value, bool):
        return [str(value)]
    items = _list(value, "ean")
    eans = []
    for item in items:
        text = _str(item, "ean")
        if text:
            eans.append(text)
    return eans


def _list(value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):  # PHP serialises an empty array as {} and a sparse one as an object
        return _in_position_order(value)
    raise PayloadError(key, value, "a list")


def _optional_list(value: Any, key: str) -> list[Any] | None:
    return None if value is None else _list(value, key)


def _objects(value: Any, key: str) -> list[dict[str, Any]]:
    one_object = isinstance(value, dict) and value and not _by_position(value)
    if one_object and all(not isinstance(v, dict) for v in value.values()):
        return [dict(value)]  # one object sent instead of a list of one
    items = [{} if item == [] else item for item in _list(value, key)]  # PHP's [] for an empty object
    if not all(isinstance(item, dict) for item in items):
        raise PayloadError(key, value, "a list of objects")
    return items


def _object(value: Any, key: str) -> dict[str, Any] | None:
    if value is None or value == [] or value == {}:
        return None
    if isinstance(value, dict):
        return value
    raise PayloadError(key, value, "an object")


def _status(value: Any, key: str) -> tuple[int | None, str | None]:
    """validation statuses arrive as a list of `{value, description}` or as one such object."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == [] or value == {}:  # PHP's [] for an empty object
        return None, None
    if isinstance(value, dict):
        description = value.get("description", value.get("Description"))
        return _int(value.get("value"), f"{key}.value"), _str(description, f"{key}.description")
    return _int(value, key), None


def _ownership(value: Any) -> int | None:
    if isinstance(value, bool):
        return OWNERSHIP_FROM_BOOL[value]
    return _int(value, "ownership")


def _gpsr(value: Any, key: str) -> bool | list[dict[str, Any]] | None:
    """A completion flag in list reads, the `{name, address, email}` list when read by one id."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, list | dict):
        return _objects(value, key)
    raise PayloadError(key, value, "a flag or a list of objects")
