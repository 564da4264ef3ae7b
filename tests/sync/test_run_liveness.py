"""A run says running only while it owns its accounts: a lost lock stops it, a dead process reads as interrupted
at once, a failed vat/read keeps the computed fields, abandoned seen-sets are cleaned, old checkpoints expire."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

import magflow.sync.service as service_module
from magflow.api.app import create_app
from magflow.config import load_settings
from magflow.db.engine import session_factory
from magflow.emag import AccountConfig, InProcessRateBudget
from magflow.models import EmagProduct, EmagSyncLog, EmagSyncProgress, EmagSyncSeen
from magflow.sandbox.app import SandboxApp
from magflow.sync import EmagProductSyncService
from magflow.sync.locks import ACCOUNT_KEYS, LOCK_NAMESPACE
from magflow.sync.runs import resumable_runs, utcnow
from magflow.sync.transforms import price_with_vat
from magflow.worker.maintenance import cleanup_sync_logs

PER_PAGE = 20


@contextlib.contextmanager
def served(app: Any, lifespan: Literal["on", "off"] = "off") -> Iterator[str]:
    """An ASGI app under uvicorn on a free port in its own thread; yields its root URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan=lifespan))
    thread = threading.Thread(target=asyncio.run, args=(server.serve(sockets=[sock]),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


async def _lock_holder(engine: AsyncEngine, account: str) -> int | None:
    """The backend pid of the connection holding the account's sync lock."""
    async with engine.connect() as conn:
        pid = await conn.scalar(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = :ns "
                "AND objid = :key AND objsubid = 2 "
                # Other test sessions sync in their own databases on the same server at the same time.
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"ns": LOCK_NAMESPACE, "key": ACCOUNT_KEYS[account]},
        )
        return int(pid) if pid is not None else None


async def _kill_lock_connection(engine: AsyncEngine, account: str) -> None:
    """What a restarted PostgreSQL, a failover or a network cut does to the sync's lock connection."""
    pid = await _lock_holder(engine, account)
    assert pid is not None, "nobody holds the lock"
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await conn.commit()
    for _ in range(100):  # the backend goes a moment after the signal
        if await _lock_holder(engine, account) is None:
            return
        await asyncio.sleep(0.02)
    pytest.fail("the lock connection did not go")


async def _run(engine: AsyncEngine, run_id: uuid.UUID | str) -> EmagSyncLog:
    async with session_factory(engine)() as session:
        run = await session.get(EmagSyncLog, uuid.UUID(str(run_id)))
        assert run is not None
        return run


async def _stored_ids(engine: AsyncEngine, account: str) -> set[int]:
    async with session_factory(engine)() as session:
        query = select(EmagProduct.emag_id).where(EmagProduct.account_type == account)
        return set((await session.scalars(query)).all())


async def _only_run(engine: AsyncEngine) -> EmagSyncLog:
    async with session_factory(engine)() as session:
        return (await session.scalars(select(EmagSyncLog))).one()


# -- a run that loses its lock connection ----------------------------------------------------------------------


async def test_a_run_whose_lock_connection_is_killed_stops_writing_and_a_second_sync_takes_over(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    seen: dict[str, Any] = {}

    async def kill_and_sync_again(account: str, progress: dict[str, Any]) -> None:
        if seen or progress["current_page"] < 2:
            return
        await _kill_lock_connection(clean_engine, "main")
        seen["pages_at_kill"] = (await _only_run(clean_engine)).pages_processed
        # The account is free again: a second sync is accepted, and runs while the first still believes it owns it.
        seen["second"] = await run_sync(account="main", mode="full", items_per_page=PER_PAGE)

    first = await run_sync(
        account="main", mode="full", items_per_page=PER_PAGE, service={"on_progress": kill_and_sync_again}
    )

    second = seen["second"]
    assert second["status"] == "completed", second["error_message"]
    assert first["status"] == "interrupted"
    assert "lost its database lock" in first["error_message"] and "magflow resume" in first["error_message"]
    stored_first = await _run(clean_engine, first["sync_id"])
    assert stored_first.status == "interrupted"  # never completed, even after the second sync finished
    assert stored_first.pages_processed == seen["pages_at_kill"]  # not one page written after the kill
    assert await _stored_ids(clean_engine, "main") == {p["id"] for p in sandbox.state.truth("main")}


async def test_the_heartbeat_notices_a_dead_lock_connection_and_marks_the_run_interrupted(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "HEARTBEAT_SECONDS", 0.05)
    statuses: list[str] = []

    async def kill_then_wait(account: str, progress: dict[str, Any]) -> None:
        if statuses or progress["current_page"] < 2:
            return
        await _kill_lock_connection(clean_engine, "main")
        # The writer waits here, so only the heartbeat can notice.
        for _ in range(200):
            statuses.append((await _only_run(clean_engine)).status)
            if statuses[-1] != "running":
                return
            await asyncio.sleep(0.05)

    result = await run_sync(
        account="main", mode="full", items_per_page=PER_PAGE, service={"on_progress": kill_then_wait}
    )
    assert statuses[-1] == "interrupted"
    assert result["status"] == "interrupted"
    run = await _run(clean_engine, result["sync_id"])
    assert run.status == "interrupted" and "lost its database lock" in (run.error_message or "")


# -- a process killed with SIGKILL -----------------------------------------------------------------------------


def _magflow_env(database_url: str, sandbox: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAG_", "REDIS_URL", "CELERY_", "MAGFLOW_"))}
    env.update(DATABASE_URL=database_url, COLUMNS="200", EMAG_RATE_LIMIT_PER_SECOND="100")
    env.update(EMAG_RATE_LIMIT_PER_MINUTE="6000", EMAG_MAX_ATTEMPTS="2")
    for account, (user, password) in sandbox.accounts.items():
        upper = account.upper()
        env.update({f"EMAG_{upper}_USERNAME": user, f"EMAG_{upper}_PASSWORD": password})
        env[f"EMAG_{upper}_BASE_URL"] = sandbox.base_url
    return env


def _magflow(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "magflow", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


async def _sigkill_a_sync(sandbox: Any, engine: AsyncEngine, env: dict[str, str], cwd: Path) -> EmagSyncLog:
    """`magflow sync` of both accounts, killed with SIGKILL in the middle of its scan."""
    sandbox.state.faults.set_latency(150)
    args = ["sync", "--account", "both", "--mode", "full", "--items-per-page", str(PER_PAGE)]
    proc = subprocess.Popen([sys.executable, "-m", "magflow", *args], env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    try:
        for _ in range(600):
            await asyncio.sleep(0.1)
            async with session_factory(engine)() as session:
                page = await session.scalar(
                    select(func.min(EmagSyncProgress.current_page)).where(EmagSyncProgress.status == "running")
                )
            if page is not None and page >= 3:
                break
        else:
            pytest.fail("the doomed sync never got going")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    sandbox.state.faults.clear()
    for _ in range(100):  # PostgreSQL drops the dead process's locks when it sees the socket close
        if await _lock_holder(engine, "main") is None and await _lock_holder(engine, "fbe") is None:
            break
        await asyncio.sleep(0.05)
    run = await _only_run(engine)
    assert run.status == "running"  # what the dead process left behind
    return run


async def test_after_sigkill_magflow_status_shows_the_run_interrupted_and_resume_continues_it(
    sandbox: Any, clean_engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    env = _magflow_env(database_url, sandbox)
    dead = await _sigkill_a_sync(sandbox, clean_engine, env, tmp_path)

    status = _magflow(["status"], env, tmp_path)
    assert status.returncode == 0, status.stderr
    assert "no product sync is running" in status.stdout
    assert "ETA" not in status.stdout
    assert str(dead.id)[:8] in status.stdout and "interrupted" in status.stdout

    resumed = _magflow(["resume"], env, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "nothing to resume" not in resumed.stdout
    assert "resuming the full sync of main from page" in resumed.stdout
    assert "resuming the full sync of fbe from page" in resumed.stdout
    assert (await _run(clean_engine, dead.id)).status == "interrupted"


async def test_after_sigkill_magflow_resume_right_away_continues_the_run(
    sandbox: Any, clean_engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    env = _magflow_env(database_url, sandbox)
    dead = await _sigkill_a_sync(sandbox, clean_engine, env, tmp_path)

    resumed = _magflow(["resume"], env, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "nothing to resume" not in resumed.stdout
    assert "resuming the full sync of main from page" in resumed.stdout
    async with session_factory(clean_engine)() as session:
        runs = (await session.scalars(select(EmagSyncLog).order_by(EmagSyncLog.started_at))).all()
    assert runs[0].id == dead.id and runs[0].status == "interrupted"
    assert {r.resumed_from for r in runs[1:]} == {dead.id}
    for account in ("main", "fbe"):
        assert await _stored_ids(clean_engine, account) == {p["id"] for p in sandbox.state.truth(account)}


async def test_after_sigkill_the_api_and_metrics_do_not_count_the_dead_run_as_running(
    sandbox: Any, clean_engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    env = _magflow_env(database_url, sandbox)
    dead = await _sigkill_a_sync(sandbox, clean_engine, env, tmp_path)
    settings = load_settings(
        _env_file=None,
        database_url=database_url,
        redis_url=None,
        celery_broker_url=None,
        magflow_api_allow_local_reads=True,
        emag_main_username="",
        emag_fbe_username="",
        log_file=tmp_path / "api.log",
    )
    with served(create_app(settings), lifespan="on") as root:
        async with httpx.AsyncClient(base_url=root, timeout=30) as http:
            # /metrics only reads: it must not count the dead run even before anyone marks it.
            metrics = (await http.get("/metrics")).text
            running = [line for line in metrics.splitlines() if line.startswith("magflow_sync_running{")]
            assert running == [] or all(line.endswith(" 0.0") for line in running), running
            assert not [line for line in metrics.splitlines() if line.startswith("magflow_sync_progress_ratio{")]

            history = (await http.get("/api/v1/emag/products/history")).json()
            assert [(i["id"], i["status"]) for i in history["items"]] == [(str(dead.id), "interrupted")]

            status = (await http.get("/api/v1/emag/products/status")).json()
            assert status["is_running"] is False and status["active_syncs"] == []


# -- vat/read failing ------------------------------------------------------------------------------------------


class VatReadDown:
    """The sandbox, except that vat/read answers 500 (the sandbox injects faults on product_offer/read only)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith("/vat/read"):
            while (await receive()).get("more_body"):
                pass
            await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/html")]})
            await send({"type": "http.response.body", "body": b"<html><body>Internal Server Error</body></html>"})
            return
        await self.inner(scope, receive, send)


async def _computed(engine: AsyncEngine, account: str) -> dict[int, dict[str, Any]]:
    async with session_factory(engine)() as session:
        rows = (
            await session.execute(
                select(EmagProduct.emag_id, EmagProduct.computed_fields).where(EmagProduct.account_type == account)
            )
        ).all()
        return {emag_id: dict(fields or {}) for emag_id, fields in rows}


async def test_a_failed_vat_read_keeps_the_computed_fields_and_the_run_is_not_completed(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine, fast_budget: InProcessRateBudget
) -> None:
    first = await run_sync(account="main", mode="full", service={"transform": price_with_vat})
    assert first["status"] == "completed"
    before = await _computed(clean_engine, "main")
    assert sum("sale_price_with_vat" in fields for fields in before.values()) > 100
    changed = sandbox.state.mutate("main", 40, fields=("sale_price",))

    with served(VatReadDown(SandboxApp(sandbox.state))) as root:
        user, password = sandbox.accounts["main"]
        config = AccountConfig(
            account="main", username=user, password=password, base_url=f"{root}/api-3", max_attempts=1
        )
        async with (
            session_factory(clean_engine)() as db,
            EmagProductSyncService(
                db=db,
                account_type="main",
                account_configs={"main": config},
                budget=fast_budget,
                transform=price_with_vat,
            ) as svc,
        ):
            result = await svc.sync_all_products(mode="full")

    assert result["status"] == "failed"
    assert "vat/read" in result["error_message"] and "MAGFLOW_TRANSFORM_HOOK" in result["error_message"]
    assert await _computed(clean_engine, "main") == before  # no product lost its computed fields
    assert changed  # and the changed offers wait, unwritten, for the next run that can compute them
    run = await _run(clean_engine, result["sync_id"])
    assert run.status == "failed" and "vat/read" in (run.error_message or "")


# -- seen-sets of abandoned scans -------------------------------------------------------------------------------


async def _add_run(engine: AsyncEngine, account: str, status: str, checkpoint: dict[str, Any]) -> None:
    async with session_factory(engine)() as session:
        run = EmagSyncLog(account_type=account, operation="full_sync", mode="full", status=status)
        session.add(run)
        await session.flush()
        session.add(
            EmagSyncProgress(sync_id=run.id, account_type=account, mode="full", status=status, checkpoint=checkpoint)
        )
        await session.commit()


async def _add_seen(engine: AsyncEngine, account: str, scan_id: uuid.UUID, age: timedelta) -> None:
    async with session_factory(engine)() as session:
        session.add_all(
            EmagSyncSeen(scan_id=scan_id, account_type=account, emag_id=i, seen_at=utcnow() - age) for i in range(3)
        )
        await session.commit()


async def _seen_scans(engine: AsyncEngine) -> set[uuid.UUID]:
    async with session_factory(engine)() as session:
        return set((await session.scalars(select(EmagSyncSeen.scan_id).distinct())).all())


async def test_the_cleanup_removes_old_seen_sets_that_no_running_or_resumable_checkpoint_names(
    clean_engine: AsyncEngine,
) -> None:
    scans = {name: uuid.uuid4() for name in ("resumable", "listed", "running", "finished", "resumed", "lost", "young")}
    await _add_run(clean_engine, "main", "interrupted", {"scan_id": str(scans["resumable"]), "resumable": True})
    await _add_run(clean_engine, "fbe", "partial", {"scan_ids": [str(scans["listed"]), str(uuid.uuid4())]})
    await _add_run(clean_engine, "fbe", "running", {"scan_id": str(scans["running"])})
    await _add_run(clean_engine, "main", "completed", {"scan_id": str(scans["finished"]), "resumable": False})
    await _add_run(clean_engine, "main", "interrupted", {"scan_id": str(scans["resumed"]), "resumed_by": "x"})
    for name, scan_id in scans.items():
        await _add_seen(clean_engine, "main", scan_id, timedelta(minutes=5) if name == "young" else timedelta(days=2))

    result = await cleanup_sync_logs(clean_engine, retention_days=30)

    assert await _seen_scans(clean_engine) == {scans[n] for n in ("resumable", "listed", "running", "young")}
    assert result["deleted_seen_rows"] == 3 * 3


async def test_a_full_sync_starts_by_removing_abandoned_seen_sets(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine
) -> None:
    kept, abandoned = uuid.uuid4(), uuid.uuid4()
    await _add_run(clean_engine, "fbe", "interrupted", {"scan_id": str(kept), "resumable": True})
    await _add_seen(clean_engine, "fbe", kept, timedelta(days=2))
    await _add_seen(clean_engine, "main", abandoned, timedelta(days=2))

    result = await run_sync(account="main", mode="full")

    assert result["status"] == "completed"
    assert await _seen_scans(clean_engine) == {kept}


# -- the age limit of a checkpoint ------------------------------------------------------------------------------


async def test_a_checkpoint_older_than_the_age_limit_is_not_resumed_and_the_log_says_why(
    sandbox: Any, run_sync: Any, clean_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.state.faults.inject("500", count=50, page=3)
    broken = await run_sync(account="main", mode="full", items_per_page=PER_PAGE, config={"max_attempts": 2})
    assert broken["status"] == "partial"
    sandbox.state.faults.clear()
    async with session_factory(clean_engine)() as session:
        await session.execute(update(EmagSyncProgress).values(updated_at=utcnow() - timedelta(hours=25)))
        await session.commit()
        assert await resumable_runs(session) == []  # `magflow resume` does not offer it either

    with caplog.at_level(logging.WARNING, logger="magflow.sync"):
        result = await run_sync(account="main", mode="full", items_per_page=PER_PAGE)

    assert result["status"] == "completed"
    assert result["accounts"]["main"]["resumed_from"] is None
    assert "MAGFLOW_RESUME_MAX_AGE_HOURS=24" in caplog.text and "starting from page 1" in caplog.text
    assert result["total_processed"] == len(sandbox.state.truth("main"))  # read again from page 1
