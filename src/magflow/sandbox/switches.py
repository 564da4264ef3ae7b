"""Every sandbox switch in one flat namespace: a SandboxState keyword, `state.set_quirks(**switches)`,
`POST /_sandbox/quirks` and `make_sandbox(**switches)` all take the same names.

The switches live in three groups — data quirks (magflow.sandbox.quirks.Quirks), the protocol
(magflow.sandbox.wire.Wire) and the rate-limit model (magflow.sandbox.ratelimit.RateModel) — and this module
routes each name to its group. Aliases: `listing_order` ("id" / "modified") sets `product_sort`, `window` sets
`rate_window`, and body_style takes the issue's spellings (accept-all, top-level, wrapped).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from magflow.sandbox.quirks import Quirks, sort_for_listing_order
from magflow.sandbox.ratelimit import RateModel
from magflow.sandbox.wire import Wire

QUIRK_NAMES = frozenset(f.name for f in fields(Quirks))
WIRE_NAMES = frozenset(f.name for f in fields(Wire))
RATE_NAMES = frozenset(f.name for f in fields(RateModel))
ALIASES = {"listing_order": "product_sort", "window": "rate_window"}
NAMES = QUIRK_NAMES | WIRE_NAMES | RATE_NAMES


@dataclass(frozen=True)
class Switches:
    quirks: Quirks
    wire: Wire
    rate: RateModel

    @classmethod
    def default(cls) -> Switches:
        return cls(Quirks(), Wire(), RateModel())

    def changed(self, **changes: Any) -> Switches:
        """A copy with `changes` applied and checked; raises ValueError naming an unknown switch or value."""
        changes = _normalised(changes)
        unknown = sorted(set(changes) - NAMES)
        if unknown:
            raise ValueError(f"unknown sandbox switches {unknown}; choose from {sorted(NAMES | set(ALIASES))}")
        return Switches(
            replace(self.quirks, **{k: v for k, v in changes.items() if k in QUIRK_NAMES}).checked(),
            replace(self.wire, **{k: v for k, v in changes.items() if k in WIRE_NAMES}).checked(),
            replace(self.rate, **{k: v for k, v in changes.items() if k in RATE_NAMES}).checked(),
        )

    def flat(self) -> dict[str, Any]:
        """Every switch by name (tuples as lists, as JSON has them)."""
        values = {**asdict(self.quirks), **asdict(self.wire), **asdict(self.rate)}
        values["hostile_kinds"] = list(values["hostile_kinds"])
        values["listing_order"] = self.quirks.listing_order
        return values


def _normalised(changes: dict[str, Any]) -> dict[str, Any]:
    changes = dict(changes)
    if "listing_order" in changes:
        sort = sort_for_listing_order(str(changes.pop("listing_order")))
        changes.setdefault("product_sort", sort)  # both given (flat() fed back): the precise one wins
    if "window" in changes:
        changes["rate_window"] = changes.pop("window")
    kinds = changes.get("hostile_kinds")
    if kinds is not None:
        changes["hostile_kinds"] = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    return changes
