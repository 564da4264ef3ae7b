"""A worker process SIGKILLed mid-sync loses nothing: the run is marked interrupted and resumed by the retry."""

from __future__ import annotations

import os
import signal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.worker.tasks import run_sync

from .conftest import Workers, eventually
from .helpers import assert_matches_sandbox, created_once, current_page, queue_sync, run, runs, sync_params


async def test_a_sigkilled_workers_run_is_resumed_and_ends_with_the_same_data(
    world: Workers, clean_engine: AsyncEngine
) -> None:
    state = world.sandbox.state
    state.faults.set_latency(100)
    params = sync_params("both", "full", items_per_page=10)
    sync_id = await queue_sync(clean_engine, params)
    run_sync.delay(str(sync_id), params)

    async def deep_enough() -> Any:
        return await current_page(clean_engine, "main") >= 6 and await current_page(clean_engine, "fbe") >= 6

    await eventually(deep_enough, 60, "the sync to get going", world)
    doomed = await run(clean_engine, sync_id)
    assert doomed is not None and doomed.status == "running" and doomed.worker is not None
    pid = int(doomed.worker.rsplit(":", 1)[1])
    assert world.owns(pid), f"{doomed.worker} is not one of the test's worker processes"
    os.kill(pid, signal.SIGKILL)
    state.faults.set_latency(0)

    async def resumed_and_done() -> Any:
        rows = await runs(clean_engine)
        return len(rows) == 2 and rows[1].status not in ("queued", "running")

    await eventually(resumed_and_done, 60, "the redelivered task to resume and finish the sync", world)
    killed, resumed = await runs(clean_engine)
    assert killed.id == sync_id and killed.status == "interrupted"
    assert resumed.status == "completed", resumed.error_message
    assert resumed.resumed_from == sync_id and resumed.triggered_by == "api:test"
    assert resumed.worker != killed.worker
    for account in ("main", "fbe"):
        await assert_matches_sandbox(state, clean_engine, account)
    assert await created_once(clean_engine)
