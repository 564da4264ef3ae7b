"""Deletions, interrupted runs, resumes, the sweep guard and single-flight runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.db.engine import session_factory
from magflow.models import EmagProductChange, EmagSyncLog, EmagSyncProgress
from magflow.sync import SyncAlreadyRunningError
from magflow.testing.sync import stored


async def _assert_equals_truth(sandbox: Any, engine: AsyncEngine, account: str) -> None:
    truth = {p["id"]: p for p in sandbox.state.truth(account)}
    rows = await stored(engine, account)
    present = {i: r for i, r in rows.items() if not r.is_missing}
    assert set(present) == set(truth)
    for emag_id, product in truth.items():
        assert present[emag_id].raw_emag_data == product


async def _created_audit_counts(engine: AsyncEngine) -> dict[int, int]:
    async with session_factory(engine)() as session:
        rows = (
            await session.execute(
                select(EmagProductChange.emag_id, func.count())
                .where(EmagProductChange.change_type == "created")
                .group_by(EmagProductChange.emag_id)
            )
        ).all()
    return {r[0]: r[1] for r in rows}


async def test_deleted_products_become_missing_only_after_a_complete_full_scan(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    await run_sync(account="main", mode="full")
    gone = sandbox.state.delete_products("main", 3)

    await run_sync(account="main", mode="incremental", include_inactive=True)
    assert not any(r.is_missing for r in (await stored(clean_engine, "main")).values())

    sandbox.state.faults.inject("500", count=50, page=3)
    broken = await run_sync(account="main", mode="full", items_per_page=50, config={"max_attempts": 2})
    assert broken["status"] == "partial"
    assert "page 3" in broken["error_message"]
    assert not any(r.is_missing for r in (await stored(clean_engine, "main")).values())

    sandbox.state.faults.clear()
    done = await run_sync(account="main", mode="full", items_per_page=50)
    assert done["status"] == "completed" and done["missing"] == 3
    rows = await stored(clean_engine, "main")
    assert {i for i, r in rows.items() if r.is_missing} == set(gone)
    assert all(rows[i].sync_status == "missing" and not rows[i].is_active for i in gone)
    async with session_factory(clean_engine)() as session:
        audited = (
            await session.scalars(select(EmagProductChange.emag_id).where(EmagProductChange.change_type == "missing"))
        ).all()
    assert sorted(audited) == sorted(gone)


async def test_sweep_is_refused_when_far_fewer_products_are_seen(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    await run_sync(account="main", mode="full")
    total = len(sandbox.state.truth("main"))
    sandbox.state.delete_products("main", int(total * 0.6))
    result = await run_sync(account="main", mode="full")
    assert result["status"] == "partial"
    assert "sweep refused" in result["error_message"]
    assert not any(r.is_missing for r in (await stored(clean_engine, "main")).values())


async def test_a_run_that_failed_mid_scan_is_resumed_by_the_next_run_and_ends_identical(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    sandbox.state.faults.inject("500", count=50, page=4)
    first = await run_sync(mode="full", items_per_page=50, config={"max_attempts": 2})
    assert first["status"] == "partial"
    assert first["accounts"]["main"]["pages"] == 3
    sandbox.state.faults.clear()

    second = await run_sync(mode="full", items_per_page=50)
    assert second["status"] == "completed"
    assert second["accounts"]["main"]["resumed_from"] == first["sync_id"]
    for account in ("main", "fbe"):
        await _assert_equals_truth(sandbox, clean_engine, account)
    assert set((await _created_audit_counts(clean_engine)).values()) == {1}
    async with session_factory(clean_engine)() as session:
        runs = (await session.scalars(select(EmagSyncLog).order_by(EmagSyncLog.started_at))).all()
    assert [r.status for r in runs] == ["partial", "completed"]
    assert runs[1].resumed_from == runs[0].id


KILLED_SYNC = """
import asyncio, sys
from magflow.db.engine import create_engine, session_factory
from magflow.emag import AccountConfig, InProcessRateBudget, RateLimits
from magflow.sandbox import SANDBOX_ACCOUNTS
from magflow.sync import EmagProductSyncService

async def main():
    url, base = sys.argv[1], sys.argv[2]
    engine = create_engine(url)
    configs = {a: AccountConfig(account=a, username=u, password=p, base_url=base)
               for a, (u, p) in SANDBOX_ACCOUNTS.items()}
    async with session_factory(engine)() as db, EmagProductSyncService(
        db=db, account_type="both", account_configs=configs,
        budget=InProcessRateBudget(RateLimits(per_second=1000.0, per_minute=60000)), triggered_by="doomed",
    ) as svc:
        await svc.sync_all_products(mode="full", items_per_page=20)

asyncio.run(main())
"""


async def test_a_run_killed_with_sigkill_is_marked_interrupted_and_resumed_to_the_same_data(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine, database_url: str
) -> None:
    sandbox.state.faults.set_latency(150)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_SYNC, database_url, sandbox.base_url],
        env={**os.environ},
    )
    try:
        for _ in range(300):
            await asyncio.sleep(0.1)
            async with session_factory(clean_engine)() as session:
                pages = await session.scalar(
                    select(func.min(EmagSyncProgress.current_page)).where(EmagSyncProgress.status == "running")
                )
            if pages is not None and pages >= 3:
                break
        else:
            pytest.fail("the doomed sync never got going")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    sandbox.state.faults.clear()

    result = await run_sync(mode="full", items_per_page=20)
    assert result["status"] == "completed"
    for account in ("main", "fbe"):
        await _assert_equals_truth(sandbox, clean_engine, account)
        assert result["accounts"][account]["resumed_from"] is not None
    assert set((await _created_audit_counts(clean_engine)).values()) == {1}
    async with session_factory(clean_engine)() as session:
        runs = (await session.scalars(select(EmagSyncLog).order_by(EmagSyncLog.started_at))).all()
    assert [r.status for r in runs] == ["interrupted", "completed"]
    assert runs[0].triggered_by == "doomed" and runs[1].resumed_from == runs[0].id


async def test_a_second_sync_for_a_busy_account_is_refused_naming_the_running_one(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    sandbox.state.faults.set_latency(200)
    first = asyncio.create_task(run_sync(account="main", mode="full", items_per_page=20))
    running_id: uuid.UUID | None = None
    for _ in range(100):
        await asyncio.sleep(0.05)
        async with session_factory(clean_engine)() as session:
            running_id = await session.scalar(select(EmagSyncLog.id).where(EmagSyncLog.status == "running"))
        if running_id:
            break
    assert running_id is not None
    with pytest.raises(SyncAlreadyRunningError) as refused:
        await run_sync(account="both", mode="incremental")
    assert str(running_id) in str(refused.value)
    assert "already running" in str(refused.value)
    sandbox.state.faults.clear()
    assert (await first)["status"] == "completed"


async def test_a_catalogue_changing_during_a_full_scan_is_read_again_until_stable(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    await run_sync(account="main", mode="full")
    sandbox.state.faults.set_latency(120)
    sync = asyncio.create_task(run_sync(account="main", mode="full", items_per_page=50))
    for _ in range(200):
        await asyncio.sleep(0.05)
        async with session_factory(clean_engine)() as session:
            page = await session.scalar(
                select(EmagSyncProgress.current_page).where(EmagSyncProgress.status == "running")
            )
        if page is not None and page >= 2:
            break
    added = sandbox.state.add_products("main", 30)
    deleted = sandbox.state.delete_products("main", 5)
    sandbox.state.faults.clear()
    result = await sync
    assert result["status"] == "completed", result["error_message"]
    assert result["missing"] == len(set(deleted) - set(added))
    await _assert_equals_truth(sandbox, clean_engine, "main")
    rows = await stored(clean_engine, "main")
    assert set(added) <= set(rows)


async def test_dead_runs_are_marked_and_an_abandoned_queued_run_stops_blocking(clean_engine: AsyncEngine) -> None:
    from datetime import UTC, datetime, timedelta

    from magflow.sync.runs import reap_dead_runs, running_sync_for

    long_ago = datetime.now(UTC) - timedelta(hours=2)
    dead = EmagSyncLog(
        account_type="main",
        operation="full_sync",
        mode="full",
        status="running",
        started_at=long_ago,
        heartbeat_at=long_ago,
    )
    abandoned = EmagSyncLog(
        account_type="fbe", operation="full_sync", mode="full", status="queued", started_at=long_ago
    )
    fresh = EmagSyncLog(account_type="fbe", operation="incremental_sync", mode="incremental", status="queued")
    async with session_factory(clean_engine)() as session:
        session.add_all([dead, abandoned, fresh])
        await session.commit()
        reaped = await reap_dead_runs(clean_engine, session, timedelta(minutes=5))
        await session.commit()
        assert set(reaped) == {dead.id, abandoned.id}
        await session.refresh(dead)
        await session.refresh(abandoned)
        assert dead.status == "interrupted" and "stopped" in (dead.error_message or "")
        assert abandoned.status == "failed" and "no worker started this sync" in (abandoned.error_message or "")
        assert (await running_sync_for(session, "fbe")) is not None  # the fresh queued one still counts
        assert (await session.get(EmagSyncLog, fresh.id)).status == "queued"  # type: ignore[union-attr]
