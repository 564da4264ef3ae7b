"""Deterministic generation of a realistic eMAG offer catalogue.

Every product is derived from (seed, content index) for its documentation and from (seed, account, offer
index) for its offer data, so the same seed always yields the same catalogue, and a SKU shared by the
MAIN and FBE accounts carries the same documentation under two different offer ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b
from typing import Any, TypeVar

from magflow.sandbox.platforms import PLATFORMS, Platform

T = TypeVar("T")

Product = dict[str, Any]

FIRST_OFFER_ID = {"main": 100_001, "fbe": 500_001}
# FBE products that are not shared use content indexes far from MAIN's so their SKUs never collide.
FBE_OWN_CONTENT_BASE = 5_000_000

_KINDS = [
    ("Cană termoizolantă", "ml", [250, 350, 450, 500]),
    ("Set cuțite de bucătărie", "piese", [3, 5, 6, 8]),
    ("Lampă de birou LED", "W", [5, 7, 9, 12]),
    ("Husă protecție telefon", "mm", [6, 7]),
    ("Încărcător rapid USB-C", "W", [20, 25, 45, 65]),
    ("Pătură din fleece", "cm", [130, 150, 200]),
    ("Tigaie antiaderentă", "cm", [20, 24, 28]),
    ("Ceas inteligent", "mm", [41, 44, 46]),
    ("Cască de protecție ciclism", "cm", [54, 58, 62]),
    ("Rucsac școlar", "l", [18, 22, 30]),
    ("Periuță de dinți electrică", "moduri", [2, 3, 5]),
    ("Jucărie educativă din lemn", "piese", [12, 24, 48]),
    ("Perie de păr ionică", "trepte", [2, 3]),
    ("Aspirator vertical fără fir", "W", [120, 250, 450]),
    ("Țesătură pentru perdele", "m", [2, 3, 5]),
    ("Șervețele umede pentru bebeluși", "buc", [56, 72, 80]),
    ("Laptop ultraportabil", "inch", [13, 14, 15]),
]
COLOURS = ["negru", "alb", "roșu", "albastru", "verde", "gri", "bej", "roz", "galben", "maro"]
_MATERIALS = [
    "oțel inoxidabil",
    "ceramică",
    "plastic reciclat",
    "bumbac",
    "lemn de fag",
    "aluminiu",
    "sticlă",
]
_BRANDS = ["Șerban & Fiii", "Tehnoplus", "Casa Bună", "Ardealul", "Vitrina", "Dacia Home", "Brâncuși Design"]
_BRANDS += ["KitchenPro", "Îmbrățișare", "Lumina Nouă", "Zâmbet Kids"]
_ADJECTIVES = ["ergonomic", "rezistent", "ușor de curățat", "compact", "elegant", "durabil", "ecologic"]
_CITIES = ["București", "Cluj-Napoca", "Iași", "Timișoara", "Brașov", "Constanța", "Târgu Mureș"]
_VALIDATION = [(9, 0.70), (11, 0.06), (12, 0.04), (3, 0.04), (4, 0.05), (8, 0.04), (1, 0.03), (10, 0.02)]
_VALIDATION += [(5, 0.01), (6, 0.01)]
_VALIDATION_TEXT = {
    0: "Draft",
    1: "In MKTP validation",
    2: "Awaiting Brand validation",
    3: "Waiting for EAN approval",
    4: "New documentation validation pending",
    5: "Rejected Brand",
    6: "Invalid product – EAN rejected",
    8: "Documentation rejected",
    9: "Approved documentation",
    10: "Blocked",
    11: "Update awaiting approval",
    12: "Update rejected",
}
_PNK_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


class Draw:
    """A fast deterministic stream of choices from a hash (random.Random costs ~50 µs per product here).

    Numbers are taken from a 512-bit integer in mixed radix, so each draw consumes only what it needs."""

    __slots__ = ("_bits", "_key", "_round")

    def __init__(self, *key: object) -> None:
        self._key = repr(key).encode()
        self._round = 0
        self._bits = self._refill()

    def _refill(self) -> int:
        self._round += 1
        digest = blake2b(self._key + self._round.to_bytes(4, "little"), digest_size=64).digest()
        return int.from_bytes(digest, "little")

    def randrange(self, n: int) -> int:
        if self._bits < 1 << 64:
            self._bits = self._refill()
        self._bits, value = divmod(self._bits, n)
        return value

    def randint(self, low: int, high: int) -> int:
        return low + self.randrange(high - low + 1)

    def random(self) -> float:
        return self.randrange(1 << 30) / (1 << 30)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def choice(self, items: Sequence[T]) -> T:
        return items[self.randrange(len(items))]

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        pool = list(items)
        return [pool.pop(self.randrange(len(pool))) for _ in range(k)]


def entity_encode(text: str) -> str:
    """Write every non-ASCII character as a numeric HTML entity, as many eMAG descriptions do."""
    return text.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _weighted(rng: Draw, table: list[tuple[int, float]]) -> int:
    roll = rng.random()
    for value, weight in table:
        roll -= weight
        if roll < 0:
            return value
    return table[0][0]


def _ean(rng: Draw) -> str:
    digits = [rng.randrange(10) for _ in range(12)]
    check = (10 - sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10) % 10
    return "".join(map(str, digits)) + str(check)


def validation_entry(value: int) -> dict[str, Any]:
    errors = None if value not in (5, 6, 8) else [{"code": value * 100, "message": "Documentație incompletă"}]
    return {"value": value, "description": _VALIDATION_TEXT.get(value, "Unknown"), "errors": errors}


def content(seed: int, index: int) -> Product:
    """The documentation part of a product (what a shared SKU has in common on both accounts)."""
    rng = Draw(seed, index)
    kind, unit, sizes = _KINDS[rng.randrange(len(_KINDS))]
    colour = rng.choice(COLOURS)
    material = rng.choice(_MATERIALS)
    brand = rng.choice(_BRANDS)
    size = rng.choice(sizes)
    name = f"{kind} {brand}, {material}, {size} {unit}, {colour}"
    sku = f"{brand[:3].upper()}-{index:07d}-{rng.randrange(36**3):03X}".replace(" ", "")
    pnk = "".join(rng.choice(_PNK_ALPHABET) for _ in range(9))
    adjectives = rng.sample(_ADJECTIVES, 2)
    description = entity_encode(
        f"<p><strong>{kind}</strong> de la {brand}, {adjectives[0]} și {adjectives[1]}.</p>"
        f"<ul><li>Material: {material}</li><li>Culoare: {colour}</li><li>Dimensiune: {size} {unit}</li></ul>"
        f"<p>Livrare rapidă din {rng.choice(_CITIES)}. Garanție inclusă.</p>"
    )
    images = [
        {
            "url": f"https://s13emagst.akamaized.net/products/{pnk.lower()}/{n}.jpg",
            "display_type": 1 if n == 0 else 2 if n < 3 else 0,
        }
        for n in range(rng.randint(1, 8))
    ]
    characteristics: list[dict[str, Any]] = [
        {"id": 5401, "value": colour.capitalize()},
        {"id": 6861, "value": material.capitalize()},
        {"id": 7764, "value": f"{size} {unit}"},
    ]
    if rng.random() < 0.15:
        characteristics += [{"id": 6506, "tag": "original", "value": f"{36 + rng.randrange(10)} EU"}]
    has_manufacturer = rng.random() < 0.6
    has_representative = has_manufacturer and rng.random() < 0.5
    category_id = 2700 + rng.randrange(80)
    return {
        "part_number": sku[:25],
        "part_number_key": pnk,
        "ean": [_ean(rng)] if rng.random() < 0.92 else [],
        "name": name,
        "brand": brand,
        "brand_name": brand,
        "description": description,
        "images": images,
        "characteristics": characteristics,
        "category_id": category_id,
        "vendor_category_id": rng.choice([None, category_id + 10_000]),
        "family": (
            {"id": 9000 + index // 4, "name": f"{kind} {brand}", "family_type_id": 95} if rng.random() < 0.25 else None
        ),
        "warranty": rng.choice([0, 12, 24, 24, 36]),
        "url": f"https://magazin.example.ro/p/{sku.lower()}",
        "source_language": "ro_RO",
        "safety_information": "A nu se lăsa la îndemâna copiilor." if rng.random() < 0.4 else None,
        "attachments": [],
        "_gpsr": (
            [
                {
                    "name": f"{brand} SRL",
                    "address": f"Str. Fabricii {rng.randint(1, 99)}, {rng.choice(_CITIES)}",
                    "email": "contact@example.ro",
                }
            ]
            if has_manufacturer
            else [],
            [{"name": "EU Rep Sp. z o.o.", "address": "ul. Prosta 1, Warszawa, PL", "email": "eu@example.pl"}]
            if has_representative
            else [],
        ),
    }


def offer(
    seed: int, account: str, index: int, product_id: int, documentation: Product, market: Platform = PLATFORMS["ro"],
    currency: str | None = None,
) -> Product:  # fmt: skip
    """A full product-offer record: documentation plus this account's offer data and the real-data quirks."""
    rng = Draw(seed, account, index)
    warehouses = [1] if account == "fbe" or rng.random() < 0.6 else rng.sample([1, 2, 3], rng.randint(2, 3))
    warehouses.sort()
    stock = [
        {"warehouse_id": w, "value": rng.choice([0, 0, rng.randint(1, 40), rng.randint(1, 500)])} for w in warehouses
    ]
    price = round(rng.uniform(9.0, 2500.0), 4)
    status = _weighted(rng, [(1, 0.82), (0, 0.12), (2, 0.06)])
    validation = _weighted(rng, _VALIDATION)
    offer_validation = 1 if rng.random() < 0.93 else 2
    ovs_entry = {
        "value": offer_validation,
        "description": "Valid" if offer_validation == 1 else "Invalid price",
    }
    ownership_int = 1 if rng.random() < 0.7 else 2
    product = dict(documentation)
    manufacturer, representative = product.pop("_gpsr")
    if market.code != "ro":
        product["url"] = product["url"].replace(".ro/", f".{market.code}/")
        product["source_language"] = market.language
    general = sum(s["value"] for s in stock)
    product.update(
        {
            "id": product_id,
            "sale_price": price,
            "recommended_price": round(price * rng.uniform(1.05, 1.4), 4) if rng.random() < 0.35 else 0,
            "min_sale_price": round(price * 0.8, 4),
            "max_sale_price": round(price * 1.5, 4),
            "currency": currency or market.currency,
            "vat_id": market.vat_id(rng.choice([1, 1, 1, 1, 2, 3])),
            "green_tax": 0,
            "stock": stock,
            "general_stock": general,
            "estimated_stock": max(0, general - rng.randint(0, 2)),
            "handling_time": [{"warehouse_id": w, "value": rng.choice([0, 1, 1, 2, 3])} for w in warehouses],
            "supply_lead_time": rng.choice([2, 3, 5, 7, 14]),
            "status": status,
            "validation_status": [validation_entry(validation)],
            "translation_validation_status": [],
            # Real data shows both shapes; a parser must accept either.
            "offer_validation_status": [ovs_entry] if rng.random() < 0.6 else ovs_entry,
            "doc_errors": None if validation not in (5, 6, 8) else [{"code": 8001, "message": "Imagini lipsă"}],
            "ownership": ownership_int if rng.random() < 0.5 else ownership_int == 1,
            "number_of_offers": rng.randint(1, 12),
            "buy_button_rank": rng.randint(1, 6),
            "best_offer_sale_price": round(price * rng.uniform(0.85, 1.0), 4),
            "best_offer_recommended_price": 0,
            "genius_eligibility": rng.choice([0, 1]),
            "genius_eligibility_type": rng.choice([1, 2, 3]),
            "genius_computed": rng.choice([0, 0, 1, 2]),
            "manufacturer": manufacturer,
            "eu_representative": representative,
            # Undocumented keys seen in real payloads.
            "offer_details": {"warehouse_type": 2 if account == "fbe" else 1, "supply_lead_time": 14},
            "availability": [{"warehouse_id": w, "id": 3} for w in warehouses],
            "offer_properties": [],
            "content_details": {"status": 2},
            "commission": {"value": round(rng.uniform(5, 22), 2), "type": "percentage"},
            "rrp_guidelines": None,
            "barcode": list(product["ean"]),
            "start_date": [],
            "weight": round(rng.uniform(0.05, 12.0), 3),
        }
    )
    return product


def list_form(product: Product) -> Product:
    """A product as a list read shows it: GPSR details collapse to completion flags."""
    shown = dict(product)
    shown["manufacturer"] = bool(product["manufacturer"])
    shown["eu_representative"] = bool(product["eu_representative"])
    return shown


def shared_layout(account: str, count: int, shared_fraction: float, main_count: int) -> tuple[int, int]:
    """(how many of the account's first offers reuse MAIN documentation, MAIN index stride between them)."""
    shared = min(int(count * shared_fraction), main_count) if account == "fbe" else 0
    return shared, max(1, main_count // shared) if shared else 1


def build(
    seed: int, account: str, index: int, shared: int, stride: int, market: Platform = PLATFORMS["ro"],
    currency: str | None = None,
) -> Product:  # fmt: skip
    """The account's `index`-th offer (id FIRST_OFFER_ID + index); FBE's first `shared` reuse MAIN SKUs."""
    if index < shared:
        doc = content(seed, index * stride)
    else:
        doc = content(seed, index if account == "main" else FBE_OWN_CONTENT_BASE + index)
    return offer(seed, account, index, FIRST_OFFER_ID[account] + index, doc, market, currency)
