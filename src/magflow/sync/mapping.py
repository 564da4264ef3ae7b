"""From a parsed eMAG offer to the typed row of `emag_products_v2`, plus its content hash and search text."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from magflow.emag import ProductOffer
from magflow.text import fold

# Columns whose values come from eMAG on every sync (what the content hash covers).
EMAG_FIELDS: tuple[str, ...] = (
    "sku",
    "part_number_key",
    "ean",
    "name",
    "brand",
    "description",
    "url",
    "category_id",
    "vendor_category_id",
    "family",
    "warranty",
    "images",
    "main_image_url",
    "characteristics",
    "attachments",
    "sale_price",
    "recommended_price",
    "min_sale_price",
    "max_sale_price",
    "currency",
    "vat_id",
    "green_tax",
    "stock",
    "general_stock",
    "estimated_stock",
    "handling_time",
    "supply_lead_time",
    "status",
    "is_active",
    "validation_status",
    "validation_status_description",
    "translation_validation_status",
    "offer_validation_status",
    "offer_validation_status_description",
    "doc_errors",
    "ownership",
    "number_of_offers",
    "buy_button_rank",
    "best_offer_sale_price",
    "best_offer_recommended_price",
    "genius_eligibility",
    "genius_eligibility_type",
    "genius_computed",
    "safety_information",
    "gpsr_manufacturer",
    "gpsr_eu_representative",
)

# Fields an operator may edit locally (PATCH); the conflict rules apply to these.
EDITABLE_FIELDS: frozenset[str] = frozenset(
    {
        "name",
        "brand",
        "description",
        "sale_price",
        "recommended_price",
        "min_sale_price",
        "max_sale_price",
        "vat_id",
        "warranty",
        "status",
        "general_stock",
        "stock",
        "handling_time",
        "images",
        "characteristics",
        "ean",
        "category_id",
    }
)

MAX_SKU = 64


class MappingError(ValueError):
    """The offer parsed, but it cannot be stored (the reason says why)."""


def _default(value: Any) -> Any:
    if isinstance(value, Decimal | uuid.UUID):  # asyncpg's UUID subclasses uuid.UUID; orjson wants the base
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_SORT_KEYS)


def jsonable(value: Any) -> Any:
    """A value as it is stored in the audit trail (JSONB): decimals as strings."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | dict):
        return orjson.loads(canonical_json(value))
    return value


def content_hash(raw: Mapping[str, Any], computed: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(canonical_json(raw))
    if computed:
        digest.update(canonical_json(computed))
    return digest.hexdigest()


def _main_image(images: list[dict[str, Any]]) -> str | None:
    for image in images:
        if image.get("display_type") == 1 and image.get("url"):
            return str(image["url"])
    for image in images:
        if image.get("url"):
            return str(image["url"])
    return None


def offer_to_row(account: str, offer: ProductOffer, computed: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a sync writes for one offer. Raises MappingError for an offer that cannot be stored."""
    if offer.part_number is not None and len(offer.part_number) > MAX_SKU:
        raise MappingError(f"part_number is {len(offer.part_number)} characters, more than {MAX_SKU}")
    images = list(offer.images or [])
    row: dict[str, Any] = {
        "account_type": account,
        "emag_id": offer.id,
        "sku": offer.part_number,
        "part_number_key": offer.part_number_key,
        "ean": list(offer.ean) if offer.ean else None,
        "name": offer.name,
        "brand": offer.brand,
        "description": offer.description,
        "url": offer.url,
        "category_id": offer.category_id,
        "vendor_category_id": offer.vendor_category_id,
        "family": offer.family,
        "warranty": offer.warranty,
        "images": images,
        "main_image_url": _main_image(images),
        "characteristics": list(offer.characteristics or []),
        "attachments": list(offer.attachments or []),
        "sale_price": offer.sale_price,
        "recommended_price": offer.recommended_price,
        "min_sale_price": offer.min_sale_price,
        "max_sale_price": offer.max_sale_price,
        "currency": offer.currency,
        "vat_id": offer.vat_id,
        "green_tax": offer.green_tax,
        "stock": list(offer.stock or []),
        "general_stock": offer.general_stock,
        "estimated_stock": offer.estimated_stock,
        "handling_time": list(offer.handling_time or []),
        "supply_lead_time": offer.supply_lead_time,
        "status": offer.status,
        "is_active": offer.status == 1,
        "validation_status": offer.validation_status,
        "validation_status_description": offer.validation_status_description,
        "translation_validation_status": offer.translation_validation_status,
        "offer_validation_status": offer.offer_validation_status,
        "offer_validation_status_description": offer.offer_validation_status_description,
        "doc_errors": offer.doc_errors,
        "ownership": offer.ownership,
        "number_of_offers": offer.number_of_offers,
        "buy_button_rank": offer.buy_button_rank,
        "best_offer_sale_price": offer.best_offer_sale_price,
        "best_offer_recommended_price": offer.best_offer_recommended_price,
        "genius_eligibility": offer.genius_eligibility,
        "genius_eligibility_type": offer.genius_eligibility_type,
        "genius_computed": offer.genius_computed,
        "safety_information": offer.safety_information,
        "gpsr_manufacturer": offer.gpsr_manufacturer,
        "gpsr_eu_representative": offer.gpsr_eu_representative,
        "raw_emag_data": offer.raw,
        "computed_fields": dict(computed),
        "content_hash": content_hash(offer.raw, computed),
        "search_text": fold(f"{offer.part_number or ''} {offer.name or ''}"),
    }
    return row
