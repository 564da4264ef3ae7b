"""Syncs run by real worker processes: queued runs complete, one sync per account, one rate budget."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.accounts import rate_limits
from magflow.config import load_settings
from magflow.emag import AccountConfig, EmagClient, RedisRateBudget
from magflow.sandbox import SANDBOX_ACCOUNTS
from magflow.worker.tasks import run_sync, scheduled_incremental_sync

from .conftest import RATE_PER_MINUTE, RATE_PER_SECOND, Workers, eventually
from .helpers import assert_matches_sandbox, queue_sync, run, runs, sync_params


async def _finished(engine: AsyncEngine, *sync_ids: Any) -> bool:
    rows = [await run(engine, i) for i in sync_ids]
    return all(r is not None and r.status not in ("queued", "running") for r in rows)


async def test_a_queued_sync_completes_through_a_worker(world: Workers, clean_engine: AsyncEngine) -> None:
    params = sync_params("both", "full")
    sync_id = await queue_sync(clean_engine, params)

    result = run_sync.delay(str(sync_id), params)

    await eventually(lambda: _finished(clean_engine, sync_id), 60, "the queued sync to finish", world)
    row = await run(clean_engine, sync_id)
    assert row is not None and row.status == "completed", row and row.error_message
    assert row.triggered_by == "api:test" and row.worker is not None
    for account in ("main", "fbe"):
        await assert_matches_sandbox(world.sandbox.state, clean_engine, account)
    outcome = await asyncio.to_thread(result.get, timeout=10)
    assert outcome["status"] == "completed" and outcome["sync_id"] == str(sync_id)
    assert outcome["created"] == 2 * len(world.sandbox.state.truth("main"))


async def test_two_workers_given_the_same_accounts_sync_run_it_once(world: Workers, clean_engine: AsyncEngine) -> None:
    world.sandbox.state.faults.set_latency(150)
    params = sync_params("main", "full", items_per_page=25)
    first, second = await queue_sync(clean_engine, params), await queue_sync(clean_engine, params)

    results = [run_sync.delay(str(first), params), run_sync.delay(str(second), params)]

    await eventually(lambda: _finished(clean_engine, first, second), 60, "both syncs to finish", world)
    rows = {r.id: r for r in await runs(clean_engine)}
    assert sorted(r.status for r in rows.values()) == ["completed", "failed"]
    done = next(r for r in rows.values() if r.status == "completed")
    refused = next(r for r in rows.values() if r.status == "failed")
    assert refused.error_message is not None and "already running" in refused.error_message
    assert str(done.id) in refused.error_message
    outcomes = [await asyncio.to_thread(r.get, timeout=10) for r in results]
    assert sorted(o["status"] for o in outcomes) == ["completed", "refused"]
    # The catalogue was read once: 12 pages of 25 plus the count, not twice that.
    requests = sum(world.sandbox.state.requests_per_second("main").values())
    assert requests < 2 * (300 // 25)
    await assert_matches_sandbox(world.sandbox.state, clean_engine, "main")


async def _hammer(stop: asyncio.Event, redis_url: str, base_url: str) -> int:
    """Another process of the deployment (the API checking the connection) reading the main account."""
    settings = load_settings(emag_rate_limit_per_second=RATE_PER_SECOND, emag_rate_limit_per_minute=RATE_PER_MINUTE)
    user, password = SANDBOX_ACCOUNTS["main"]
    config = AccountConfig(account="main", username=user, password=password, base_url=base_url, timeout_seconds=10)
    sent = 0
    async with RedisRateBudget(redis_url, rate_limits(settings)) as budget, EmagClient(config, budget) as client:
        while not stop.is_set():
            await client.read_products_page(page=1, items_per_page=1)
            sent += 1
    return sent


async def test_two_workers_and_the_api_together_stay_inside_each_accounts_rate_budget(
    world: Workers, clean_engine: AsyncEngine
) -> None:
    state = world.sandbox.state
    state.set_rate_limit(per_second=RATE_PER_SECOND, per_minute=RATE_PER_MINUTE)
    main, fbe = sync_params("main", "full", items_per_page=10), sync_params("fbe", "full", items_per_page=10)
    main_id, fbe_id = await queue_sync(clean_engine, main), await queue_sync(clean_engine, fbe)
    stop = asyncio.Event()
    hammer = asyncio.create_task(_hammer(stop, world.redis_url, world.sandbox.base_url))
    started = time.monotonic()

    run_sync.delay(str(main_id), main)
    run_sync.delay(str(fbe_id), fbe)

    await eventually(lambda: _finished(clean_engine, main_id, fbe_id), 90, "both syncs to finish", world)
    stop.set()
    extra = await hammer
    elapsed = time.monotonic() - started
    assert [r.status for r in await runs(clean_engine)] == ["completed", "completed"]
    assert extra > 0
    for account in ("main", "fbe"):
        assert state.count_429(account) == 0
        assert state.max_requests_in_any_second(account) <= RATE_PER_SECOND
        await assert_matches_sandbox(state, clean_engine, account)
    # The shared budget, not luck, kept main inside the limit: together they used most of it.
    main_requests = sum(state.requests_per_second("main").values())
    assert main_requests >= 30 + extra and main_requests > 0.6 * RATE_PER_SECOND * elapsed


async def test_the_scheduled_incremental_sync_runs_each_account_with_the_schedules_parameters(
    world: Workers, clean_engine: AsyncEngine
) -> None:
    dispatched = await asyncio.to_thread(
        scheduled_incremental_sync.delay(max_pages=1, items_per_page=40).get, timeout=10
    )
    assert dispatched["status"] == "dispatched" and set(dispatched["tasks"]) == {"main", "fbe"}

    async def both_done() -> bool:
        rows = await runs(clean_engine)
        return len(rows) == 2 and all(r.status not in ("queued", "running") for r in rows)

    await eventually(both_done, 60, "the scheduled runs to finish", world)
    rows = await runs(clean_engine)
    assert sorted(r.account_type for r in rows) == ["fbe", "main"]
    assert {(r.status, r.mode, r.triggered_by, r.processed_items) for r in rows} == {
        ("completed", "incremental", "celery:beat", 40)
    }
