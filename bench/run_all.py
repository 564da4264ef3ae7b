"""Every benchmark in one run on this machine, printed as one set of tables (and bench/results/latest.md).

Run: .venv/bin/python bench/run_all.py [--products 100000] [--rate-limited-products 10000]

Order: 1 rate-limited sync; 4 memory at the small size; then one unthrottled sandbox of `--products`
(half MAIN, half FBE) serves 2 (full sync + COPY reference), 4 (the same sync's peak RSS), 3 (a no-change
incremental pass over what it stored), 6 (reads on it) and 5 (dlt loading the same catalogue).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time

import _common as c
import incremental_nochange
import memory
import peer_dlt
import reads
import sync_rate_limited
import sync_throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000, help="catalogue for 2-6 (half MAIN, half FBE)")
    parser.add_argument("--small", type=int, default=10_000, help="the small catalogue of the memory scenario")
    parser.add_argument("--rate-limited-products", type=int, default=10_000, help="per account, scenario 1")
    args = parser.parse_args()
    started = time.perf_counter()
    info = c.machine()
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=c.ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    tables = [f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory']} RAM, PostgreSQL "
              f"{info['postgresql']}, Python {info['python']}; magflow {commit}"]  # fmt: skip
    print(tables[0], flush=True)

    limited = sync_rate_limited.measure(args.rate_limited_products)
    tables.append(c.print_table("1. Rate-limited full sync (3 req/s per account, MAIN and FBE at once)",
                                sync_rate_limited.rows(limited), sync_rate_limited.HEADERS))  # fmt: skip

    url = asyncio.run(c.recreate_database())
    with c.sandbox(args.small // 2, rate_limit=False) as box:
        small = memory.measure_one(box, url)

    url = asyncio.run(c.recreate_database())
    with c.sandbox(args.products // 2, rate_limit=False) as box:
        throughput = sync_throughput.measure(box, url)
        tables.append(c.print_table("2. Unthrottled throughput (no rate limit, MAIN and FBE at once)",
                                    sync_throughput.rows(throughput), sync_throughput.HEADERS))  # fmt: skip
        incremental = incremental_nochange.measure(box, url)
        tables.append(c.print_table("3. No-change incremental pass", incremental_nochange.rows(incremental),
                                    incremental_nochange.HEADERS))  # fmt: skip
        runs = [small, memory.from_report(throughput["sync"])]
        tables.append(c.print_table("4. Memory of a full sync", memory.rows(runs), memory.HEADERS))
        read = reads.measure(url)
        peer = peer_dlt.measure(box, url, throughput["sync"])
        tables.append(c.print_table("5. Peer: dlt on the same catalogue (no rate limit)", peer_dlt.rows(peer),
                                    peer_dlt.HEADERS))  # fmt: skip
    tables.append(c.print_table("6. Reads (REST API, one client, sequential)", reads.rows(read, args.products),
                                reads.HEADERS))  # fmt: skip
    c.save("latest", {"commit": commit, "rate_limited": limited, "throughput": throughput,
                      "incremental": incremental, "memory": runs, "peer": peer, "reads": read})  # fmt: skip
    (c.RESULTS / "latest.md").write_text("\n\n".join(tables) + "\n", encoding="utf-8")
    print(f"\nall scenarios in {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
