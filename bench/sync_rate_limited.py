"""Scenario 1: a full sync of MAIN and FBE at once against eMAG's real limit (3 requests/s per account).

Run: .venv/bin/python bench/sync_rate_limited.py [--products 10000]

The floor is the time the rate limit alone imposes: ceil(products / 100) pages ÷ 3 requests/s per account
(the accounts have separate budgets and run side by side). Goal: wall time within 5% of it, zero 429s.
Budget utilisation = requests the account sent ÷ (wall time × 3/s).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import _common as c

LIMIT_PER_SECOND = 3.0


def measure(products: int) -> dict[str, Any]:
    url = asyncio.run(c.recreate_database())
    with c.sandbox(products, rate_limit=True) as box:
        report = c.run_sync(url, box.base_url, rate_limited=True)
        counters = {a: box.counters(a) for a in c.ACCOUNTS}
    pages = -(-products // 100)
    floor = pages / LIMIT_PER_SECOND
    wall = report["wall_s"]
    accounts = {}
    for account in c.ACCOUNTS:
        requests = report["client"][account]["requests"]
        accounts[account] = {
            "pages": pages,
            "requests": requests,
            "http_429_sandbox": counters[account]["count_429"],
            "http_429_client": report["client"][account]["http_429"],
            "max_requests_in_any_second": counters[account]["max_requests_in_any_second"],
            "utilisation": requests / (wall * LIMIT_PER_SECOND),
            "products": report["result"]["accounts"][account]["total_processed"],
        }
    return {"products_per_account": products, "floor_s": floor, "wall_s": wall, "accounts": accounts}


def rows(data: dict[str, Any]) -> list[list[Any]]:
    wall, floor = data["wall_s"], data["floor_s"]
    out = []
    for account, a in data["accounts"].items():
        out.append(
            [
                account.upper(),
                f"{a['products']:,}",
                a["pages"],
                a["requests"],
                f"{floor:.1f} s",
                f"{wall:.1f} s",
                f"{100 * (wall / floor - 1):+.1f}%",
                a["http_429_sandbox"],
                a["max_requests_in_any_second"],
                f"{100 * a['utilisation']:.1f}%",
                f"{a['products'] / wall:.0f}",
            ]
        )
    return out


HEADERS = [
    "account", "products", "pages", "requests", "floor", "wall (both at once)", "vs floor", "429s",
    "max req in any 1 s", "budget used", "products/s",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000, help="products per account")
    args = parser.parse_args()
    data = measure(args.products)
    c.save("sync_rate_limited", data)
    c.print_table("1. Rate-limited full sync (3 req/s per account, MAIN and FBE at once)", rows(data), HEADERS)


if __name__ == "__main__":
    main()
