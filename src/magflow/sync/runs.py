"""Reading and writing run records: `emag_sync_logs` (one per run) and `emag_sync_progress` (per account)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from magflow.config import get_settings
from magflow.models import EmagSyncLog, EmagSyncProgress, EmagSyncSeen
from magflow.sync.locks import lock_held_sql

log = logging.getLogger("magflow.sync")

MAX_STORED_ERRORS = 100
RESUMABLE = ("interrupted", "failed", "partial")
QUEUED_PATIENCE = 12
SEEN_RETENTION = timedelta(days=1)
DEAD_RUN_REASON = (
    "the process running this sync stopped (its account lock is gone): run `magflow resume` or the same sync "
    "again to continue from its last checkpoint"
)

# A running run holds its accounts' advisory locks; see magflow.sync.locks.
_LOCK_HELD = literal_column(lock_held_sql("emag_sync_logs.account_type"), Boolean)
# A progress row whose checkpoint a new run of the same shape may continue.
_CONTINUABLE = and_(
    EmagSyncProgress.status.in_((*RESUMABLE, "cancelled")),
    func.coalesce(EmagSyncProgress.checkpoint["resumable"].as_boolean(), True),
    func.coalesce(EmagSyncProgress.checkpoint["resumed_by"].astext, "") == "",
)


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
    """Mark runs interrupted whose process is gone, and fail queued runs that nobody will start.

    A running run is dead as soon as no connection holds its accounts' sync locks (see `settle_dead_runs`);
    `stale_after` only measures how long a queued run may wait. Returns the ids of the runs it marked. Safe to
    call from anywhere (status reads, the health check); the caller commits. `engine` is not needed any more:
    the locks are read through `session`.
    """
    reaped = await settle_dead_runs(session)
    # A queued run that nobody started for QUEUED_PATIENCE x stale_after never will be: its server died
    # before starting it, or no Celery worker listens. Left queued, it would refuse every new sync.
    now = utcnow()
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


async def settle_dead_runs(session: AsyncSession) -> list[uuid.UUID]:
    """Mark interrupted, at once, every run that says running while no connection holds its account locks.

    A run row says running only while its process holds the locks (the service takes them before it marks
    the run running and records the end before it lets them go), so a process killed with SIGKILL, or one whose
    lock connection was closed, is recognised on the next read with no heartbeat to wait for. Every reader
    (status, history, resume, the API) calls this first; the caller commits."""
    candidates = (
        await session.scalars(select(EmagSyncLog.id).where(EmagSyncLog.status == "running", ~_LOCK_HELD))
    ).all()
    settled = []
    for sync_id in candidates:
        if await mark_interrupted(session, sync_id, DEAD_RUN_REASON, only_if_unlocked=True):
            settled.append(sync_id)
    return settled


async def mark_interrupted(
    session: AsyncSession, sync_id: uuid.UUID, reason: str, *, only_if_unlocked: bool = False
) -> bool:
    """Say the run stopped before it finished: the run row (if still queued or running) and its running
    progress rows. One conditional UPDATE, so a run that finished meanwhile keeps its own status; with
    `only_if_unlocked`, a run whose lock is held again is left alone entirely. True when the run row changed."""
    now = utcnow()
    conditions = [EmagSyncLog.id == sync_id, EmagSyncLog.status.in_(("running", "queued"))]
    if only_if_unlocked:
        conditions.append(~_LOCK_HELD)
    changed = await session.scalar(
        update(EmagSyncLog)
        .where(*conditions)
        .values(
            status="interrupted",
            completed_at=now,
            duration_seconds=func.extract("epoch", now - EmagSyncLog.started_at),
            error_message=reason,
            errors=_with_error(reason),
        )
        .returning(EmagSyncLog.id)
        .execution_options(synchronize_session="fetch")
    )
    if changed is None and only_if_unlocked:
        return False
    if changed is not None:
        log.warning("sync interrupted sync_id=%s reason=%s", sync_id, reason)
    await session.execute(
        update(EmagSyncProgress)
        .where(EmagSyncProgress.sync_id == sync_id, EmagSyncProgress.status == "running")
        .values(status="interrupted", last_error=reason, updated_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return changed is not None


def _with_error(reason: str) -> Any:
    """The run's stored errors plus this one, unless MAX_STORED_ERRORS are stored already."""
    entry = bindparam("interrupt_error", [{"reason": reason}], type_=JSONB)
    return case(
        (func.jsonb_array_length(EmagSyncLog.errors) < MAX_STORED_ERRORS, EmagSyncLog.errors.op("||")(entry)),
        else_=EmagSyncLog.errors,
    )


def append_errors(run: EmagSyncLog, errors: list[dict[str, Any]]) -> None:
    if not errors:
        return
    stored = list(run.errors or [])
    room = MAX_STORED_ERRORS - len(stored)
    if room > 0:
        stored.extend(errors[:room])
        run.errors = stored


async def interrupt_orphans(session: AsyncSession, accounts: list[str]) -> None:
    """We hold these accounts' locks, so any run still 'running' on them is dead: say so.

    Run rows are covered as well as progress rows: a run that died before its first page has no progress row,
    and while we hold the lock the readers' pg_locks check would take it for alive."""
    orphans = set(
        (
            await session.scalars(
                select(EmagSyncProgress.sync_id).where(
                    EmagSyncProgress.status == "running", EmagSyncProgress.account_type.in_(accounts)
                )
            )
        ).all()
    )
    orphans.update(
        (
            await session.scalars(
                select(EmagSyncLog.id).where(
                    EmagSyncLog.status == "running", EmagSyncLog.account_type.in_([*accounts, "both"])
                )
            )
        ).all()
    )
    for sync_id in orphans:
        await mark_interrupted(session, sync_id, "the process running this sync stopped before finishing")


def resume_max_age() -> timedelta:
    return timedelta(hours=get_settings().magflow_resume_max_age_hours)


async def find_resumable(
    session: AsyncSession, account: str, mode: str, fingerprint: dict[str, Any], max_age: timedelta | None = None
) -> EmagSyncProgress | None:
    """The latest unfinished progress row of this account that a new run with the same shape can continue.

    A checkpoint older than `max_age` (MAGFLOW_RESUME_MAX_AGE_HOURS) is not continued: the longer a scan is
    spread out, the more offers shift between its pages while the catalogue changes; the run starts again
    from page 1 and says why in the log."""
    max_age = max_age if max_age is not None else resume_max_age()
    for row in await _unfinished(session, account=account, mode=mode, limit=5):
        if (row.checkpoint or {}).get("fingerprint") != fingerprint:
            continue
        age = utcnow() - row.updated_at
        if age > max_age:
            log.warning(
                "not resuming sync_id=%s account=%s mode=%s: its checkpoint (page %s) is %.1f hours old, over "
                "MAGFLOW_RESUME_MAX_AGE_HOURS=%s; starting from page 1",
                row.sync_id,
                account,
                mode,
                row.checkpoint.get("next_page"),
                age.total_seconds() / 3600,
                f"{max_age.total_seconds() / 3600:g}",
            )
            return None
        return row
    return None


async def resumable_runs(session: AsyncSession, max_age: timedelta | None = None) -> list[EmagSyncProgress]:
    """The latest unfinished checkpoint of each account and mode that a new run would still continue."""
    oldest = utcnow() - (max_age if max_age is not None else resume_max_age())
    result = []
    seen: set[tuple[str, str]] = set()
    for row in await _unfinished(session):
        key = (row.account_type, row.mode)
        if key in seen:
            continue
        seen.add(key)
        if row.updated_at >= oldest:
            result.append(row)
    return result


async def _unfinished(
    session: AsyncSession, account: str | None = None, mode: str | None = None, limit: int | None = None
) -> list[EmagSyncProgress]:
    """Progress rows whose checkpoint may still be continued, newest first."""
    query = select(EmagSyncProgress).where(_CONTINUABLE).order_by(EmagSyncProgress.updated_at.desc())
    if account is not None:
        query = query.where(EmagSyncProgress.account_type == account)
    if mode is not None:
        query = query.where(EmagSyncProgress.mode == mode)
    return list((await session.scalars(query.limit(limit))).all())


async def clean_abandoned_seen(session: AsyncSession, older_than: timedelta = SEEN_RETENTION) -> int:
    """Delete the seen-sets of scans that no run will continue, once they are `older_than` old.

    A full scan records each offer it reads in `emag_sync_seen` and drops the set when it ends; a scan that
    was abandoned (killed, failed, never resumed) leaves its set behind. A set is kept while a running or
    continuable checkpoint names it (`scan_id`, or one of `scan_ids`). Returns the rows deleted."""
    checkpoint = EmagSyncProgress.checkpoint
    live = (
        select(checkpoint.label("checkpoint"))
        .where(
            or_(
                EmagSyncProgress.status == "running",
                and_(_CONTINUABLE, EmagSyncProgress.updated_at >= utcnow() - resume_max_age()),
            )
        )
        .cte("live")
    )
    named = select(live.c.checkpoint["scan_id"].astext.label("scan_id"))
    listed = select(func.jsonb_array_elements_text(live.c.checkpoint["scan_ids"])).where(
        func.jsonb_typeof(live.c.checkpoint["scan_ids"]) == "array"
    )
    kept = union(named, listed).cte("kept")
    result = await session.execute(
        delete(EmagSyncSeen).where(
            EmagSyncSeen.seen_at < utcnow() - older_than,
            ~exists().where(kept.c.scan_id == cast(EmagSyncSeen.scan_id, Text)),
        )
    )
    deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if deleted:
        log.info("removed %d seen-set rows of abandoned scans older than %s", deleted, older_than)
    return deleted
