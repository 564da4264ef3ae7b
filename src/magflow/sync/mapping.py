"""From a parsed eMAG offer to the typed row of `emag_products_v2`, plus its content hash and search text."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import orjson
from sqlalchemy import BigInteger, Integer, Numeric, SmallInteger, String

from magflow.emag import ProductOffer
from magflow.models import EmagProduct
from magflow.text import fold

# Part of every content hash: raise it when the mapping or the parser changes what a payload becomes, so the next
# sync rewrites rows whose eMAG payload did not change (and audits only the fields that really differ).
MAPPING_VERSION = 2

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
MONEY_FIELDS = frozenset(
    {
        "sale_price",
        "recommended_price",
        "min_sale_price",
        "max_sale_price",
        "green_tax",
        "best_offer_sale_price",
        "best_offer_recommended_price",
    }
)
MONEY_QUANTUM = Decimal("0.0001")
GPSR_FIELDS = ("gpsr_manufacturer", "gpsr_eu_representative")
_GPSR_RAW_KEYS = ("manufacturer", "eu_representative")


def _column_limits() -> dict[str, tuple[str, Any]]:
    """What each typed column can hold, read from the model so a schema change cannot leave the checks behind."""
    limits: dict[str, tuple[str, Any]] = {}
    for name in EMAG_FIELDS:
        kind = EmagProduct.__table__.columns[name].type
        if isinstance(kind, SmallInteger):
            limits[name] = ("int", 2**15)
        elif isinstance(kind, BigInteger):
            limits[name] = ("int", 2**63)
        elif isinstance(kind, Integer):
            limits[name] = ("int", 2**31)
        elif isinstance(kind, Numeric):
            limits[name] = ("money", Decimal(10) ** ((kind.precision or 16) - (kind.scale or 4)))
        elif isinstance(kind, String) and kind.length:
            limits[name] = ("text", kind.length)
    return limits


_LIMITS = _column_limits()


class MappingError(ValueError):
    """The offer parsed, but it cannot be stored (the reason says why)."""


def _default(value: Any) -> Any:
    if isinstance(value, Decimal | uuid.UUID):  # asyncpg's UUID subclasses uuid.UUID; orjson wants the base
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_SORT_KEYS)


def money_text(value: Decimal) -> str:
    """One spelling per amount: 199.9900, 199.99 and 1.9999E+2 are all "199.99"; 0.0000 is "0"."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def jsonable(value: Any) -> Any:
    """A value as it is stored in the audit trail and compared (JSONB): decimals as their canonical text, so
    amounts compare by value whatever their scale."""
    if isinstance(value, Decimal):
        return money_text(value)
    if isinstance(value, list | dict):
        return orjson.loads(canonical_json(value))
    return value


def comparable(name: str, value: Any) -> Any:
    """`value` of field `name` in the form used to compare two values of it: money by amount (a stored base
    written as "199.9900" by an older version equals eMAG's 199.99), everything else as JSON."""
    if name == "recommended_price" and value in (None, 0, "0"):
        return "0"  # eMAG: "0 means unset", and it sends null for the same
    if name in MONEY_FIELDS and value is not None and not isinstance(value, bool):
        try:
            return money_text(Decimal(str(value)))
        except ArithmeticError:
            return jsonable(value)
    return jsonable(value)


def _hashed_payload(raw: Mapping[str, Any]) -> Any:
    """GPSR details arrive as a list when read by id and as a completion flag in list reads: both spellings of the
    same state hash alike, so alternating kinds of read do not rewrite the row."""
    if not any(isinstance(raw.get(key), list | dict) for key in _GPSR_RAW_KEYS):
        return raw
    normal = dict(raw)
    for key in _GPSR_RAW_KEYS:
        if isinstance(normal.get(key), list | dict):
            normal[key] = bool(normal[key])
    return normal


def content_hash(raw: Mapping[str, Any], computed: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(f"v{MAPPING_VERSION}:".encode())
    digest.update(canonical_json(_hashed_payload(raw)))
    if computed:
        digest.update(canonical_json(computed))
    return digest.hexdigest()


def quarantine_hash(raw: Any) -> str:
    """The hash stored with a quarantined payload: differs from any storable payload's, so a fixed offer is
    rewritten, and stays the same while eMAG keeps sending the same bad payload."""
    try:
        body = canonical_json(raw)
    except (TypeError, orjson.JSONEncodeError):
        body = repr(raw).encode("utf-8", "replace")
    return hashlib.sha256(b"quarantined:" + body).hexdigest()


def _money(name: str, value: Decimal | None) -> Decimal | None:
    # NUMERIC(16,4) rounds half away from zero; doing it here keeps the stored value and the compared one equal.
    if value is None:
        return None
    bound = _LIMITS[name][1]
    if abs(value) >= bound:
        raise MappingError(f"{name} is {value}, more than the column holds (below {bound:,})")
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_UP)


def check_fits(row: Mapping[str, Any]) -> None:
    """Raise MappingError naming the first value its column cannot hold (the offer is then quarantined)."""
    for name, (kind, bound) in _LIMITS.items():
        value = row.get(name)
        if value is None or isinstance(value, bool):
            continue
        if kind == "int" and not -bound <= value < bound:
            raise MappingError(f"{name} is {value}, outside what the column holds ({-bound} to {bound - 1})")
        if kind == "money" and abs(value) >= bound:
            raise MappingError(f"{name} is {value}, more than the column holds (below {bound:,})")
        if kind == "text" and len(value) > bound:
            raise MappingError(f"{name} is {len(value)} characters long, more than {bound}")


def derive(row: dict[str, Any]) -> dict[str, Any]:
    """The columns computed from other columns; recomputed whenever a kept local value replaces eMAG's."""
    row["is_active"] = row.get("status") == 1
    row["main_image_url"] = _main_image(list(row.get("images") or []))
    row["search_text"] = fold(f"{row.get('sku') or ''} {row.get('name') or ''}")
    return row


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
        "sale_price": _money("sale_price", offer.sale_price),
        "recommended_price": _money("recommended_price", offer.recommended_price),
        "min_sale_price": _money("min_sale_price", offer.min_sale_price),
        "max_sale_price": _money("max_sale_price", offer.max_sale_price),
        "currency": offer.currency,
        "vat_id": offer.vat_id,
        "green_tax": _money("green_tax", offer.green_tax),
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
        "best_offer_sale_price": _money("best_offer_sale_price", offer.best_offer_sale_price),
        "best_offer_recommended_price": _money("best_offer_recommended_price", offer.best_offer_recommended_price),
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
        "sync_issue": offer.cleaned,
    }
    check_fits(row)
    return row
