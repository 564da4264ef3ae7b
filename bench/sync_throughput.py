"""Scenario 2: unthrottled throughput of a full sync, against COPYing the same payloads into PostgreSQL.

Run: .venv/bin/python bench/sync_throughput.py [--products 100000]

The sandbox runs with no rate limit, so the figure is magflow's own speed (HTTP, parsing, hashing, the
set-based upsert, audit and checkpoints). The physical reference, measured in the same run: the very same
offer payloads, fetched beforehand, COPYed (binary, one transaction) into a table of (account, offer id,
payload jsonb) with its primary key, in the same PostgreSQL. Goal: the sync reaches at least half of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import asyncpg
import httpx
import orjson

import _common as c

REFERENCE_DDL = """
DROP TABLE IF EXISTS bench_copy_reference;
CREATE TABLE bench_copy_reference (account_type text, emag_id bigint, raw jsonb);
"""


async def fetch_payloads(box: c.Sandbox) -> list[tuple[str, int, str]]:
    pages = -(-box.products // 100)
    records: list[tuple[str, int, str]] = []
    for account, auth in c.ACCOUNTS.items():
        async with httpx.AsyncClient(base_url=box.base_url, auth=auth, timeout=120) as client:
            for page in range(1, pages + 1):
                body = {"currentPage": page, "itemsPerPage": 100}
                response = await client.post("/product_offer/read", json=body)
                for offer in orjson.loads(response.content)["results"]:
                    records.append((account, int(offer["id"]), orjson.dumps(offer).decode()))
    return records


async def copy_reference(url: str, records: list[tuple[str, int, str]]) -> dict[str, float]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(REFERENCE_DDL)
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(
                "bench_copy_reference", records=records, columns=["account_type", "emag_id", "raw"]
            )
            await conn.execute("ALTER TABLE bench_copy_reference ADD PRIMARY KEY (account_type, emag_id)")
        seconds = time.perf_counter() - started
        size = await conn.fetchval("SELECT pg_total_relation_size('bench_copy_reference')")
        await conn.execute("DROP TABLE bench_copy_reference")
    finally:
        await conn.close()
    return {"seconds": seconds, "rows": len(records), "bytes_in": sum(len(r[2]) for r in records), "size": size}


def measure(box: c.Sandbox, url: str) -> dict[str, Any]:
    """A full sync into the (fresh) database at `url`, then the COPY reference; both in this run."""
    report = c.run_sync(url, box.base_url, rate_limited=False, extra=["--trace", str(c.RESULTS / "trace.json")])
    events = json.loads((c.RESULTS / "trace.json").read_text())
    last_answer = max(e["answered"] for e in events) - report["mono_start"]
    records = asyncio.run(fetch_payloads(box))
    reference = asyncio.run(copy_reference(url, records))
    products = report["result"]["total_processed"]
    return {
        "products": products,
        "sync": report,
        "sync_products_per_s": products / report["wall_s"],
        "scan_phase_s": last_answer,
        "after_scan_s": report["wall_s"] - last_answer,
        "copy": reference,
        "copy_products_per_s": reference["rows"] / reference["seconds"],
    }


def rows(data: dict[str, Any]) -> list[list[Any]]:
    sync, copy = data["sync_products_per_s"], data["copy_products_per_s"]
    mb = data["copy"]["bytes_in"] / 1e6
    return [
        [
            "magflow full sync (end to end)",
            f"{data['products']:,}",
            f"{data['sync']['wall_s']:.1f} s",
            f"{sync:,.0f}",
            f"{sync / copy:.2f}",
            f"scan {data['scan_phase_s']:.1f} s + after the last page {data['after_scan_s']:.1f} s",
        ],
        [
            "COPY of the same payloads",
            f"{data['copy']['rows']:,}",
            f"{data['copy']['seconds']:.1f} s",
            f"{copy:,.0f}",
            "1.00",
            f"{mb:.0f} MB of JSON, binary COPY + primary key, one transaction",
        ],
    ]


HEADERS = ["what", "products", "time", "products/s", "vs COPY", "note"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000, help="catalogue size (half MAIN, half FBE)")
    args = parser.parse_args()
    url = asyncio.run(c.recreate_database())
    with c.sandbox(args.products // 2, rate_limit=False) as box:
        data = measure(box, url)
    c.save("sync_throughput", data)
    c.print_table("2. Unthrottled throughput (no rate limit, MAIN and FBE at once)", rows(data), HEADERS)


if __name__ == "__main__":
    main()
