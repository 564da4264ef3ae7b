"""Celery's soft time limit stops a sync cleanly: the run is interrupted and resumable, never 'partial'."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.db.engine import session_factory
from magflow.models import EmagSyncLog, EmagSyncProgress

SCRIPT = """
import os, signal, sys, threading
from celery.exceptions import SoftTimeLimitExceeded
from magflow.emag import AccountConfig, InProcessRateBudget, RateLimits
from magflow.sync import EmagProductSyncService
from magflow.db.engine import session_factory
from magflow.worker.tasks import _run

base = sys.argv[1]
configs = {"main": AccountConfig(account="main", username="sandbox-main", password="sandbox-main-pass", base_url=base)}

async def job(engine):
    async with session_factory(engine)() as db, EmagProductSyncService(
        db=db, account_type="main", account_configs=configs, triggered_by="celery:test",
        budget=InProcessRateBudget(RateLimits(per_second=1000.0, per_minute=60000)),
    ) as svc:
        return await svc.sync_all_products(mode="full", items_per_page=10)

# What billiard does when the soft limit expires: SIGUSR1 to the worker process, mid-sync.
threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGUSR1)).start()
try:
    _run(job)
except SoftTimeLimitExceeded:
    print("soft limit reached")
    sys.exit(0)
print("the sync ignored the soft limit")
sys.exit(1)
"""


async def test_the_soft_limit_interrupts_the_run_resumably(
    sandbox: Any, clean_engine: AsyncEngine, database_url: str
) -> None:
    sandbox.state.faults.set_latency(100)  # 30 pages: longer than the 1 s limit
    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, sandbox.base_url], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    async with session_factory(clean_engine)() as session:
        run = (await session.scalars(select(EmagSyncLog))).one()
        progress = (await session.scalars(select(EmagSyncProgress))).one()
    assert run.status == "interrupted" and run.triggered_by == "celery:test"
    assert progress.status == "interrupted" and progress.checkpoint.get("resumable", True)
    assert 1 < progress.checkpoint["next_page"] < 31
