"""eMAG payload semantics for the reference model, re-derived from the documentation (docs/emag-api.md, issue 12,
the README), not from magflow.emag:
- cleaning: every NUL character is removed (values and keys, any depth); every lone surrogate becomes U+FFFD;
- storable: text columns within their length (part_number/part_number_key 64, currency 3), money finite and below
  10^12 (NUMERIC(16,4), rounded half up to 4 places), integers within SMALLINT/INTEGER/BIGINT, numbers readable
  (a number may arrive as a string with surrounding spaces, never with spaces inside, never NaN/Infinity);
- anything else quarantines the offer, naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import orjson

REPLACEMENT = "\ufffd"
MONEY_LIMIT = Decimal(10) ** 12
MONEY_QUANTUM = Decimal("0.0001")
MONEY_KEYS = (
    "sale_price",
    "recommended_price",
    "min_sale_price",
    "max_sale_price",
    "green_tax",
    "best_offer_sale_price",
    "best_offer_recommended_price",
)
INT_KEYS: dict[str, int] = {
    **dict.fromkeys(("status", "genius_eligibility", "genius_eligibility_type", "genius_computed"), 2**15),
    **dict.fromkeys(
        (
            "warranty",
            "vat_id",
            "general_stock",
            "estimated_stock",
            "supply_lead_time",
            "number_of_offers",
            "buy_button_rank",
        ),
        2**31,
    ),
    **dict.fromkeys(("category_id", "vendor_category_id"), 2**63),
}
TEXT_LIMITS = {"part_number": 64, "part_number_key": 64, "currency": 3}
TEXT_KEYS = ("part_number", "part_number_key", "name", "brand", "description", "currency")
LIST_KEYS = ("stock", "images", "characteristics")
GPSR_KEYS = ("manufacturer", "eu_representative")
# Stored column <- payload key, for the typed columns the model compares.
COLUMN_KEYS: dict[str, str] = {
    "sku": "part_number",
    "part_number_key": "part_number_key",
    "name": "name",
    "brand": "brand",
    "description": "description",
    "currency": "currency",
    "sale_price": "sale_price",
    "recommended_price": "recommended_price",
    "min_sale_price": "min_sale_price",
    "max_sale_price": "max_sale_price",
    "vat_id": "vat_id",
    "warranty": "warranty",
    "status": "status",
    "general_stock": "general_stock",
    "estimated_stock": "estimated_stock",
    "category_id": "category_id",
    "stock": "stock",
    "images": "images",
    "characteristics": "characteristics",
    "ean": "ean",
}
COMPARED = tuple(COLUMN_KEYS)
EDITABLE = ("sale_price", "name", "description", "status", "stock", "images")
STRATEGIES = ("emag_priority", "local_priority", "newest_wins", "manual")


class _Unknown:
    """A value the model does not judge (an input shape the documentation says nothing about)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


def _clean_text(text: str) -> str:
    text = text.replace("\x00", "")
    return "".join(REPLACEMENT if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def _needs(text: str) -> bool:
    return "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def clean(value: Any) -> tuple[Any, bool]:
    """The payload as magflow must store it, and whether anything was cleaned: NULs removed and lone surrogates
    replaced (values and keys); a key whose cleaning meets a key the object has keeps a U+FFFD suffix; an integer
    outside what a JSON encoder writes (below -2**63, from 2**64 on) is kept as its decimal text. (Values nested
    deeper than 200 levels, kept as JSON text, are never generated here.)"""
    changed = False

    def walk(node: Any) -> Any:
        nonlocal changed
        if isinstance(node, str):
            if _needs(node):
                changed = True
                return _clean_text(node)
            return node
        if isinstance(node, int) and not isinstance(node, bool) and not -(2**63) <= node < 2**64:
            changed = True
            return str(node)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            result = {}
            for key, item in node.items():
                name = key
                if isinstance(key, str) and _needs(key):
                    changed = True
                    name = _clean_text(key)
                    while name in node or name in result:
                        name += REPLACEMENT
                result[name] = walk(item)
            return result
        return node

    return walk(value), changed


def normal_raw(payload: Any) -> Any:
    """A stored or listed payload in the form both kinds of read share: GPSR details as their completion flag."""
    if not isinstance(payload, dict):
        return payload
    shown = dict(payload)
    for key in GPSR_KEYS:
        if isinstance(shown.get(key), list | dict):
            shown[key] = bool(shown[key])
    return shown


def _number(value: Any) -> Decimal | None:
    """A documented number (int, float, or a numeric string with at most surrounding spaces); raises ValueError."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if any(c.isspace() for c in text) or "_" in text:
            raise ValueError("spaces inside a number")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError("not a number") from None
    else:
        raise ValueError("not a number")
    if not number.is_finite():
        raise ValueError("not finite")
    return number


def plain_json(value: Any) -> Any:
    """JSON with integral floats as ints (JSONB keeps 24.0 as 24)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, list):
        return [plain_json(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    return value


def cmp(column: str, value: Any) -> Any:
    """A column value in a hashable form that compares by meaning: money by amount, JSON by content."""
    if value is UNKNOWN:
        return UNKNOWN
    if column == "ean":
        return tuple(value) if value else None
    if value is None:
        return None
    if column in MONEY_KEYS:
        try:
            amount = Decimal(str(value)).quantize(MONEY_QUANTUM, rounding=ROUND_HALF_UP)
        except InvalidOperation:
            return ("unreadable", str(value))
        return format(amount.normalize(), "f") if amount else "0"
    if isinstance(value, list | dict):
        return orjson.dumps(plain_json(value), option=orjson.OPT_SORT_KEYS).decode()
    return value


@dataclass(frozen=True)
class Expectation:
    """What one payload must become: its compared columns (cmp form), or the keys that quarantine it."""

    raw: Any
    columns: Mapping[str, Any]
    bad: frozenset[str]
    cleaned: bool

    @property
    def storable(self) -> bool:
        return not self.bad


def expect(payload: Mapping[str, Any]) -> Expectation:
    raw, cleaned = clean(dict(payload))
    bad: set[str] = set()
    columns: dict[str, Any] = {}
    for key in MONEY_KEYS:
        try:
            amount = _number(raw.get(key))
        except ValueError:
            bad.add(key)
            continue
        if amount is not None and abs(amount) >= MONEY_LIMIT:
            bad.add(key)
        elif key in COLUMN_KEYS:
            columns[key] = cmp(key, amount)
    for key, bound in INT_KEYS.items():
        try:
            number = _number(raw.get(key))
        except ValueError:
            bad.add(key)
            continue
        if number is not None and (number != number.to_integral_value() or not -bound <= number < bound):
            bad.add(key)
        elif key in COLUMN_KEYS:
            columns[key] = None if number is None else int(number)
    for key in TEXT_KEYS:
        value = raw.get(key)
        text = value if isinstance(value, str) or value is None else UNKNOWN
        if isinstance(text, str) and len(text) > TEXT_LIMITS.get(key, 10**9):
            bad.add(key)
        columns["sku" if key == "part_number" else key] = text
    for key in LIST_KEYS:
        value = raw.get(key)
        if value is not None and not isinstance(value, list | dict):
            bad.add(key)  # "n/a" where a list of objects belongs
        columns[key] = cmp(key, value if isinstance(value, list) else [] if value is None else UNKNOWN)
    ean = raw.get("ean")
    if isinstance(ean, str):
        ean = [ean] if ean else []
    columns["ean"] = cmp("ean", [e for e in ean if e] if isinstance(ean, list) else UNKNOWN)
    return Expectation(normal_raw(raw), columns, frozenset(bad), cleaned)


def corrupted(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The sandbox's corrupt_product fault: the offer as that fault serves it."""
    return {**payload, "sale_price": "abc", "stock": "n/a"}
