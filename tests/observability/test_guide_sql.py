"""The user's guide's SQL monitoring queries run as written after a sync and return what they promise."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from .conftest import SyncRunner

ROOT = Path(__file__).resolve().parents[2]
GUIDE = Path(os.environ.get("MAGFLOW_GUIDE", ROOT.parent / "shared" / "guide" / "emag-product-sync-guide.md"))


def monitoring_queries(markdown: str) -> dict[str, str]:
    """The commented queries of the first ```sql block after the "Database Queries" heading."""
    block = re.search(r"### Database Queries\s+```sql\n(.*?)```", markdown, re.DOTALL)
    if block is None:
        block = re.search(r"## The sync tables.*?```sql\n(.*?)```", markdown, re.DOTALL)
    assert block is not None
    parts = re.split(r"^-- (.+)$", block.group(1), flags=re.MULTILINE)[1:]
    return {title.strip(): sql.strip() for title, sql in zip(parts[::2], parts[1::2], strict=True)}


QUERIES = monitoring_queries((ROOT / "README.md").read_text())


def test_docs_carry_the_guides_queries_verbatim() -> None:
    assert set(QUERIES) == {"Recent sync operations", "Product counts by account", "Failed syncs"}
    if GUIDE.is_file():
        assert monitoring_queries(GUIDE.read_text()) == QUERIES


async def rows(engine: AsyncEngine, title: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(text(QUERIES[title]))).all()]


async def test_the_queries_answer_after_syncs(sync_runner: SyncRunner, clean_engine: AsyncEngine) -> None:
    full = await sync_runner(account="both", mode="full")
    failed = await sync_runner(account="fbe", mode="incremental", passwords={"fbe": "wrong"})
    assert (full["status"], failed["status"]) == ("completed", "failed")

    recent = await rows(clean_engine, "Recent sync operations")
    assert [(r["account_type"], r["operation"], r["status"]) for r in recent] == [
        ("fbe", "incremental_sync", "failed"),
        ("both", "full_sync", "completed"),
    ]
    completed = recent[1]
    assert completed["sync_type"] == "products" and completed["duration_seconds"] > 0
    assert (completed["total_items"], completed["created_items"], completed["failed_items"]) == (600, 600, 0)
    assert completed["updated_items"] == 0

    counts = {r["account_type"]: r for r in await rows(clean_engine, "Product counts by account")}
    assert set(counts) == {"main", "fbe"}
    for row in counts.values():
        assert row["total"] == 300 and row["synced"] == 300 and 0 < row["active"] <= 300

    failures = await rows(clean_engine, "Failed syncs")
    assert [(r["id"].hex, r["account_type"]) for r in failures] == [(failed["sync_id"].replace("-", ""), "fbe")]
    assert failures[0]["error_message"]
