"""Thin Celery tasks: take ids and parameters, run a job from `jobs`/`maintenance` with `asyncio.run`.

`run_sync.delay(sync_id, params)` is how the REST API runs `run_async` syncs when a broker is configured.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.accounts import configured_accounts
from magflow.config import get_settings
from magflow.db.engine import dispose_engine, get_engine
from magflow.sync import SyncAlreadyRunningError
from magflow.worker import jobs, maintenance
from magflow.worker.celery_app import app

log = logging.getLogger("magflow.worker")

T = TypeVar("T")
BEAT = "celery:beat"
ERROR_RETRIES = 5
# A scheduled full sync that finds the account busy (an incremental or API sync running) tries again every
# few minutes for an hour, instead of skipping the day's only full scan.
BUSY_RETRIES = 12
BUSY_RETRY_SECONDS = 300


def task(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    decorator: Callable[[Callable[..., Any]], Any] = app.task(**options)
    return decorator


def _soft_limit_cancels(task: asyncio.Task[Any]) -> Callable[[], None]:
    """Turn Celery's soft time limit (SIGUSR1 in a prefork child) into a cancellation of the job's task.

    Billiard raises SoftTimeLimitExceeded at whatever line runs when the signal lands: inside the sync that can
    be swallowed by a retry or read as an internal error. A cancellation reaches the sync at an await, where
    it marks the run interrupted and resumable. Returns the function that puts billiard's handler back."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGUSR1"):
        return lambda: None  # solo/threads pools: keep Celery's own behaviour
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGUSR1)
    loop.add_signal_handler(signal.SIGUSR1, task.cancel)

    def restore() -> None:
        loop.remove_signal_handler(signal.SIGUSR1)
        signal.signal(signal.SIGUSR1, previous)

    return restore


def _run(job: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run a job on a fresh event loop and close the engine's connections before the loop goes away."""

    async def main() -> T:
        current = asyncio.current_task()
        assert current is not None
        restore = _soft_limit_cancels(current)
        try:
            return await job(get_engine())
        finally:
            restore()
            await dispose_engine()

    try:
        return asyncio.run(main())
    except asyncio.CancelledError as exc:  # only the soft time limit cancels the job's task
        raise SoftTimeLimitExceeded() from exc


def _error_countdown(retries: int) -> int:
    return int(min(30 * 2**retries, 600))


@task(bind=True, name="magflow.worker.tasks.run_sync", max_retries=ERROR_RETRIES)
def run_sync(self: Any, sync_id: str | None, params: dict[str, Any], retry_when_busy: bool = False) -> dict[str, Any]:
    """Run one product sync: the queued run `sync_id` (from the API), or a new run when it is None.

    A retry (after an error, or redelivered after the worker died) resumes from the last checkpoint.
    """
    settings = get_settings()
    run_id = uuid.UUID(sync_id) if sync_id else None
    try:
        return _run(lambda engine: jobs.run_sync_job(engine, settings, run_id, params))
    except SyncAlreadyRunningError as exc:
        if retry_when_busy and self.request.retries < BUSY_RETRIES:
            log.info("%s; trying again in %d s", exc, BUSY_RETRY_SECONDS)
            raise self.retry(countdown=BUSY_RETRY_SECONDS, max_retries=BUSY_RETRIES) from exc
        log.info("sync not started: %s", exc)
        return jobs.refused(exc, sync_id)
    except SoftTimeLimitExceeded:
        log.error("sync %s exceeded the task time limit; the next run resumes it", sync_id or params)
        return jobs.outcome("timed_out", sync_id, "the sync exceeded the task time limit; the next run resumes it")
    except Exception as exc:
        log.exception("sync %s failed; retrying", sync_id or params)
        raise self.retry(exc=exc, countdown=_error_countdown(self.request.retries)) from exc


def _dispatch_per_account(mode: str, retry_when_busy: bool, **params: Any) -> dict[str, Any]:
    """One run per configured account, so a busy account does not hold back the other."""
    accounts = list(configured_accounts(get_settings()))
    if not accounts:
        message = "no eMAG account is configured (EMAG_MAIN_USERNAME/PASSWORD, EMAG_FBE_USERNAME/PASSWORD)"
        log.warning("scheduled %s sync skipped: %s", mode, message)
        return jobs.outcome("skipped", None, message)
    dispatched = {}
    for account in accounts:
        run_params = {"account_type": account, "mode": mode, "triggered_by": BEAT, **params}
        result = run_sync.apply_async(args=(None, run_params), kwargs={"retry_when_busy": retry_when_busy})
        dispatched[account] = result.id
    return {"status": "dispatched", "mode": mode, "tasks": dispatched}


@task(name="magflow.worker.tasks.scheduled_incremental_sync")
def scheduled_incremental_sync(max_pages: int = 10, items_per_page: int = 100) -> dict[str, Any]:
    """The hourly incremental sync; skipped for an account that is busy (the running sync covers it)."""
    return _dispatch_per_account(
        "incremental", retry_when_busy=False, max_pages=max_pages, items_per_page=items_per_page
    )


@task(name="magflow.worker.tasks.scheduled_full_sync")
def scheduled_full_sync(items_per_page: int = 100) -> dict[str, Any]:
    """The nightly full sync (every page; finds products deleted on eMAG)."""
    return _dispatch_per_account("full", retry_when_busy=True, items_per_page=items_per_page)


@task(name="magflow.worker.tasks.cleanup_sync_logs")
def cleanup_sync_logs(retention_days: int | None = None) -> dict[str, Any]:
    days = retention_days or get_settings().emag_main_log_retention
    return _run(lambda engine: maintenance.cleanup_sync_logs(engine, days))


@task(name="magflow.worker.tasks.health_check")
def health_check() -> dict[str, Any]:
    settings = get_settings()
    return _run(lambda engine: maintenance.health_check(engine, settings))
