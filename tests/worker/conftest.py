"""Real `celery worker` processes (two, prefork with one child each) against a real Redis and the sandbox.

The workers, their Redis database and their sandbox live for the whole session (starting workers takes
seconds); each test starts from empty tables, a fresh sandbox world and an empty queue.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio
import redis
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.sandbox import SANDBOX_ACCOUNTS, SandboxServer, SandboxState
from magflow.testing.database import REDIS_URL
from magflow.worker import app

CELERY = str(Path(sys.executable).with_name("celery"))
CLAIM_KEY = "magflow-worker-tests:claim"
PRODUCTS = 300
RATE_PER_SECOND = 10
RATE_PER_MINUTE = 600


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def children(self) -> list[int]:
        try:
            return [c.pid for c in psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Workers:
    workers: list[Worker]
    redis_url: str
    sandbox: SandboxServer

    def owns(self, pid: int) -> bool:
        return any(pid in w.children() for w in self.workers)

    def logs(self) -> str:
        return "\n".join(f"--- {w.name} ---\n{w.tail()}" for w in self.workers)


@pytest.fixture(scope="session")
def worker_redis_url() -> Iterator[str]:
    """A Redis database of this session's own (broker, results and rate budget), emptied afterwards."""
    base = redis.Redis.from_url(REDIS_URL)
    try:
        base.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {REDIS_URL} is not reachable ({exc})")
    finally:
        base.close()
    for db in range(15, 7, -1):
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
        if client.dbsize() == 0 and client.set(CLAIM_KEY, os.getpid(), nx=True, ex=3600):
            break
        client.close()
    else:
        pytest.fail("no free Redis database among 8-15 for the worker tests")
    url = f"redis://127.0.0.1:6379/{db}"
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def worker_sandbox() -> Iterator[SandboxServer]:
    state = SandboxState(products_per_account=PRODUCTS, seed=3, rate_per_second=None, rate_per_minute=None)
    server = SandboxServer(state)
    server.start()
    yield server
    server.stop()


def worker_env(database_url: str, redis_url: str, sandbox: SandboxServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAG_", "CELERY_", "MAGFLOW_"))}
    for account, (user, password) in SANDBOX_ACCOUNTS.items():
        prefix = f"EMAG_{account.upper()}"
        env.update({f"{prefix}_USERNAME": user, f"{prefix}_PASSWORD": password, f"{prefix}_BASE_URL": sandbox.base_url})
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        EMAG_RATE_LIMIT_PER_SECOND=str(RATE_PER_SECOND),
        EMAG_RATE_LIMIT_PER_MINUTE=str(RATE_PER_MINUTE),
        EMAG_REQUEST_TIMEOUT_SECONDS="10",
        PYTHONWARNINGS="ignore",
        **extra,
    )
    return env


def _start(name: str, env: dict[str, str], workdir: Path, beat: bool) -> Worker:
    log = workdir / f"{name}.log"
    args = [CELERY, "-A", "magflow.worker", "worker", "--loglevel=info", "-n", f"{name}@%h"]
    args += ["--pool=prefork", "--concurrency=1", "--without-gossip", "--without-mingle"]
    if beat:
        args += ["--beat", "-s", str(workdir / "celerybeat-schedule")]
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Worker(name, process, log)


def _stop(worker: Worker) -> None:
    if worker.process.poll() is None:
        try:
            worker.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.process.pid, signal.SIGKILL)
            worker.process.wait(timeout=10)
    for pid in worker.children():  # a pool child orphaned by a cold shutdown
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def workers(
    database_url: str, worker_redis_url: str, worker_sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    """Two workers; the first also runs beat, as `celery -A magflow.worker worker --beat` does."""
    workdir = tmp_path_factory.mktemp("workers")
    env = worker_env(database_url, worker_redis_url, worker_sandbox)
    started = [_start("w1", env, workdir, beat=True), _start("w2", env, workdir, beat=False)]
    pool = Workers(started, worker_redis_url, worker_sandbox)
    try:
        deadline = time.monotonic() + 60
        while not all(" ready." in w.tail(200) for w in started):
            if time.monotonic() > deadline or any(w.process.poll() is not None for w in started):
                pytest.fail(f"the workers did not start:\n{pool.logs()}")
            time.sleep(0.2)
        # This process sends tasks to the workers' broker, as the API does with the same settings.
        app.conf.update(broker_url=worker_redis_url, result_backend=worker_redis_url)
        yield pool
    finally:
        for worker in started:  # warm shutdown of all at once, then wait for each
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in started:
            _stop(worker)


@pytest_asyncio.fixture
async def world(workers: Workers, clean_engine: AsyncEngine) -> Workers:
    """Empty tables, an empty queue and budget, and a fresh sandbox world with zero counters."""
    client = redis.Redis.from_url(workers.redis_url)
    for key in client.scan_iter("magflow:*"):
        client.delete(key)
    client.delete("celery")
    client.close()
    workers.sandbox.state.reset(seed=3, products_per_account=PRODUCTS)
    return workers


async def eventually(check: Callable[[], Awaitable[Any]], within: float, what: str, workers: Workers) -> Any:
    """Poll `check` until it returns something truthy; fail with the workers' logs after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{workers.logs()}")
        await asyncio.sleep(0.2)
