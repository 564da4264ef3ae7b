"""Scenario 5: a peer. dlt's REST API source loads the same sandbox catalogue into the same PostgreSQL
(merge on (account, offer id), its own schema `dlt_emag`), against magflow's full sync of it.

Run: .venv/bin/python bench/peer_dlt.py [--products 100000]

Both load an empty destination from a sandbox with no rate limit (so the pipelines are compared, not eMAG's
limit), both accounts at once, each in its own process. Goal: magflow / dlt wall time 0.5 or less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
from typing import Any

import _common as c


def run_dlt(box: c.Sandbox, url: str) -> dict[str, Any]:
    asyncio.run(c.scalar(url, "DROP SCHEMA IF EXISTS dlt_emag CASCADE"))
    with tempfile.TemporaryDirectory() as pipelines_dir:
        args = [c.PY, str(c.BENCH / "_dlt_load.py"), "--base-url", box.base_url, "--db-url", url]
        done = subprocess.run(
            [*args, "--pipelines-dir", pipelines_dir], cwd=c.ROOT, capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"dlt failed: {done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["rows"] = asyncio.run(c.scalar(url, "SELECT count(*) FROM dlt_emag.emag_products"))
    return report


def measure(box: c.Sandbox, url: str, magflow: dict[str, Any]) -> dict[str, Any]:
    """dlt against `magflow`, the report of magflow's full sync of the same catalogue (c.run_sync)."""
    peer = run_dlt(box, url)
    return {
        "products": magflow["result"]["total_processed"],
        "magflow_s": magflow["wall_s"],
        "dlt_s": peer["wall_s"],
        "dlt_rows": peer["rows"],
        "ratio": magflow["wall_s"] / peer["wall_s"],
    }


def rows(data: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            f"{data['products']:,}",
            f"{data['magflow_s']:.1f} s",
            f"{data['dlt_s']:.1f} s ({data['dlt_rows']:,} rows)",
            f"{data['ratio']:.2f}",
        ]
    ]


HEADERS = ["products", "magflow full sync", "dlt rest_api, merge", "magflow / dlt"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000, help="catalogue size (half MAIN, half FBE)")
    args = parser.parse_args()
    url = asyncio.run(c.recreate_database())
    with c.sandbox(args.products // 2, rate_limit=False) as box:
        magflow = c.run_sync(url, box.base_url, rate_limited=False)
        data = measure(box, url, magflow)
    c.save("peer_dlt", data)
    c.print_table("5. Peer: dlt on the same catalogue (no rate limit)", rows(data), HEADERS)


if __name__ == "__main__":
    main()
