"""What a sync was asked for, checked and turned into a plan: modes, selective filters, page sizes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from magflow.sync.enums import ConflictResolutionStrategy, SyncMode

SCALAR_FILTERS = ("status", "validation_status", "offer_validation_status", "general_stock")


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

    def filter_sets(self) -> list[dict[str, Any]]:
        scalars = {k: getattr(self, k) for k in SCALAR_FILTERS if getattr(self, k) is not None}
        sets: list[dict[str, Any]] = [{"id": i} for i in self.ids]
        sets += [{"part_number": s} for s in self.skus]
        sets += [{"part_number_key": k} for k in self.part_number_keys]
        if sets:
            return [{**s, **scalars} for s in sets]
        return [scalars] if scalars else []


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
