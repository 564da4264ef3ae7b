"""The sandbox's quirks: settings that make it disagree with a client, all off by default."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from magflow.sandbox import hostile
from magflow.sandbox.hostile import DEFAULT_HOSTILE_KINDS

ListingOrder = Literal["id", "modified"]
LISTING_ORDERS = ("id", "modified")


@dataclass
class Quirks:
    """Ways the sandbox disagrees with a client; all off by default.

    - hostile_rate / hostile_seed / hostile_kinds: see magflow.sandbox.hostile (seed None = the catalogue's).
    - count_lag: product_offer/count answers this many fewer offers than the listing has (negative: more).
    - listing_order: "id" (stable) or "modified" (a changed or added offer moves to the end of the listing,
      so offset paging during a scan skips or repeats rows)."""

    hostile_rate: float = 0.0
    hostile_seed: int | None = None
    hostile_kinds: tuple[str, ...] = DEFAULT_HOSTILE_KINDS
    count_lag: int = 0
    listing_order: ListingOrder = "id"

    @property
    def hostility(self) -> tuple[float, int | None, tuple[str, ...]]:
        """What decides which offers are hostile and how."""
        return self.hostile_rate, self.hostile_seed, self.hostile_kinds

    def checked(self) -> Quirks:
        if not 0.0 <= self.hostile_rate <= 1.0:
            raise ValueError(f"hostile_rate must be between 0 and 1, not {self.hostile_rate}")
        if self.listing_order not in LISTING_ORDERS:
            raise ValueError(f"listing_order must be one of {LISTING_ORDERS}, not {self.listing_order!r}")
        return replace(self, hostile_kinds=hostile.check_kinds(self.hostile_kinds), count_lag=int(self.count_lag))
