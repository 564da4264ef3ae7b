"""The housekeeping jobs of the schedule: removing old sync logs, and the periodic health check."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.accounts import configured_accounts
from magflow.config import Settings
from magflow.db.engine import session_factory
from magflow.models import FINISHED_STATUSES, EmagAccountState, EmagSyncLog, HealthCheck
from magflow.sync.runs import reap_dead_runs, utcnow

log = logging.getLogger("magflow.worker")

BROKER_PING_TIMEOUT_SECONDS = 5.0


async def cleanup_sync_logs(engine: AsyncEngine, retention_days: int) -> dict[str, Any]:
    """Delete finished sync runs (and their progress rows) and health checks older than `retention_days`.

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
        await session.commit()
    log.info(
        "cleanup removed %d sync logs and %d health checks older than %d days",
        deleted_runs,
        deleted_checks,
        retention_days,
    )
    return {"deleted_sync_logs": deleted_runs, "deleted_health_checks": deleted_checks, "cutoff": cutoff.isoformat()}


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


def _age_seconds(moment: datetime | None, now: datetime) -> float | None:
    return round((now - moment).total_seconds(), 1) if moment is not None else None


async def health_check(engine: AsyncEngine, settings: Settings) -> dict[str, Any]:
    """Check the database, the broker and each configured account; store and return the verdict.

    Also marks runs whose process died (no lock, no heartbeat for MAGFLOW_STALE_RUN_SECONDS) interrupted,
    so a run killed with its machine does not say "running" forever.
    """
    now = utcnow()
    broker = await _broker_reachable(settings.broker_url)
    details: dict[str, Any] = {"database": {"ok": True}, "broker": broker, "accounts": {}}
    problems = [] if broker["ok"] else ["broker"]
    async with session_factory(engine)() as session:
        await session.execute(text("SELECT 1"))
        reaped = await reap_dead_runs(engine, session, timedelta(seconds=settings.magflow_stale_run_seconds))
        details["reaped_runs"] = [str(r) for r in reaped]
        states = {s.account_type: s for s in (await session.scalars(select(EmagAccountState))).all()}
        for account in configured_accounts(settings):
            state = states.get(account)
            connection = state.last_connection_status if state else None
            last_success = state.last_successful_sync_at if state else None
            details["accounts"][account] = {
                "last_connection_status": connection,
                "last_connection_message": state.last_connection_message if state else None,
                "last_connection_checked_at": (
                    state.last_connection_checked_at.isoformat() if state and state.last_connection_checked_at else None
                ),
                "last_successful_sync_at": last_success.isoformat() if last_success else None,
                "last_successful_sync_age_seconds": _age_seconds(last_success, now),
            }
            if connection not in (None, "ok"):
                problems.append(f"account {account}: {connection}")
        latest = await session.scalar(
            select(func.max(EmagSyncLog.completed_at)).where(EmagSyncLog.status == "completed")
        )
        details["last_successful_sync_age_seconds"] = _age_seconds(latest, now)
        status = "healthy" if not problems else "degraded"
        details["problems"] = problems
        session.add(HealthCheck(checked_at=now, status=status, details=details))
        await session.commit()
    if problems:
        log.warning("health check: %s (%s)", status, "; ".join(problems))
    return {"status": status, **details}
