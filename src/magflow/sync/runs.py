"""Reading and writing run records: `emag_sync_logs` (one per run) and `emag_sync_progress` (per account)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from magflow.models import EmagSyncLog, EmagSyncProgress
from magflow.sync.locks import account_is_locked

log = logging.getLogger("magflow.sync")

MAX_STORED_ERRORS = 100
RESUMABLE = ("interrupted", "failed", "partial")
QUEUED_PATIENCE = 12


def utcnow() -> datetime:
    return datetime.now(UTC)


class SyncAlreadyRunningError(Exception):
    """A sync for this account is already running somewhere; the message names it."""

    def __init__(self, account: str, running: EmagSyncLog | None) -> None:
        self.account = account
        self.running_sync_id = running.id if running else None
        if running is not None:
            detail = (
                f"sync {running.id} ({running.operation}, account {running.account_type}, "
                f"started {running.started_at:%Y-%m-%d %H:%M:%S} UTC, triggered by {running.triggered_by})"
            )
        else:
            detail = "another process"
        super().__init__(
            f"a product sync for account {account} is already running: {detail}; "
            "wait for it to finish (see /status or `magflow status`) or cancel it"
        )


async def running_sync_for(session: AsyncSession, account: str, exclude: uuid.UUID | None = None) -> EmagSyncLog | None:
    """The sync holding (or about to hold) this account: a running one first, else the oldest queued."""
    query = select(EmagSyncLog).where(
        EmagSyncLog.status.in_(("running", "queued")), EmagSyncLog.account_type.in_([account, "both"])
    )
    if exclude is not None:
        query = query.where(EmagSyncLog.id != exclude)
    running_first = case((EmagSyncLog.status == "running", 0), else_=1)
    return (await session.scalars(query.order_by(running_first, EmagSyncLog.started_at).limit(1))).first()


async def reap_dead_runs(engine: AsyncEngine, session: AsyncSession, stale_after: timedelta) -> list[uuid.UUID]:
    """Mark runs interrupted whose process is gone: no account lock held and no heartbeat for `stale_after`.

    Returns the ids of the runs it marked. Safe to call from anywhere (status reads, the health check).
    """
    now = utcnow()
    candidates = (await session.scalars(select(EmagSyncLog).where(EmagSyncLog.status == "running"))).all()
    reaped: list[uuid.UUID] = []
    for run in candidates:
        accounts = ["main", "fbe"] if run.account_type == "both" else [run.account_type]
        beat = run.heartbeat_at or run.started_at
        if now - beat < stale_after:
            continue
        if any([await account_is_locked(engine, a) for a in accounts]):
            continue
        await mark_interrupted(session, run.id, "the process running this sync stopped (no heartbeat)")
        reaped.append(run.id)
    # A queued run that nobody started for QUEUED_PATIENCE x stale_after never will be: its server died
    # before starting it, or no Celery worker listens. Left queued, it would refuse every new sync.
    abandoned = (
        await session.scalars(
            select(EmagSyncLog).where(
                EmagSyncLog.status == "queued", EmagSyncLog.started_at < now - stale_after * QUEUED_PATIENCE
            )
        )
    ).all()
    for run in abandoned:
        run.status = "failed"
        run.completed_at = now
        run.error_message = (
            f"no worker started this sync within {stale_after * QUEUED_PATIENCE}: check that `magflow serve` "
            "or a Celery worker (celery -A magflow.worker worker) is running, then ask for the sync again"
        )
        log.warning("sync abandoned sync_id=%s reason=never started", run.id)
        reaped.append(run.id)
    return reaped


async def mark_interrupted(session: AsyncSession, sync_id: uuid.UUID, reason: str) -> None:
    log.warning("sync interrupted sync_id=%s reason=%s", sync_id, reason)
    now = utcnow()
    await session.execute(
        update(EmagSyncProgress)
        .where(EmagSyncProgress.sync_id == sync_id, EmagSyncProgress.status == "running")
        .values(status="interrupted", last_error=reason, updated_at=now)
    )
    run = await session.get(EmagSyncLog, sync_id)
    if run is not None and run.status in ("running", "queued"):
        run.status = "interrupted"
        run.completed_at = now
        run.duration_seconds = (now - run.started_at).total_seconds()
        run.error_message = reason
        append_errors(run, [{"reason": reason}])


def append_errors(run: EmagSyncLog, errors: list[dict[str, Any]]) -> None:
    if not errors:
        return
    stored = list(run.errors or [])
    room = MAX_STORED_ERRORS - len(stored)
    if room > 0:
        stored.extend(errors[:room])
        run.errors = stored


async def interrupt_orphans(session: AsyncSession, accounts: list[str]) -> None:
    """We hold these accounts' locks, so any run still 'running' on them is dead: say so."""
    rows = (
        await session.scalars(
            select(EmagSyncProgress.sync_id).where(
                EmagSyncProgress.status == "running", EmagSyncProgress.account_type.in_(accounts)
            )
        )
    ).all()
    for sync_id in set(rows):
        await mark_interrupted(session, sync_id, "the process running this sync stopped before finishing")


async def find_resumable(
    session: AsyncSession, account: str, mode: str, fingerprint: dict[str, Any]
) -> EmagSyncProgress | None:
    """The latest unfinished progress row of this account that a new run with the same shape can continue."""
    rows = (
        await session.scalars(
            select(EmagSyncProgress)
            .where(
                EmagSyncProgress.account_type == account,
                EmagSyncProgress.mode == mode,
                EmagSyncProgress.status.in_((*RESUMABLE, "cancelled")),
            )
            .order_by(EmagSyncProgress.updated_at.desc())
            .limit(5)
        )
    ).all()
    for row in rows:
        checkpoint = row.checkpoint or {}
        if checkpoint.get("resumed_by") or not checkpoint.get("resumable", True):
            continue
        if checkpoint.get("fingerprint") == fingerprint:
            return row
    return None


async def resumable_runs(session: AsyncSession) -> list[EmagSyncProgress]:
    rows = (
        await session.scalars(
            select(EmagSyncProgress)
            .where(EmagSyncProgress.status.in_((*RESUMABLE, "cancelled")))
            .order_by(EmagSyncProgress.updated_at.desc())
        )
    ).all()
    seen: set[tuple[str, str]] = set()
    result = []
    for row in rows:
        key = (row.account_type, row.mode)
        checkpoint = row.checkpoint or {}
        if key in seen or checkpoint.get("resumed_by") or not checkpoint.get("resumable", True):
            continue
        seen.add(key)
        result.append(row)
    return result
