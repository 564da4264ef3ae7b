"""How many product_offer/read pages of 100 the sandbox serves per second with rate limiting off.

Run: .venv/bin/python bench/bench_sandbox.py [--products 10000] [--clients 6] [--seconds 10]
The server runs in this process's background thread, the clients in separate processes so that the
figure is the server's, not the client's (this machine has 2 cores; both sides share them).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import httpx

from magflow.sandbox import SANDBOX_ACCOUNTS, SandboxServer, SandboxState


def _client(base_url: str, pages: int, deadline: float, offset: int, out: multiprocessing.Queue[int]) -> None:
    served = 0
    with httpx.Client(base_url=base_url, auth=SANDBOX_ACCOUNTS["main"], timeout=30) as client:
        page = offset
        while time.monotonic() < deadline:
            response = client.post("/product_offer/read", json={"currentPage": page % pages + 1, "itemsPerPage": 100})
            response.raise_for_status()
            assert len(response.json()["results"]) == 100
            served += 1
            page += 1
    out.put(served)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    state = SandboxState(
        products_per_account=args.products, seed=1, rate_per_second=None, rate_per_minute=None,
        order_rate_per_second=None, order_rate_per_minute=None,
    )  # fmt: skip
    pages = args.products // 100
    with SandboxServer(state) as server:
        warm = time.perf_counter()
        with httpx.Client(base_url=server.base_url, auth=SANDBOX_ACCOUNTS["main"], timeout=60) as client:
            for page in range(1, pages + 1):  # first reads generate and serialise the catalogue
                client.post("/product_offer/read", json={"currentPage": page, "itemsPerPage": 100})
        print(f"first full scan (generation included): {pages / (time.perf_counter() - warm):.0f} pages/s")
        ctx = multiprocessing.get_context("spawn")
        queue: multiprocessing.Queue[int] = ctx.Queue()
        deadline = time.monotonic() + 2 + args.seconds
        workers = [
            ctx.Process(target=_client, args=(server.base_url, pages, deadline, i * 7, queue))
            for i in range(args.clients)
        ]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        total = sum(queue.get() for _ in workers)
        elapsed = time.monotonic() - started
        for worker in workers:
            worker.join()
    print(f"{total} pages of 100 products in {elapsed:.1f} s with {args.clients} client processes")
    print(f"= {total / elapsed:.0f} pages/s served (rate limiting off; client start-up included)")


if __name__ == "__main__":
    main()
