"""The schema is built by the migrations alone, and they run down and up again on an empty database."""

from __future__ import annotations

import uuid

import asyncpg
from sqlalchemy.engine import make_url

from magflow.db.migrate import downgrade, upgrade
from magflow.testing.database import ADMIN_URL, _admin

GUIDE_TABLES = {"emag_products_v2", "emag_sync_logs", "emag_sync_progress"}


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows} - {"alembic_version"}


async def test_upgrade_downgrade_upgrade_on_an_empty_database() -> None:
    name = f"magflow_mig_{uuid.uuid4().hex[:8]}"
    await _admin(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        await upgrade(url)
        first = await _tables(url)
        assert GUIDE_TABLES <= first
        await downgrade(url, "base")
        assert await _tables(url) == set()
        await upgrade(url)
        assert await _tables(url) == first
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_guide_sql_queries_run_against_the_migrated_schema(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.fetch(
            """SELECT sync_type, account_type, operation, status, started_at, duration_seconds,
                      total_items, created_items, updated_items, failed_items
               FROM emag_sync_logs WHERE sync_type = 'products' ORDER BY started_at DESC LIMIT 10"""
        )
        await conn.fetch(
            """SELECT account_type, COUNT(*) as total,
                      COUNT(*) FILTER (WHERE is_active = true) as active,
                      COUNT(*) FILTER (WHERE sync_status = 'synced') as synced
               FROM emag_products_v2 GROUP BY account_type"""
        )
        await conn.fetch(
            "SELECT * FROM emag_sync_logs WHERE status = 'failed' AND sync_type = 'products' "
            "ORDER BY started_at DESC"
        )
    finally:
        await conn.close()
