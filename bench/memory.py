"""Scenario 4: peak RSS of a full sync at two catalogue sizes. Goal: flat, because the sync streams pages.

Run: .venv/bin/python bench/memory.py [--sizes 10000 100000]

Each sync runs in a fresh Python process; its peak RSS is that process's ru_maxrss, and "baseline" is its
RSS after imports and engine creation, before the first request. Sizes are whole catalogues (half MAIN,
half FBE), synced into an empty database with the sandbox's rate limit off.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import _common as c


def measure_one(box: c.Sandbox, url: str) -> dict[str, Any]:
    report = c.run_sync(url, box.base_url, rate_limited=False)
    return from_report(report)


def from_report(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "products": report["result"]["total_processed"],
        "baseline_rss_kib": report["baseline_rss_kib"],
        "peak_rss_kib": report["peak_rss_kib"],
        "wall_s": report["wall_s"],
    }


def rows(runs: list[dict[str, Any]]) -> list[list[Any]]:
    first = runs[0]["peak_rss_kib"]
    return [
        [
            f"{r['products']:,}",
            c.mib(r["baseline_rss_kib"]),
            c.mib(r["peak_rss_kib"]),
            c.mib(r["peak_rss_kib"] - r["baseline_rss_kib"]),
            f"{r['peak_rss_kib'] / first:.2f}×",
        ]
        for r in runs
    ]


HEADERS = ["products", "RSS before the sync", "peak RSS", "growth during the sync", "peak vs smallest"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="catalogue sizes")
    args = parser.parse_args()
    runs = []
    for size in args.sizes:
        url = asyncio.run(c.recreate_database())
        with c.sandbox(size // 2, rate_limit=False) as box:
            runs.append(measure_one(box, url))
    c.save("memory", {"runs": runs})
    c.print_table("4. Memory of a full sync", rows(runs), HEADERS)


if __name__ == "__main__":
    main()
