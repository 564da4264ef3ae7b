"""Scenario 3: a no-change incremental pass over a catalogue that a full sync has just stored.

Run: .venv/bin/python bench/incremental_nochange.py [--products 100000]

"Rows written" comes from PostgreSQL's own counters (pg_stat_user_tables: inserted + updated + deleted rows
of emag_products_v2), read after the sync process has exited so its backends have flushed their
statistics; a comparison of every row's xmin before and after cross-checks it. The incremental pass reads
every page (include_inactive) so it covers the same catalogue as the full sync. Goal: 0 rows written.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import asyncpg

import _common as c


async def row_versions(url: str) -> dict[Any, str]:
    conn = await asyncpg.connect(url)
    try:
        return {r[0]: r[1] for r in await conn.fetch("SELECT id, xmin::text FROM emag_products_v2")}
    finally:
        await conn.close()


def measure(box: c.Sandbox, url: str) -> dict[str, Any]:
    """An incremental pass over the catalogue already stored at `url` (by a full sync from `box`)."""
    time.sleep(1.0)
    before, versions = asyncio.run(c.table_writes(url)), asyncio.run(row_versions(url))
    report = c.run_sync(url, box.base_url, mode="incremental", rate_limited=False)
    time.sleep(1.0)  # the sync's backends have closed; give the statistics collector its flush
    after, versions_after = asyncio.run(c.table_writes(url)), asyncio.run(row_versions(url))
    written = {k: after[k] - before[k] for k in ("n_tup_ins", "n_tup_upd", "n_tup_del")}
    changed_xmin = sum(1 for k, v in versions_after.items() if versions.get(k) != v) + len(
        set(versions) - set(versions_after)
    )
    result = report["result"]
    return {
        "products": result["total_processed"],
        "unchanged": result["unchanged"],
        "rows_written": sum(written.values()),
        "written": written,
        "xmin_changed": changed_xmin,
        "wall_s": report["wall_s"],
        "products_per_s": result["total_processed"] / report["wall_s"],
    }


def rows(data: dict[str, Any]) -> list[list[Any]]:
    w = data["written"]
    return [
        [
            f"{data['products']:,}",
            f"{data['unchanged']:,}",
            f"{data['rows_written']} (ins {w['n_tup_ins']}, upd {w['n_tup_upd']}, del {w['n_tup_del']})",
            data["xmin_changed"],
            f"{data['wall_s']:.1f} s",
            f"{data['products_per_s']:,.0f}",
        ]
    ]


HEADERS = ["products read", "unchanged", "rows written (pg_stat)", "rows with new xmin", "time", "products/s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000, help="catalogue size (half MAIN, half FBE)")
    args = parser.parse_args()
    url = asyncio.run(c.recreate_database())
    with c.sandbox(args.products // 2, rate_limit=False) as box:
        c.run_sync(url, box.base_url, rate_limited=False)
        data = measure(box, url)
    c.save("incremental_nochange", data)
    c.print_table("3. No-change incremental pass", rows(data), HEADERS)


if __name__ == "__main__":
    main()
