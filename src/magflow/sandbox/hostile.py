"""Hostile offers: values a real eMAG catalogue can carry and a careless client chokes on.

With `hostile_rate=R` a fraction R of offers (chosen per offer id from `hostile_seed`, so the same seed
always spoils the same offers the same way) carries one hostile value, sometimes two. The kinds, each named
`kind:path` in `SandboxState.hostile_offers()` (the path says where, e.g. `nul:offer_details.notes[0]`):

- `nul` — a NUL character (U+0000, `\\u0000` on the wire) inside a string: a description pasted from Word,
  a name, a brand, a characteristic value, an EAN, an image URL, or a string in an unknown nested key
  (`offer_details.notes[0]`, `content_details.meta.legacy.note`).
- `nul_key` — a NUL inside a key NAME of an unknown nested object (`offer_details`, `content_details`, ...).
- `surrogate` — a lone surrogate, half an emoji, written as the JSON escape `\\ud83d` (as PHP's json_encode
  would send it) in the same places as `nul`; stdlib `json.loads` reads it, orjson refuses it.
- `surrogate_key` — the same inside a key name of an unknown nested object.
- `too_long` — `part_number_key` or `part_number` of 65+ characters, `currency` "RONXX".
- `huge_price` — a price of 10^12 or more (`sale_price`, `recommended_price`, `min_`/`max_sale_price`,
  `best_offer_sale_price`).
- `range` — an integer beyond its column's range: `general_stock` 2**31, `warranty` 2**40, `status` 40000,
  `category_id` 2**63, `buy_button_rank` -2**33, `stock[0].value`, `estimated_stock`, `vat_id`,
  `number_of_offers`.
- `long_text` — a description (or other text) of 200 KB.
- `deep` — an unknown object nested 50 levels deep.
- `spaced_number` — a number sent as a string with spaces: `" 1 299.99 "`, `" 24 "`.
- `nan` — a price sent as the string "NaN", "Infinity" or "-Infinity".
- `no_id` — `id` sent as an empty string. Off unless named in `hostile_kinds`: without an id the offer
  cannot be identified at all.

The values are an overlay applied when an offer is serialised: filters still see eMAG's internal values,
and a mutation or `set_field` of a field replaces any hostile value in it (the seller fixed it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from magflow.sandbox import paths
from magflow.sandbox.catalog import Draw, Product

_TEXT_PATHS = (
    "description", "name", "brand", "characteristics[1].value", "safety_information", "ean[0]", "images[0].url",
    "offer_details.notes[0]", "content_details.meta.legacy.note", "commission.type",
)  # fmt: skip
_KEY_PATHS = ("offer_details", "content_details", "offer_details.attributes", "extra_data.labels")
_RANGE = {
    "general_stock": 2**31, "estimated_stock": 2**31 + 7, "warranty": 2**40, "status": 40000,
    "category_id": 2**63, "buy_button_rank": -(2**33), "stock[0].value": 2**31, "vat_id": 2**31,
    "number_of_offers": 2**32,
}  # fmt: skip
_PRICES = ("sale_price", "recommended_price", "min_sale_price", "max_sale_price", "best_offer_sale_price")
LOCATIONS: dict[str, tuple[str, ...]] = {
    "nul": _TEXT_PATHS,
    "nul_key": _KEY_PATHS,
    "surrogate": _TEXT_PATHS,
    "surrogate_key": _KEY_PATHS,
    "too_long": ("part_number_key", "currency", "part_number"),
    "huge_price": _PRICES,
    "range": tuple(_RANGE),
    "long_text": ("description", "safety_information", "offer_details.long_note"),
    "deep": ("offer_details.tree", "extra_attributes"),
    "spaced_number": ("sale_price", "general_stock", "warranty", "stock[0].value"),
    "nan": ("sale_price", "min_sale_price", "max_sale_price", "best_offer_sale_price"),
    "no_id": ("id",),
}
HOSTILE_KINDS = tuple(LOCATIONS)
DEFAULT_HOSTILE_KINDS = tuple(kind for kind in HOSTILE_KINDS if kind != "no_id")
SURROGATE = "\ud83d"
LONG_TEXT_CHARS = 200_000
DEPTH = 50
_ALNUM = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_TWENTY_DIGITS = re.compile(rb"\d{20}")


@dataclass(frozen=True)
class Hostility:
    """One hostile value of one offer: its kind and where it sits."""

    kind: str
    path: str

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.path}"

    @property
    def tokens(self) -> tuple[paths.Token, ...]:
        return paths.parse(self.path)


def check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(kinds)
    unknown = sorted(set(chosen) - set(HOSTILE_KINDS))
    if unknown or not chosen:
        raise ValueError(f"unknown hostile kinds {unknown}; choose from {list(HOSTILE_KINDS)}")
    return chosen


def pick(seed: int, account: str, offer_id: int, rate: float, kinds: tuple[str, ...]) -> tuple[Hostility, ...]:
    """The offer's hostile values, () for a clean offer. Whether it is hostile depends only on the seed,
    the account and the id, so the same offers stay hostile whatever kinds are enabled."""
    draw = Draw("hostile", seed, account, offer_id)
    if draw.random() >= rate:
        return ()
    chosen: list[Hostility] = []
    for _ in range(2 if draw.random() < 0.25 else 1):
        kind = draw.choice(kinds)
        candidate = Hostility(kind, draw.choice(LOCATIONS[kind]))
        if not any(paths.overlaps(candidate.tokens, h.tokens) for h in chosen):
            chosen.append(candidate)
    return tuple(chosen)


def apply(product: Product, hostilities: tuple[Hostility, ...], seed: int, account: str, offer_id: int) -> Product:
    """A copy of `product` carrying the hostile values (the original is left untouched)."""
    for hostility in hostilities:
        draw = Draw("hostile-value", seed, account, offer_id, hostility.path)
        tokens = hostility.tokens
        try:
            if hostility.kind in ("nul_key", "surrogate_key"):
                mark = "\x00" if hostility.kind == "nul_key" else SURROGATE
                key = f"{draw.choice(('cod', 'nota', 'eticheta', 'x'))}{mark}{draw.choice(('intern', 'vechi', 'y'))}"
                product = paths.put(product, (*tokens, key), draw.choice(("valoare", 1, True)))
            else:
                product = paths.put(product, tokens, _value(hostility, paths.get(product, tokens), draw))
        except ValueError:
            continue  # a test reshaped the offer by hand (the path no longer fits): serve it as it is
    return product


def _value(hostility: Hostility, current: Any, draw: Draw) -> Any:
    kind, path = hostility.kind, hostility.path
    text = current if isinstance(current, str) and current else "Notă lipită din Word"
    if kind in ("nul", "surrogate"):
        mark = "\x00" if kind == "nul" else SURROGATE
        at = len(text) if kind == "surrogate" and draw.random() < 0.5 else draw.randrange(len(text) + 1)
        return text[:at] + mark + text[at:]  # a surrogate at the end: an emoji cut by a length limit
    if kind == "too_long":
        if path == "currency":
            return f"{text}XX"
        return text + "-" + "".join(draw.choice(_ALNUM) for _ in range(64 + draw.randrange(60)))
    if kind == "huge_price":
        return draw.choice((10**12, 1234567890123.45, 99999999999999.99, 10**15))
    if kind == "range":
        return _RANGE[path]
    if kind == "long_text":
        return text + _filler()
    if kind == "deep":
        return _nested(DEPTH)
    if kind == "spaced_number":
        number = current if isinstance(current, int | float) and not isinstance(current, bool) else 1299.99
        return f" {number:,} ".replace(",", " ")
    if kind == "nan":
        return draw.choice(("NaN", "Infinity", "-Infinity"))
    return ""  # no_id


@cache
def _filler() -> str:
    paragraph = (
        "<p>Produsul este fabricat din materiale de calitate, rezistente și ușor de întreținut. "
        "Ambalajul conține instrucțiuni în limba română; păstrați-le pentru consultări ulterioare.</p>"
    )
    return paragraph * (LONG_TEXT_CHARS // len(paragraph) + 1)


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"value": "fundul listei"}
    for level in range(depth - 1, 0, -1):
        node = {"level": level, "child": node}
    return node


def dumps(value: Any) -> bytes:
    """orjson's bytes, or, when orjson refuses (a lone surrogate, an integer beyond 64 bits), stdlib json
    with each lone surrogate written as a `\\udXXX` escape, as PHP's json_encode sends it."""
    try:
        return orjson.dumps(value)
    except TypeError:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")


def loads(body: bytes) -> Any:
    """orjson, or stdlib json where orjson would refuse the body (lone surrogates) or read it wrongly (it
    turns integers beyond 64 bits into floats; a run of 20 digits is the cheap sign of one)."""
    if _TWENTY_DIGITS.search(body) is None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)
