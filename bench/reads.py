"""Scenario 6: latency of the REST API's reads on a synced catalogue, p50 and p95.

Run: .venv/bin/python bench/reads.py [--products 100000] [--requests 200]

`magflow serve` runs in its own process on the benchmark database; requests are sent one at a time over a
kept-alive connection and timed by the client (so the figures include HTTP and JSON encoding). Search
terms: a broad word (one product kind in 16), a narrow one (a SKU fragment that matches a few products).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time
from typing import Any

import httpx

import _common as c

API = "/api/v1/emag/products"


async def make_token(url: str) -> str:
    from magflow.api.auth import create_token
    from magflow.db.engine import create_engine, session_factory

    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            token = await create_token(session, f"bench-{int(time.time())}", "read")
            await session.commit()
            return token
    finally:
        await engine.dispose()


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[94]


def measure(url: str, requests: int = 200) -> dict[str, Any]:
    token = asyncio.run(make_token(url))
    port = c.free_port()
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING", "EMAG_ENABLE_SCHEDULED_SYNC": "false"}
    args = [c.PY, "-m", "magflow", "serve", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(args, cwd=c.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cases = {
        "GET /products?search=tigaie (broad)": (f"{API}/products", {"search": "tigaie", "limit": 50}),
        "GET /products?search=0001234 (SKU fragment)": (f"{API}/products", {"search": "0001234", "limit": 50}),
        "GET /statistics": (f"{API}/statistics", {}),
    }
    results: dict[str, Any] = {}
    try:
        c.wait_for_port(port, server, timeout=60)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as client:
            for name, (path, params) in cases.items():
                for _ in range(5):  # warm the connection, the plan cache and the buffer cache
                    client.get(path, params=params).raise_for_status()
                samples = []
                for _ in range(requests):
                    started = time.perf_counter()
                    response = client.get(path, params=params)
                    samples.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
                body = response.json()
                p50, p95 = percentiles(samples)
                total = body.get("total") if isinstance(body, dict) else None
                results[name] = {"p50_ms": p50, "p95_ms": p95, "requests": requests, "total": total}
    finally:
        server.terminate()
        server.wait(timeout=10)
    return results


def rows(data: dict[str, Any], products: int) -> list[list[Any]]:
    return [
        [name, f"{products:,}", r["requests"], f"{r['p50_ms']:.1f} ms", f"{r['p95_ms']:.1f} ms"]
        for name, r in data.items()
    ]


HEADERS = ["request", "products stored", "requests", "p50", "p95"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000, help="catalogue size (half MAIN, half FBE)")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    url = asyncio.run(c.recreate_database())
    with c.sandbox(args.products // 2, rate_limit=False) as box:
        c.run_sync(url, box.base_url, rate_limited=False)
    data = measure(url, args.requests)
    c.save("reads", {"products": args.products, "cases": data})
    c.print_table("6. Reads (REST API, one client, sequential)", rows(data, args.products), HEADERS)


if __name__ == "__main__":
    main()
