"""The scheduled housekeeping, run by a worker: the health check and the sync log cleanup."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.db.engine import session_factory
from magflow.models import EmagAccountState, EmagSyncLog, HealthCheck
from magflow.worker.tasks import cleanup_sync_logs, health_check

from .conftest import Workers


def _log(status: str, age: timedelta, **values: object) -> EmagSyncLog:
    moment = datetime.now(UTC) - age
    return EmagSyncLog(
        id=uuid.uuid4(),
        account_type="main",
        operation="full_sync",
        mode="full",
        status=status,
        started_at=moment,
        completed_at=None if status == "running" else moment,
        **values,
    )


async def test_the_health_check_stores_a_verdict_and_reaps_dead_runs(world: Workers, clean_engine: AsyncEngine) -> None:
    dead = _log("running", timedelta(hours=2), heartbeat_at=datetime.now(UTC) - timedelta(hours=2))
    done = _log("completed", timedelta(minutes=30))
    async with session_factory(clean_engine)() as session:
        session.add_all([dead, done])
        session.add(EmagAccountState(account_type="fbe", last_connection_status="auth_failed"))
        await session.commit()

    verdict = await asyncio.to_thread(health_check.delay().get, timeout=30)

    checks = verdict["checks"]
    assert checks["database"]["status"] == "ok" and checks["broker"]["status"] == "ok"
    assert verdict["reaped_runs"] == [str(dead.id)]
    # The check asked eMAG (the sandbox) again: the stale "auth_failed" is replaced by today's answer.
    assert verdict["connection_checks"]["fbe"]["status"] == "ok"
    assert checks["accounts"]["fbe"]["connection"] == "ok"
    # No account has a successful sync recorded yet, which readiness calls degraded.
    assert verdict["status"] == "degraded"
    assert any("never synced successfully" in p for p in verdict["problems"])
    async with session_factory(clean_engine)() as session:
        stored = (await session.scalars(select(HealthCheck))).one()
        reaped = await session.get(EmagSyncLog, dead.id)
    assert stored.status == "degraded" and set(stored.details["checks"]["accounts"]) == {"main", "fbe"}
    assert reaped is not None and reaped.status == "interrupted"


async def test_cleanup_removes_only_finished_logs_older_than_the_retention(
    world: Workers, clean_engine: AsyncEngine
) -> None:
    old = _log("completed", timedelta(days=40))
    old_failed = _log("failed", timedelta(days=31))
    last_full_scan = _log("completed", timedelta(days=45))
    recent = _log("partial", timedelta(days=29))
    async with session_factory(clean_engine)() as session:
        session.add_all([old, old_failed, last_full_scan, recent])
        session.add(EmagAccountState(account_type="main", last_full_sync_id=last_full_scan.id))
        session.add(HealthCheck(checked_at=datetime.now(UTC) - timedelta(days=60), status="healthy", details={}))
        await session.commit()

    result = await asyncio.to_thread(cleanup_sync_logs.delay(30).get, timeout=30)

    assert result["deleted_sync_logs"] == 2 and result["deleted_health_checks"] == 1
    async with session_factory(clean_engine)() as session:
        kept = set((await session.scalars(select(EmagSyncLog.id))).all())
    assert kept == {last_full_scan.id, recent.id}
