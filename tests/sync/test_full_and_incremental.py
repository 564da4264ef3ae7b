"""Full and incremental syncs against the sandbox over HTTP, compared with the sandbox's own truth."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.db.engine import session_factory
from magflow.models import EmagProductChange, EmagSyncLog, EmagSyncProgress
from magflow.testing.sync import row_versions, stored


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


async def test_full_sync_equals_the_sandbox_truth_field_by_field(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    result = await run_sync(mode="full")
    assert result["status"] == "completed", result
    for account in ("main", "fbe"):
        truth = sandbox.state.truth(account)
        rows = await stored(clean_engine, account)
        assert set(rows) == {p["id"] for p in truth}
        for product in truth:
            row = rows[product["id"]]
            assert row.raw_emag_data == product
            assert row.sku == product.get("part_number")
            assert row.name == product.get("name")
            assert row.sale_price == _money(product.get("sale_price"))
            assert row.status == product.get("status")
            assert row.is_active == (product.get("status") == 1)
            assert row.general_stock == product.get("general_stock")
            assert row.stock == product.get("stock")
            assert row.sync_status == "synced" and not row.is_missing
        assert result["accounts"][account]["created"] == len(truth)
    assert result["total_processed"] == result["created"]
    assert result["errors"] == []


async def test_incremental_after_mutations_updates_exactly_those_and_then_writes_nothing(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine, database_url: str
) -> None:
    await run_sync(mode="full")
    total = len(sandbox.state.truth("main"))
    changed = sandbox.state.mutate("main", 7, fields=("sale_price", "name"))
    assert len(set(changed)) == 7

    result = await run_sync(account="main", mode="incremental", include_inactive=True)
    assert result["status"] == "completed"
    assert result["updated"] == 7
    assert result["unchanged"] == total - 7
    assert result["created"] == 0
    rows = await stored(clean_engine, "main")
    truth = {p["id"]: p for p in sandbox.state.truth("main")}
    for emag_id in changed:
        assert rows[emag_id].raw_emag_data == truth[emag_id]
        assert rows[emag_id].name == truth[emag_id]["name"]
    async with session_factory(clean_engine)() as session:
        audited = (
            await session.scalars(
                select(EmagProductChange.emag_id).where(
                    EmagProductChange.change_type == "updated", EmagProductChange.field == "sale_price"
                )
            )
        ).all()
    assert set(audited) == set(changed)

    before_versions = await row_versions(clean_engine)
    before_stats = await _table_writes(clean_engine, database_url)
    again = await run_sync(account="main", mode="incremental", include_inactive=True)
    assert again["updated"] == 0 and again["created"] == 0 and again["unchanged"] == total
    assert await row_versions(clean_engine) == before_versions
    assert await _table_writes(clean_engine, database_url) == before_stats


async def _table_writes(engine: AsyncEngine, database_url: str) -> int:
    """Rows inserted, updated or deleted in emag_products_v2, from PostgreSQL's statistics."""
    await engine.dispose()  # closing the backends flushes their pending statistics
    await asyncio.sleep(1.2)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        value = await conn.fetchval(
            "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relname = 'emag_products_v2'"
        )
    finally:
        await conn.close()
    return int(value)


async def test_incremental_reads_max_pages_of_active_offers_only(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    result = await run_sync(account="main", mode="incremental", max_pages=2, items_per_page=50)
    assert result["status"] == "completed"
    assert result["total_processed"] == 100
    rows = await stored(clean_engine, "main")
    assert len(rows) == 100
    assert {r.status for r in rows.values()} == {1}


async def test_progress_and_log_are_recorded(sandbox: Any, run_sync: Any, clean_engine: AsyncEngine) -> None:
    result = await run_sync(account="fbe", mode="full", items_per_page=40)
    async with session_factory(clean_engine)() as session:
        log = await session.get(EmagSyncLog, __import__("uuid").UUID(result["sync_id"]))
        assert log is not None
        assert log.status == "completed" and log.operation == "full_sync" and log.account_type == "fbe"
        assert log.processed_items == len(sandbox.state.truth("fbe")) == log.created_items
        assert log.pages_processed >= 2 and log.api_requests >= log.pages_processed
        assert log.duration_seconds is not None and log.completed_at is not None
        progress = (await session.scalars(select(EmagSyncProgress))).one()
        assert progress.status == "completed" and progress.percentage == 100.0
        assert progress.current_item == log.processed_items
        count = await session.scalar(select(func.count()).select_from(EmagSyncLog))
        assert count == 1


async def test_the_same_sku_on_both_accounts_is_two_rows_matched_as_one_product(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    from magflow.sync.matching import cross_account_matches

    await run_sync(mode="full")
    main_skus = {p["part_number"]: p["id"] for p in sandbox.state.truth("main")}
    fbe_skus = {p["part_number"]: p["id"] for p in sandbox.state.truth("fbe")}
    shared = set(main_skus) & set(fbe_skus)
    assert shared, "the sandbox shares some SKUs between accounts"
    async with session_factory(clean_engine)() as session:
        matches = await cross_account_matches(session)
    pairs = {(m.main_emag_id, m.fbe_emag_id) for m in matches}
    assert {(main_skus[s], fbe_skus[s]) for s in shared} <= pairs
    assert all(m.main_emag_id != m.fbe_emag_id for m in matches)
