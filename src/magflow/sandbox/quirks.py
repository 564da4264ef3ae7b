"""The sandbox's data quirks: how the catalogue is ordered and shaped, and how it disagrees with a client.

The listing order. eMAG documents no sort order for product_offer/read, so `product_sort` picks one:
- "id_asc" (default): by id; an edit moves nothing.
- "id_desc": by id, highest first.
- "modified_asc": an edited offer moves to the END (offset paging during a scan skips one row and repeats
  another); this is the older `listing_order="modified"`.
- "modified_desc": an edited offer moves to the FRONT, so every later page shifts by one.
`insert_at` is where a NEW offer enters an id-sorted listing: "end" (default), "front" or "random" (a seller
may choose a low offer id, or the index is simply unordered). In the modified_* sorts a new offer counts as just
modified and goes where an edited one goes. `listing_order` remains as an alias: "id" = id_asc,
"modified" = modified_asc (reading it answers "id" or "modified" for the sort's family).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from magflow.sandbox import hostile
from magflow.sandbox.hostile import DEFAULT_HOSTILE_KINDS
from magflow.sandbox.platforms import PlatformCode, platform

ListingOrder = Literal["id", "modified"]
LISTING_ORDERS = ("id", "modified")
ProductSort = Literal["id_asc", "id_desc", "modified_asc", "modified_desc"]
PRODUCT_SORTS: tuple[ProductSort, ...] = ("id_asc", "id_desc", "modified_asc", "modified_desc")
InsertAt = Literal["end", "front", "random"]
INSERT_AT: tuple[InsertAt, ...] = ("end", "front", "random")
LISTING_ORDER_SORTS: dict[str, ProductSort] = {"id": "id_asc", "modified": "modified_asc"}


@dataclass(frozen=True)
class Quirks:
    """Ways the catalogue disagrees with a client; all off (or eMAG-plain) by default.

    - hostile_rate / hostile_seed / hostile_kinds: see magflow.sandbox.hostile (seed None = the catalogue's).
    - count_lag: product_offer/count answers this many fewer offers than the listing has (negative: more).
    - product_sort / insert_at: the listing order (module docstring).
    - sparse_products: offers as real data shows them: optional keys absent, empty lists sent as null, `weight` as
      a string, `commission` null, a translation_validation_status on some.
    - empty_objects_as_lists: PHP's `[]` for every empty object (`family`, `offer_details`, an order's `details`...).
    - platform: "ro", "bg" or "hu": currency, language and vat/read rates (magflow.sandbox.platforms).
    - currency: overrides the platform's currency (e.g. "BGN" for Bulgaria before 2026)."""

    hostile_rate: float = 0.0
    hostile_seed: int | None = None
    hostile_kinds: tuple[str, ...] = DEFAULT_HOSTILE_KINDS
    count_lag: int = 0
    product_sort: ProductSort = "id_asc"
    insert_at: InsertAt = "end"
    sparse_products: bool = False
    empty_objects_as_lists: bool = False
    platform: PlatformCode = "ro"
    currency: str | None = None

    @property
    def listing_order(self) -> ListingOrder:
        return "modified" if self.product_sort.startswith("modified") else "id"

    @property
    def hostility(self) -> tuple[float, int | None, tuple[str, ...]]:
        """What decides which offers are hostile and how."""
        return self.hostile_rate, self.hostile_seed, self.hostile_kinds

    @property
    def shape(self) -> tuple[object, ...]:
        """Everything that changes how an offer is serialised (a change empties the cached bytes)."""
        return (*self.hostility, self.sparse_products, self.empty_objects_as_lists, self.platform, self.currency)

    @property
    def shown_currency(self) -> str:
        return self.currency or platform(self.platform).currency

    def checked(self) -> Quirks:
        if not 0.0 <= self.hostile_rate <= 1.0:
            raise ValueError(f"hostile_rate must be between 0 and 1, not {self.hostile_rate}")
        if self.product_sort not in PRODUCT_SORTS:
            raise ValueError(f"product_sort must be one of {PRODUCT_SORTS}, not {self.product_sort!r}")
        if self.insert_at not in INSERT_AT:
            raise ValueError(f"insert_at must be one of {INSERT_AT}, not {self.insert_at!r}")
        platform(self.platform)
        return replace(self, hostile_kinds=hostile.check_kinds(self.hostile_kinds), count_lag=int(self.count_lag))


def sort_for_listing_order(order: str) -> ProductSort:
    if order not in LISTING_ORDER_SORTS:
        raise ValueError(f"listing_order must be one of {LISTING_ORDERS}, not {order!r}")
    return LISTING_ORDER_SORTS[order]
