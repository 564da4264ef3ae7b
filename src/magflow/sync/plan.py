"""What a sync was asked for, checked and turned into a plan: modes, selective filters, page sizes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from magflow.sync.enums import ConflictResolutionStrategy, SyncMode

SCALAR_FILTERS = ("status", "validation_status", "offer_validation_status", "general_stock")
# Each offer a selective sync names (an id, a SKU, a part_number_key) costs at least one eMAG call from a budget of
# 3 requests/s shared by every call of the account: one request may name at most this many (a minute or two).
MAX_FILTER_SETS = 200
# eMAG's maximum page size, and the cheapest: a scan of N offers costs N/100 calls at 100, N calls at 1.
SCAN_PAGE_SIZE = 100


class SyncRequestError(ValueError):
    """The sync was asked for with parameters that cannot work; the message says which and why."""


@dataclass
class SelectiveFilters:
    """What a selective sync reads: offer ids, SKUs (part_number), part_number_keys, and/or status filters."""

    ids: list[int] = field(default_factory=list)
    skus: list[str] = field(default_factory=list)
    part_number_keys: list[str] = field(default_factory=list)
    status: int | None = None
    validation_status: int | None = None
    offer_validation_status: int | None = None
    general_stock: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SelectiveFilters:
        """From a request's or a task's plain JSON fields (ids, skus, part_number_keys, status, ...)."""
        return cls(
            ids=[int(i) for i in data.get("ids") or []],
            skus=[str(s) for s in data.get("skus") or []],
            part_number_keys=[str(k) for k in data.get("part_number_keys") or []],
            status=data.get("status"),
            validation_status=data.get("validation_status"),
            offer_validation_status=data.get("offer_validation_status"),
            general_stock=data.get("general_stock"),
        )

    @property
    def named(self) -> int:
        """How many offers the request names (ids, SKUs, part_number_keys): one filter set, one call each."""
        return len(self.ids) + len(self.skus) + len(self.part_number_keys)

    def filter_sets(self) -> list[dict[str, Any]]:
        scalars = {k: getattr(self, k) for k in SCALAR_FILTERS if getattr(self, k) is not None}
        sets: list[dict[str, Any]] = [{"id": i} for i in self.ids]
        sets += [{"part_number": s} for s in self.skus]
        sets += [{"part_number_key": k} for k in self.part_number_keys]
        if sets:
            return [{**s, **scalars} for s in sets]
        return [scalars] if scalars else []


def too_many_named(named: int) -> str | None:
    """Why a request naming `named` offers is refused, or None when it is within MAX_FILTER_SETS."""
    if named <= MAX_FILTER_SETS:
        return None
    return (
        f"ids, skus and part_number_keys name {named} offers together, but one sync may name at most "
        f"{MAX_FILTER_SETS} (each costs an eMAG call from the account's rate budget): split them over several syncs"
    )


def scan_page_size(mode: SyncMode, items_per_page: int, names_offers: bool) -> tuple[int, str | None]:
    """The page size a sync asked for over the API reads with, and a note when that is not what it asked for.

    Pages smaller than eMAG's maximum only multiply the calls a scan costs (`items_per_page: 1` turns a full sync
    of 10,000 offers into 10,000 calls, about an hour of the account's budget), so full, incremental and
    status-filtered selective syncs read 100 per page. A selective read of named offers keeps its page size: it
    costs one call per named offer either way. The guide's bodies send 100, or a smaller batch as a
    troubleshooting step, which is why another value is ignored with a note rather than refused."""
    if items_per_page == SCAN_PAGE_SIZE or (mode is SyncMode.SELECTIVE and names_offers):
        return items_per_page, None
    what = "a selective sync by status filters" if mode is SyncMode.SELECTIVE else f"a {mode.value} sync"
    less = "" if mode is SyncMode.FULL else "; max_pages limits how much it reads"
    return SCAN_PAGE_SIZE, (
        f"items_per_page {items_per_page} was ignored: {what} reads {SCAN_PAGE_SIZE} offers per page, eMAG's "
        "maximum and the fewest calls from the account's rate budget (only a selective sync of ids, skus or "
        f"part_number_keys keeps its own page size){less}"
    )


def parse_enum(kind: type[SyncMode] | type[ConflictResolutionStrategy], value: Any, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise SyncRequestError(f"{name} must be one of {allowed} (got {value!r})") from None


@dataclass
class Plan:
    mode: SyncMode
    items_per_page: int
    max_pages: int | None
    filter_sets: list[dict[str, Any]]
    fingerprint: dict[str, Any]


def fingerprint(
    mode: SyncMode, items_per_page: int, max_pages: int | None, filters: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "mode": mode.value,
        "items_per_page": items_per_page,
        "max_pages": max_pages,
        "filters": dict(filters),
    }


def build_plan(
    mode: SyncMode,
    max_pages: int | None,
    items_per_page: int,
    include_inactive: bool,
    filters: SelectiveFilters | None,
) -> Plan:
    if not 1 <= items_per_page <= 100:
        raise SyncRequestError(f"items_per_page must be between 1 and 100 (got {items_per_page})")
    if max_pages is not None and max_pages < 1:
        raise SyncRequestError(f"max_pages must be at least 1, or omitted for all pages (got {max_pages})")
    if mode is SyncMode.FULL:
        sets: list[dict[str, Any]] = [{}]
        max_pages = None  # a full sync reads every page, or it could not tell what is missing
    elif mode is SyncMode.INCREMENTAL:
        sets = [{} if include_inactive else {"status": 1}]
    else:
        sets = (filters or SelectiveFilters()).filter_sets()
        if not sets:
            raise SyncRequestError(
                "a selective sync needs at least one filter: ids, skus, part_number_keys, status, "
                "validation_status, offer_validation_status or general_stock"
            )
        refused = too_many_named(filters.named if filters is not None else 0)
        if refused is not None:
            raise SyncRequestError(refused)
        targeted = filters is not None and (filters.ids or filters.skus or filters.part_number_keys)
        if not targeted and not include_inactive and filters is not None and filters.status is None:
            sets = [{**s, "status": 1} for s in sets]
    return Plan(
        mode=mode,
        items_per_page=items_per_page,
        max_pages=max_pages,
        filter_sets=sets,
        fingerprint=fingerprint(mode, items_per_page, max_pages, {"sets": sets}),
    )
