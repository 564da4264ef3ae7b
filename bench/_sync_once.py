"""One sync run in its own process, for the benchmarks: prints one JSON line with its figures.

Peak RSS is this process's own (ru_maxrss), so it covers the sync and nothing else; `baseline_rss_kib` is
the RSS after imports and the engine, before the first request.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import json
import resource
import time
from typing import Any

import httpx
import psutil

from magflow.db.engine import create_engine, session_factory
from magflow.emag import AccountConfig, InProcessRateBudget, RateLimits
from magflow.sync import EmagProductSyncService

ACCOUNTS = {"main": ("sandbox-main", "sandbox-main-pass"), "fbe": ("sandbox-fbe", "sandbox-fbe-pass")}
UNLIMITED = RateLimits(per_second=1e6, per_minute=10**9, safety_margin=0.0)


def trace_requests(events: list[dict[str, Any]]) -> None:
    """Record when each request left and came back, per account: the evidence for a 429 or a gap."""
    send = httpx.AsyncClient.send
    users = {u: a for a, (u, _) in ACCOUNTS.items()}

    async def traced(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        started = time.monotonic()
        response = await send(self, request, **kwargs)
        header = request.headers.get("authorization", "Basic ")
        account = users.get(base64.b64decode(header.split()[-1]).decode().split(":")[0], "?")
        events.append(
            {
                "account": account,
                "route": request.url.path.rsplit("/api-3/", 1)[-1],
                "sent": started,
                "answered": time.monotonic(),
                "status": response.status_code,
            }
        )
        return response

    httpx.AsyncClient.send = traced  # type: ignore[method-assign]


async def sync(args: argparse.Namespace) -> dict[str, Any]:
    engine = create_engine(args.db_url)
    configs = {
        a: AccountConfig(account=a, username=u, password=p, base_url=args.base_url) for a, (u, p) in ACCOUNTS.items()
    }
    budget = InProcessRateBudget(RateLimits() if args.rate_limited else UNLIMITED)
    baseline = psutil.Process().memory_info().rss // 1024
    started = time.perf_counter()
    mono_start = time.monotonic()
    try:
        async with (
            session_factory(engine)() as db,
            EmagProductSyncService(
                db=db, account_type="both", account_configs=configs, budget=budget, triggered_by="bench"
            ) as svc,
        ):
            result = await svc.sync_all_products(mode=args.mode, include_inactive=True)
            stats = {
                a: {"requests": c.stats.requests, "http_429": c.stats.http_429, "wait_s": c.stats.rate_wait_seconds}
                for a, c in svc.clients.items()
            }
        wall = time.perf_counter() - started
        mono_end = time.monotonic()
    finally:
        await engine.dispose()
    result.pop("errors", None)
    for account in result.get("accounts", {}).values():
        account.pop("errors", None)
    return {
        "wall_s": wall,
        "mono_start": mono_start,
        "mono_end": mono_end,
        "baseline_rss_kib": baseline,
        "client": stats,
        "result": result,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--mode", default="full")
    parser.add_argument("--rate-limited", action="store_true")
    parser.add_argument("--profile", help="write a cProfile of the run to this file")
    parser.add_argument("--trace", help="write every request's send/answer times (JSON) to this file")
    args = parser.parse_args()
    events: list[dict[str, Any]] = []
    if args.trace:
        trace_requests(events)
    if args.profile:
        profiler = cProfile.Profile()
        report = profiler.runcall(asyncio.run, sync(args))
        profiler.dump_stats(args.profile)
    else:
        report = asyncio.run(sync(args))
    report["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.trace:
        with open(args.trace, "w", encoding="utf-8") as out:
            json.dump(events, out)
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
