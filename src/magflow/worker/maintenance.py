"""The housekeeping jobs of the schedule: removing old sync logs, and the periodic health check."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.config import Settings
from magflow.db.engine import session_factory
from magflow.models import FINISHED_STATUSES, EmagAccountState, EmagPageRead, EmagSyncLog, HealthCheck
from magflow.observability.health import run_health_check
from magflow.sync.runs import clean_abandoned_seen, reap_dead_runs, utcnow
from magflow.sync.sweep import PAGE_READS_KEPT_DAYS

log = logging.getLogger("magflow.worker")

BROKER_PING_TIMEOUT_SECONDS = 5.0


async def cleanup_sync_logs(engine: AsyncEngine, retention_days: int) -> dict[str, Any]:
    """Delete finished sync runs (and their progress rows) and health checks older than `retention_days`, and
    the seen-sets of abandoned full scans (older than a day, named by no running or resumable checkpoint).

    Runs still in progress and the run each account's last complete full scan points at are kept.
    """
    cutoff = utcnow() - timedelta(days=retention_days)
    async with session_factory(engine)() as session:
        keep = select(EmagAccountState.last_full_sync_id).where(EmagAccountState.last_full_sync_id.is_not(None))
        runs = await session.execute(
            delete(EmagSyncLog)
            .where(
                EmagSyncLog.status.in_(FINISHED_STATUSES),
                func.coalesce(EmagSyncLog.completed_at, EmagSyncLog.started_at) < cutoff,
                EmagSyncLog.id.not_in(keep),
            )
            .returning(EmagSyncLog.id)
        )
        deleted_runs = len(runs.all())
        checks = await session.execute(
            delete(HealthCheck).where(HealthCheck.checked_at < cutoff).returning(HealthCheck.id)
        )
        deleted_checks = len(checks.all())
        deleted_seen = await clean_abandoned_seen(session)
        # Page reads say when a product was last read; a week is enough (every product is read at least nightly),
        # and a full sync that keeps ending partial must not let them grow without bound.
        reads = await session.execute(
            delete(EmagPageRead)
            .where(EmagPageRead.read_at < utcnow() - timedelta(days=PAGE_READS_KEPT_DAYS))
            .returning(EmagPageRead.id)
        )
        deleted_reads = len(reads.all())
        await session.commit()
    log.info(
        "cleanup removed %d sync logs and %d health checks older than %d days, %d seen rows of abandoned scans",
        deleted_runs,
        deleted_checks,
        retention_days,
        deleted_seen,
    )
    return {
        "deleted_sync_logs": deleted_runs,
        "deleted_health_checks": deleted_checks,
        "deleted_seen_rows": deleted_seen,
        "deleted_page_reads": deleted_reads,
        "cutoff": cutoff.isoformat(),
    }


async def _broker_reachable(url: str | None) -> dict[str, Any]:
    if not url:
        return {"ok": False, "error": "no broker configured (set REDIS_URL or CELERY_BROKER_URL)"}
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return {"ok": True, "checked": False}
    client = aioredis.Redis.from_url(url, socket_timeout=BROKER_PING_TIMEOUT_SECONDS)
    try:
        await client.ping()
        return {"ok": True}
    except (aioredis.RedisError, OSError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        await client.aclose()


async def health_check(engine: AsyncEngine, settings: Settings) -> dict[str, Any]:
    """The periodic health check: mark runs whose process died interrupted (their account lock is gone) and
    queued runs nobody started failed, then check each account's connection and store the readiness verdict."""
    reaped: list[str] = []
    try:
        async with session_factory(engine)() as session:
            stale = timedelta(seconds=settings.magflow_stale_run_seconds)
            reaped = [str(r) for r in await reap_dead_runs(engine, session, stale)]
            await session.commit()
    except Exception:  # the database is down: the verdict below says so
        log.warning("health check could not reap dead runs", exc_info=True)
    report = await run_health_check(engine, settings, extra={"reaped_runs": reaped})
    if report["status"] != "ok":
        log.warning("health check status=%s problems=%s", report["status"], "; ".join(report["problems"]))
    return report
