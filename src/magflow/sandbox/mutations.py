"""How `SandboxState.mutate` changes an offer's fields, as a seller editing it in eMAG's portal would."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from magflow.sandbox.catalog import COLOURS, Product

DEFAULT_FIELDS = ("sale_price", "stock", "name", "status")
MUTABLE_FIELDS = (*DEFAULT_FIELDS, "description", "characteristics", "images")
# Top-level keys a mutation of the field rewrites (stock totals follow the warehouses).
TOUCHED_KEYS = {"stock": ("stock", "general_stock", "estimated_stock")}
_UPDATE_MARK = "<p>Actualizare v"


def check_fields(fields: tuple[str, ...]) -> None:
    unknown = set(fields) - set(MUTABLE_FIELDS)
    if unknown:
        raise ValueError(f"cannot mutate {sorted(unknown)}; choose from {MUTABLE_FIELDS}")


def touched_keys(fields: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(key for f in fields for key in TOUCHED_KEYS.get(f, (f,)))


def change(product: Product, fields: tuple[str, ...], rng: random.Random, version: int) -> Product:
    """A copy of `product` with every one of `fields` changed; draws from `rng` only for those fields,
    in a fixed order, so older callers asking for the first four fields see the same changes as before."""
    changed = dict(product)
    for name, how in _CHANGES.items():
        if name in fields:
            how(changed, rng, version)
    return changed


def _sale_price(product: Product, rng: random.Random, _: int) -> None:
    product["sale_price"] = round(product["sale_price"] * rng.uniform(0.8, 1.2) + 0.0001, 4)


def _stock(product: Product, rng: random.Random, _: int) -> None:
    product["stock"] = [{**s, "value": (s["value"] + rng.randint(1, 30)) % 65536} for s in product["stock"]]
    product["general_stock"] = sum(s["value"] for s in product["stock"])
    product["estimated_stock"] = product["general_stock"]


def _name(product: Product, _: random.Random, version: int) -> None:
    product["name"] = f"{product['name'].split(' (v')[0]} (v{version})"


def _status(product: Product, _: random.Random, __: int) -> None:
    product["status"] = {1: 0, 0: 1, 2: 1}[product["status"]]


def _description(product: Product, _: random.Random, version: int) -> None:
    product["description"] = f"{product['description'].split(_UPDATE_MARK)[0]}{_UPDATE_MARK}{version}</p>"


def _characteristics(product: Product, rng: random.Random, _: int) -> None:
    characteristics = [dict(c) for c in product["characteristics"]]
    first = characteristics[0]
    first["value"] = rng.choice([c.capitalize() for c in COLOURS if c.capitalize() != first["value"]])
    product["characteristics"] = characteristics


def _images(product: Product, _: random.Random, version: int) -> None:
    images = list(product["images"])
    if len(images) > 1:
        images.pop()
    else:
        url = images[0]["url"].rsplit("/", 1)[0] if images else "https://s13emagst.akamaized.net/products/new"
        images.append({"url": f"{url}/v{version}.jpg", "display_type": 2 if images else 1})
    product["images"] = images


_CHANGES: dict[str, Callable[[Product, random.Random, int], Any]] = {
    "sale_price": _sale_price,
    "stock": _stock,
    "name": _name,
    "status": _status,
    "description": _description,
    "characteristics": _characteristics,
    "images": _images,
}
