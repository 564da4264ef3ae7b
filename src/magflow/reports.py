"""Read-side queries shared by the REST API and the CLI (`magflow status`, `magflow history`).

Every function only reads; values are plain Python (UUID, datetime, Decimal) inside dicts and lists, ready for
pydantic or for `jsonable()` when a caller wants JSON-native values.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from magflow.config import ACCOUNTS, Settings
from magflow.models import (
    EmagAccountState,
    EmagProduct,
    EmagProductChange,
    EmagProductConflict,
    EmagSyncLog,
    EmagSyncProgress,
)
from magflow.text import fold

ACTIVE_STATUSES = ("running", "queued")
RECENT_SYNCS = 5
PRODUCT_CHANGES_SHOWN = 100

PRODUCT_SUMMARY_FIELDS = (
    "id",
    "account_type",
    "emag_id",
    "sku",
    "part_number_key",
    "name",
    "brand",
    "sale_price",
    "currency",
    "general_stock",
    "status",
    "is_active",
    "validation_status",
    "offer_validation_status",
    "sync_status",
    "sync_issue",
    "is_missing",
    "last_synced_at",
    "updated_at",
)
# The last page read that listed each product (unchanged products are not rewritten, so the row's own
# last_seen_at is the last *change*; emag_page_reads knows every read).
LAST_READ_SQL = text(
    """
    SELECT e.account_type, e.emag_id,
           (SELECT max(r.read_at) FROM emag_page_reads r
            WHERE r.account_type = e.account_type AND r.emag_ids @> ARRAY[e.emag_id]) AS read_at
    FROM unnest(CAST(:accounts AS varchar[]), CAST(:ids AS bigint[])) AS e(account_type, emag_id)
    """
)
# Internal bookkeeping that a reader never needs (search_text is a derived index column).
PRODUCT_HIDDEN_FIELDS = frozenset({"search_text", "content_hash"})


def jsonable(value: Any) -> Any:
    """JSON-native values: UUIDs and datetimes as strings, decimals as strings (money keeps its digits)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _sync_row(run: EmagSyncLog) -> dict[str, Any]:
    return {
        "id": run.id,
        "sync_type": run.sync_type,
        "account_type": run.account_type,
        "operation": run.operation,
        "mode": run.mode,
        "status": run.status,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
        "duration_seconds": run.duration_seconds,
        "total_items": run.total_items,
        "processed_items": run.processed_items,
        "created_items": run.created_items,
        "updated_items": run.updated_items,
        "unchanged_items": run.unchanged_items,
        "failed_items": run.failed_items,
        "missing_items": run.missing_items,
        "conflicts": run.conflicts,
        "pages_processed": run.pages_processed,
        "api_requests": run.api_requests,
        "rate_limit_hits": run.rate_limit_hits,
        "error_message": run.error_message,
        "errors": list(run.errors or [])[:20],
        "triggered_by": run.triggered_by,
        "parameters": dict(run.parameters or {}),
        "resumed_from": run.resumed_from,
        "cancel_requested": run.cancel_requested,
    }


def _progress_row(progress: EmagSyncProgress) -> dict[str, Any]:
    return {
        "account_type": progress.account_type,
        "status": progress.status,
        "current_page": progress.current_page,
        "total_pages": progress.total_pages,
        "processed_items": progress.current_item,
        "total_items": progress.total_items,
        "percentage": progress.percentage,
        "items_per_second": progress.items_per_second,
        "estimated_completion_at": progress.estimated_completion_at,
        "last_error": progress.last_error,
        "updated_at": progress.updated_at,
    }


async def _recent(session: AsyncSession, limit: int = RECENT_SYNCS) -> list[dict[str, Any]]:
    runs = (
        await session.scalars(
            select(EmagSyncLog)
            .where(EmagSyncLog.sync_type == "products")
            .order_by(EmagSyncLog.started_at.desc())
            .limit(limit)
        )
    ).all()
    return [_sync_row(r) for r in runs]


def _current(run: EmagSyncLog, progress: Sequence[EmagSyncProgress]) -> dict[str, Any]:
    """A running sync with its live numbers; the progress rows are committed page by page by the worker."""
    accounts = [_progress_row(p) for p in progress]
    total = sum(p.total_items for p in progress)
    processed = sum(p.current_item for p in progress)
    # A finished account keeps its completion time as its ETA, so the run's ETA stays defined while the
    # other account, or the end-of-scan verification, finishes.
    etas = [p.estimated_completion_at for p in progress if p.estimated_completion_at]
    percentage = round(min(100.0, 100.0 * processed / total), 2) if total else 0.0
    return {
        "id": run.id,
        "account_type": run.account_type,
        "operation": run.operation,
        "mode": run.mode,
        "status": run.status,
        "started_at": run.started_at,
        "total_items": max(total, processed),
        "processed_items": processed,
        "percentage": percentage,
        "estimated_completion_at": max(etas) if etas else None,
        "triggered_by": run.triggered_by,
        "cancel_requested": run.cancel_requested,
        "accounts": accounts,
    }


async def request_formats(session: AsyncSession, settings: Settings) -> dict[str, dict[str, Any]]:
    """Each configured (or detected) account's request format: the one its syncs use, where that comes from, and
    the style `magflow test-connection --detect` recorded, with when and how it was found."""
    from magflow.accounts import RecordedFormat, request_format_of

    rows = (await session.scalars(select(EmagAccountState))).all()
    recorded = {r.account: r for r in map(RecordedFormat.of, rows) if r is not None}
    shown: dict[str, dict[str, Any]] = {}
    for account in ACCOUNTS:
        found = recorded.get(account)
        if found is None and not settings.has_credentials(account):
            continue
        style, source = request_format_of(settings, account, found)
        shown[account] = {
            "request_format": style,
            "source": source,
            "detected_format": found.request_format if found else None,
            "detected_at": found.detected_at if found else None,
            "detected_by": found.detection.get("detected_by") if found else None,
            "detection": found.detection if found else None,
        }
    return shown


async def sync_status(session: AsyncSession, settings: Settings | None = None) -> dict[str, Any]:
    """Whether a product sync is running or queued (in any process), its live progress, the last syncs, and (given
    the settings) each account's request format."""
    active = (
        await session.scalars(
            select(EmagSyncLog)
            .where(EmagSyncLog.sync_type == "products", EmagSyncLog.status.in_(ACTIVE_STATUSES))
            .order_by(EmagSyncLog.started_at.desc())
        )
    ).all()
    # A running sync is more interesting than one still waiting for a worker.
    ordered = sorted(active, key=lambda r: (r.status != "running", -r.started_at.timestamp()))
    current: list[dict[str, Any]] = []
    if ordered:
        progress = (
            await session.scalars(
                select(EmagSyncProgress)
                .where(EmagSyncProgress.sync_id.in_([r.id for r in ordered]))
                .order_by(EmagSyncProgress.account_type)
            )
        ).all()
        for run in ordered:
            current.append(_current(run, [p for p in progress if p.sync_id == run.id]))
    return {
        "is_running": bool(current),
        "current_sync": current[0] if current else None,
        "active_syncs": current,
        "recent_syncs": await _recent(session),
        "checked_at": datetime.now(UTC),
        "request_formats": await request_formats(session, settings) if settings is not None else {},
    }


async def statistics(session: AsyncSession) -> dict[str, Any]:
    """Product counts per account (total, active, synced, missing, with conflicts) and the last syncs."""
    rows = (
        await session.execute(
            select(
                EmagProduct.account_type,
                func.count(),
                func.count().filter(EmagProduct.is_active.is_(True)),
                func.count().filter(EmagProduct.sync_status == "synced"),
                func.count().filter(EmagProduct.is_missing.is_(True)),
                func.count().filter(EmagProduct.sync_status == "conflict"),
            ).group_by(EmagProduct.account_type)
        )
    ).all()
    by_account: dict[str, dict[str, int]] = {
        account: {"total": 0, "active": 0, "synced": 0, "missing": 0, "conflict": 0} for account in ("main", "fbe")
    }
    for account, total, active, synced, missing, conflict in rows:
        by_account[account] = {
            "total": total,
            "active": active,
            "synced": synced,
            "missing": missing,
            "conflict": conflict,
        }
    open_conflicts = await session.scalar(
        select(func.count()).select_from(EmagProductConflict).where(EmagProductConflict.status == "open")
    )
    last_success = (
        await session.execute(
            select(EmagSyncLog.account_type, func.max(EmagSyncLog.completed_at))
            .where(EmagSyncLog.sync_type == "products", EmagSyncLog.status == "completed")
            .group_by(EmagSyncLog.account_type)
        )
    ).all()
    return {
        "products_by_account": {a: c["total"] for a, c in by_account.items()},
        "total_products": sum(c["total"] for c in by_account.values()),
        "by_account": by_account,
        "open_conflicts": open_conflicts or 0,
        "last_completed_sync_at": {a: at for a, at in last_success},
        "recent_syncs": await _recent(session),
    }


async def history(
    session: AsyncSession, limit: int = 20, account_type: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """Product syncs, newest first; `account_type` main/fbe also matches runs over both accounts."""
    query = select(EmagSyncLog).where(EmagSyncLog.sync_type == "products")
    if account_type is not None:
        accounts = [account_type] if account_type == "both" else [account_type, "both"]
        query = query.where(EmagSyncLog.account_type.in_(accounts))
    if status is not None:
        query = query.where(EmagSyncLog.status == status)
    runs = (await session.scalars(query.order_by(EmagSyncLog.started_at.desc()).limit(limit))).all()
    return [_sync_row(r) for r in runs]


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _product_filter(
    query: Select[Any], account_type: str | None, search: str | None, sync_status: str | None = None
) -> Select[Any]:
    if account_type is not None:
        query = query.where(EmagProduct.account_type == account_type)
    if sync_status is not None:
        query = query.where(EmagProduct.sync_status == sync_status)
    if search is not None and search.strip():
        term = _escape_like(fold(search.strip()))
        query = query.where(EmagProduct.search_text.ilike(f"%{term}%", escape="\\"))
    return query


def product_summary(product: EmagProduct, last_read: Any = None) -> dict[str, Any]:
    summary = {name: getattr(product, name) for name in PRODUCT_SUMMARY_FIELDS}
    summary["last_synced_at"] = _latest(product.last_synced_at, last_read)
    return summary


def _latest(*moments: Any) -> Any:
    known = [m for m in moments if m is not None]
    return max(known) if known else None


async def last_reads(session: AsyncSession, products: Sequence[EmagProduct]) -> dict[tuple[str, int], Any]:
    """When a sync last read each product from eMAG, changed or not."""
    if not products:
        return {}
    rows = await session.execute(
        LAST_READ_SQL,
        {"accounts": [p.account_type for p in products], "ids": [p.emag_id for p in products]},
    )
    return {(r[0], int(r[1])): r[2] for r in rows.all()}


async def list_products(
    session: AsyncSession,
    skip: int = 0,
    limit: int = 50,
    account_type: str | None = None,
    search: str | None = None,
    sync_status: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of products (stable order: account, SKU, offer id) and the total matching the filters.

    `search` matches SKU or name, case- and diacritic-insensitively ("scoala" finds "Școală"); `sync_status`
    picks synced, conflict, missing or failed (quarantined: `sync_issue` says why) products.
    """
    count = select(func.count()).select_from(EmagProduct)
    total = await session.scalar(_product_filter(count, account_type, search, sync_status))
    query = _product_filter(select(EmagProduct), account_type, search, sync_status)
    query = query.order_by(EmagProduct.account_type, EmagProduct.sku, EmagProduct.emag_id).offset(skip).limit(limit)
    products = (await session.scalars(query)).all()
    reads = await last_reads(session, products)
    return [product_summary(p, reads.get((p.account_type, p.emag_id))) for p in products], total or 0


def product_full(product: EmagProduct) -> dict[str, Any]:
    return {
        column.key: getattr(product, column.key)
        for column in EmagProduct.__mapper__.column_attrs
        if column.key not in PRODUCT_HIDDEN_FIELDS
    }


def change_row(change: EmagProductChange) -> dict[str, Any]:
    return {
        "id": change.id,
        "change_type": change.change_type,
        "field": change.field,
        "old_value": change.old_value,
        "new_value": change.new_value,
        "source": change.source,
        "sync_id": change.sync_id,
        "actor": change.actor,
        "changed_at": change.changed_at,
    }


def conflict_row(conflict: EmagProductConflict) -> dict[str, Any]:
    return {
        "id": conflict.id,
        "product_id": conflict.product_id,
        "account_type": conflict.account_type,
        "emag_id": conflict.emag_id,
        "field": conflict.field,
        "base_value": conflict.base_value,
        "local_value": conflict.local_value,
        "emag_value": conflict.emag_value,
        "status": conflict.status,
        "resolution": conflict.resolution,
        "resolved_value": conflict.resolved_value,
        "sync_id": conflict.sync_id,
        "detected_at": conflict.detected_at,
        "resolved_at": conflict.resolved_at,
        "resolved_by": conflict.resolved_by,
    }


async def product_detail(session: AsyncSession, product_id: uuid.UUID) -> dict[str, Any] | None:
    """One product with every stored field, its change history (newest first) and its open conflicts."""
    product = await session.get(EmagProduct, product_id, populate_existing=True)
    if product is None:
        return None
    changes = (
        await session.scalars(
            select(EmagProductChange)
            .where(EmagProductChange.product_id == product_id)
            .order_by(EmagProductChange.changed_at.desc(), EmagProductChange.id.desc())
            .limit(PRODUCT_CHANGES_SHOWN)
        )
    ).all()
    conflicts = (
        await session.scalars(
            select(EmagProductConflict)
            .where(EmagProductConflict.product_id == product_id, EmagProductConflict.status == "open")
            .order_by(EmagProductConflict.detected_at.desc())
        )
    ).all()
    read_at = (await last_reads(session, [product])).get((product.account_type, product.emag_id))
    return {
        **product_full(product),
        "last_seen_at": _latest(product.last_seen_at, read_at),
        "last_synced_at": _latest(product.last_synced_at, read_at),
        "changes": [change_row(c) for c in changes],
        "open_conflicts": [conflict_row(c) for c in conflicts],
    }


async def list_conflicts(
    session: AsyncSession, status: str | None = "open", limit: int = 50, account_type: str | None = None
) -> list[dict[str, Any]]:
    """The manual strategy's queue: conflicts (open by default), newest first."""
    query = select(EmagProductConflict)
    if status is not None:
        query = query.where(EmagProductConflict.status == status)
    if account_type is not None:
        query = query.where(EmagProductConflict.account_type == account_type)
    query = query.order_by(EmagProductConflict.detected_at.desc(), EmagProductConflict.id.desc()).limit(limit)
    return [conflict_row(c) for c in (await session.scalars(query)).all()]


async def sync_run(session: AsyncSession, sync_id: uuid.UUID) -> dict[str, Any] | None:
    """One sync with its per-account progress (pages, items, ETA), or None when it does not exist."""
    run = await session.get(EmagSyncLog, sync_id, populate_existing=True)
    if run is None:
        return None
    progress = (
        await session.scalars(
            select(EmagSyncProgress).where(EmagSyncProgress.sync_id == sync_id).order_by(EmagSyncProgress.account_type)
        )
    ).all()
    return {**_sync_row(run), "accounts": [_progress_row(p) for p in progress]}
