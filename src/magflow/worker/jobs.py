"""What the Celery tasks do, as coroutines: each takes ids and parameters and calls the sync service.

A task runs one of these with `asyncio.run`; the job commits at its edge and the task disposes the engine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.accounts import AccountNotConfiguredError
from magflow.config import Settings
from magflow.db.engine import session_factory
from magflow.models import EmagSyncLog
from magflow.sync import EmagProductSyncService, SelectiveFilters, SyncAlreadyRunningError, SyncRequestError
from magflow.sync.runs import mark_interrupted, reap_dead_runs, utcnow

log = logging.getLogger("magflow.worker")

# A SIGKILLed process's advisory locks go when PostgreSQL notices the closed socket, normally within
# milliseconds; a redelivered task waits this long for that before deciding the run is alive elsewhere.
LOCK_RELEASE_WAIT_SECONDS = 20.0


@dataclass(frozen=True)
class SyncParams:
    """The parameters of POST /sync (and of the scheduled syncs), as the task message carries them."""

    account_type: str = "both"
    mode: str = "incremental"
    max_pages: int | None = None
    items_per_page: int = 100
    include_inactive: bool = False
    conflict_strategy: str = "emag_priority"
    filters: SelectiveFilters | None = None
    triggered_by: str = "celery"

    @classmethod
    def from_message(cls, params: dict[str, Any]) -> SyncParams:
        # Filters arrive nested under "filters"; the flat form (ids, skus, ... at the top) is accepted too.
        raw = params.get("filters")
        source: dict[str, Any] = raw if isinstance(raw, dict) else params
        filters = SelectiveFilters.from_mapping(source) if params.get("mode") == "selective" else None
        max_pages = params.get("max_pages")
        return cls(
            account_type=str(params.get("account_type") or "both"),
            mode=str(params.get("mode") or "incremental"),
            max_pages=int(max_pages) if max_pages is not None else None,
            items_per_page=int(params.get("items_per_page") or 100),
            include_inactive=bool(params.get("include_inactive", False)),
            conflict_strategy=str(params.get("conflict_strategy") or "emag_priority"),
            filters=filters,
            triggered_by=str(params.get("triggered_by") or "celery")[:64],
        )


def outcome(status: str, sync_id: uuid.UUID | str | None, message: str, **extra: Any) -> dict[str, Any]:
    """The task's return value when the engine did not run (or did not finish) the sync."""
    return {"status": status, "sync_id": str(sync_id) if sync_id else None, "message": message, **extra}


async def run_sync_job(
    engine: AsyncEngine, settings: Settings, sync_id: uuid.UUID | None, params: dict[str, Any]
) -> dict[str, Any]:
    """Run the sync `sync_id` (a row queued by the API), or a new run when `sync_id` is None.

    A task delivered again after its worker died finds its row `running` (the dead run) or `interrupted`:
    the dead run is marked interrupted and a new run with the same parameters resumes from its checkpoint,
    so the history shows both. Raises SyncAlreadyRunningError when the account is busy with another sync.
    """
    wanted = SyncParams.from_message(params)
    adopt = sync_id
    if sync_id is not None:
        state = await _row_status(engine, sync_id)
        if state == "running":
            state = await _wait_until_dead(engine, sync_id)
        if state is None:
            return outcome("not_found", sync_id, f"sync {sync_id} does not exist; nothing to run")
        if state == "running":
            return outcome("already_running", sync_id, f"sync {sync_id} is running in another worker")
        if state == "interrupted":
            log.info("sync %s was interrupted; starting a run that resumes it", sync_id)
            adopt = None
        elif state != "queued":
            return outcome(state, sync_id, f"sync {sync_id} has already finished ({state})")
    try:
        return await _run_service(engine, settings, wanted, adopt)
    except asyncio.CancelledError:
        # The task's soft time limit (or a worker shutdown) stopped the loop: say so in the history now,
        # rather than leaving the run "running" until the next run or the health check notices.
        await _interrupt_own_runs(engine, "the sync was stopped by the task time limit or a worker shutdown")
        raise
    except (SyncRequestError, AccountNotConfiguredError) as exc:
        if sync_id is not None:
            await _fail_queued(engine, sync_id, str(exc))
        return outcome("failed", sync_id, str(exc))


async def _run_service(
    engine: AsyncEngine, settings: Settings, wanted: SyncParams, sync_id: uuid.UUID | None
) -> dict[str, Any]:
    async with (
        session_factory(engine)() as session,
        EmagProductSyncService(
            db=session,
            account_type=wanted.account_type,
            conflict_strategy=wanted.conflict_strategy,
            settings=settings,
            triggered_by=wanted.triggered_by,
        ) as service,
    ):
        return await service.sync_all_products(
            mode=wanted.mode,
            max_pages=wanted.max_pages,
            items_per_page=wanted.items_per_page,
            include_inactive=wanted.include_inactive,
            filters=wanted.filters,
            sync_id=sync_id,
        )


async def _row_status(engine: AsyncEngine, sync_id: uuid.UUID) -> str | None:
    async with session_factory(engine)() as session:
        run = await session.get(EmagSyncLog, sync_id)
        return run.status if run is not None else None


async def _wait_until_dead(engine: AsyncEngine, sync_id: uuid.UUID) -> str | None:
    """The row says running: mark it interrupted if no live process holds its accounts' locks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LOCK_RELEASE_WAIT_SECONDS
    while True:
        async with session_factory(engine)() as session:
            # Zero staleness is safe: a live run holds its accounts' locks for as long as it says running.
            await reap_dead_runs(engine, session, timedelta(0))
            await session.commit()
        state = await _row_status(engine, sync_id)
        if state != "running" or loop.time() >= deadline:
            return state
        await asyncio.sleep(1.0)


async def _interrupt_own_runs(engine: AsyncEngine, reason: str) -> None:
    me = f"{socket.gethostname()}:{os.getpid()}"  # what the service writes into emag_sync_logs.worker
    async with session_factory(engine)() as session:
        mine = (
            await session.scalars(
                select(EmagSyncLog.id).where(EmagSyncLog.status == "running", EmagSyncLog.worker == me)
            )
        ).all()
        for sync_id in mine:
            await mark_interrupted(session, sync_id, reason)
        await session.commit()


async def _fail_queued(engine: AsyncEngine, sync_id: uuid.UUID, message: str) -> None:
    async with session_factory(engine)() as session:
        await session.execute(
            update(EmagSyncLog)
            .where(EmagSyncLog.id == sync_id, EmagSyncLog.status == "queued")
            .values(status="failed", error_message=message[:2000], completed_at=utcnow())
        )
        await session.commit()


def refused(exc: SyncAlreadyRunningError, sync_id: str | None) -> dict[str, Any]:
    running = str(exc.running_sync_id) if exc.running_sync_id else None
    return outcome("refused", sync_id, str(exc), account=exc.account, running_sync_id=running)
