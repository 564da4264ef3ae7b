"""Running a queued sync: on Celery when a broker is configured, otherwise as a task of the server process.

The sync row is created (status `queued`) before dispatch, so its id can be answered at once; whoever runs it
calls `execute_queued_sync`, which adopts that row. The Celery issue implements `magflow.worker.tasks.run_sync`
as a thin task: `run_sync.delay(sync_id: str, params: dict)` -> `execute_queued_sync(engine, settings, ...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import uuid
from typing import Any, Literal

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.accounts import AccountNotConfiguredError
from magflow.config import Settings
from magflow.db.engine import session_factory
from magflow.models import EmagSyncLog
from magflow.sync import EmagProductSyncService, SelectiveFilters, SyncAlreadyRunningError, SyncRequestError
from magflow.sync.runs import mark_interrupted, utcnow

log = logging.getLogger("magflow.api")

Target = Literal["celery", "server"]


class SyncNotQueuedError(Exception):
    """The row is no longer queued (cancelled, or already taken by another worker): nothing to run."""


def selective_filters(params: dict[str, Any]) -> SelectiveFilters | None:
    if params.get("mode") != "selective":
        return None
    return SelectiveFilters.from_mapping(params)


async def execute_queued_sync(
    engine: AsyncEngine, settings: Settings, sync_id: uuid.UUID, params: dict[str, Any]
) -> dict[str, Any]:
    """Run the queued sync `sync_id` with the POST /sync parameters `params`; returns the engine's result.

    Raises what the engine raises (SyncAlreadyRunningError, SyncRequestError, AccountNotConfiguredError) and
    SyncNotQueuedError when the row was cancelled or taken before it started.
    """
    sessions = session_factory(engine)
    async with sessions() as session:
        run = await session.get(EmagSyncLog, sync_id)
        if run is None or run.status != "queued":
            raise SyncNotQueuedError(f"sync {sync_id} is {run.status if run else 'gone'}; not starting it")
    async with (
        sessions() as session,
        EmagProductSyncService(
            db=session,
            account_type=params.get("account_type", "both"),
            conflict_strategy=params.get("conflict_strategy", "emag_priority"),
            settings=settings,
            triggered_by=str(params.get("triggered_by", "api"))[:64],
        ) as service,
    ):
        return await service.sync_all_products(
            mode=params.get("mode", "incremental"),
            max_pages=params.get("max_pages"),
            items_per_page=int(params.get("items_per_page", 100)),
            include_inactive=bool(params.get("include_inactive", False)),
            filters=selective_filters(params),
            sync_id=sync_id,
        )


async def fail_queued(engine: AsyncEngine, sync_id: uuid.UUID, message: str) -> None:
    """Record why a sync did not run (or stopped) when the engine could not record it itself."""
    async with session_factory(engine)() as session:
        now = utcnow()
        await session.execute(
            update(EmagSyncLog)
            .where(EmagSyncLog.id == sync_id, EmagSyncLog.status.in_(("queued", "running")))
            .values(status="failed", error_message=message[:2000], completed_at=now)
        )
        await session.commit()


class SyncDispatcher:
    """Sends queued syncs to Celery when a broker is configured and the worker package provides `run_sync`,
    else runs them as asyncio tasks of this server (interrupted, resumable, if the server stops)."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}

    def _celery_task(self) -> Any | None:
        if not self.settings.broker_url:
            return None
        try:
            tasks = importlib.import_module("magflow.worker.tasks")
        except ImportError:
            return None
        return getattr(tasks, "run_sync", None)

    async def dispatch(self, sync_id: uuid.UUID, params: dict[str, Any]) -> Target:
        task = self._celery_task()
        if task is not None:
            try:
                await asyncio.to_thread(task.delay, str(sync_id), params)
                return "celery"
            except Exception as exc:  # the broker is down: the sync still runs, here
                log.warning("Celery broker unavailable (%s); running sync %s in the server", exc, sync_id)
        self._tasks[sync_id] = asyncio.create_task(self._run(sync_id, params), name=f"magflow-sync-{sync_id}")
        return "server"

    async def _run(self, sync_id: uuid.UUID, params: dict[str, Any]) -> None:
        try:
            result = await execute_queued_sync(self.engine, self.settings, sync_id, params)
            log.info("background sync %s finished: %s", sync_id, result["status"])
        except SyncNotQueuedError as exc:
            log.info("%s", exc)
        except SyncAlreadyRunningError as exc:
            log.info("background sync %s not started: %s", sync_id, exc)  # the engine recorded it
        except (SyncRequestError, AccountNotConfiguredError) as exc:
            await fail_queued(self.engine, sync_id, str(exc))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                async with session_factory(self.engine)() as session:
                    await mark_interrupted(session, sync_id, "the API server stopped while this sync ran")
                    await session.commit()
            raise
        except Exception as exc:
            log.exception("background sync %s failed", sync_id)
            await fail_queued(self.engine, sync_id, f"internal error: {type(exc).__name__}")
        finally:
            self._tasks.pop(sync_id, None)

    def running(self) -> list[uuid.UUID]:
        return list(self._tasks)

    async def shutdown(self) -> None:
        """Stop in-process syncs; each is marked interrupted and a later sync resumes from its checkpoint."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
