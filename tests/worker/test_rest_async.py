"""`run_async` syncs from the REST API go through Celery when a broker is configured."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.api.auth import create_token
from magflow.db.engine import session_factory

from .conftest import Workers, worker_env
from .helpers import assert_matches_sandbox

PREFIX = "/api/v1/emag/products"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ApiProcess:
    url: str
    log: Path

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


@pytest.fixture(scope="module")
def api(workers: Workers, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The API server as its own process, configured like the workers (same database, same Redis)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("api") / "api.log"
    env = worker_env(database_url, workers.redis_url, workers.sandbox)
    args = [sys.executable, "-m", "uvicorn", "magflow.api.app:create_app", "--factory", "--port", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/docs", timeout=1)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the API server did not start:\n{log.read_text()}")
                time.sleep(0.2)
        yield ApiProcess(url, log)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest_asyncio.fixture
async def http(api: ApiProcess, world: Workers, clean_engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with session_factory(clean_engine)() as session:
        token = await create_token(session, "worker-test", "sync")
        await session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api.url + PREFIX, headers=headers, timeout=30) as client:
        yield client


async def _wait_finished(http: httpx.AsyncClient, sync_id: str, world: Workers) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        run: dict[str, Any] = (await http.get(f"/sync/{sync_id}")).json()
        if run["status"] not in ("queued", "running"):
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"sync {sync_id} still {run['status']}\n{world.logs()}")
        await asyncio.sleep(0.2)


async def test_an_async_sync_requested_over_rest_completes_through_a_worker(
    http: httpx.AsyncClient, api: ApiProcess, world: Workers, clean_engine: AsyncEngine
) -> None:
    accepted = await http.post("/sync", json={"account_type": "both", "mode": "full", "run_async": True})
    assert accepted.status_code == 202, f"{accepted.text}\n{api.tail()}"
    data = accepted.json()["data"]
    assert data["dispatched_to"] == "celery"

    run = await _wait_finished(http, data["sync_id"], world)
    assert run["status"] == "completed", run
    for account in ("main", "fbe"):
        await assert_matches_sandbox(world.sandbox.state, clean_engine, account)

    history = (await http.get("/history", params={"limit": 5})).json()["items"]
    assert [(r["id"], r["triggered_by"]) for r in history] == [(data["sync_id"], "api:worker-test")]


async def test_a_selective_async_sync_reads_only_the_requested_offers(
    http: httpx.AsyncClient, api: ApiProcess, world: Workers, clean_engine: AsyncEngine
) -> None:
    wanted = [p["id"] for p in world.sandbox.state.truth("main")[:3]]
    accepted = await http.post(
        "/sync", json={"account_type": "main", "mode": "selective", "ids": wanted, "run_async": True}
    )
    assert accepted.status_code == 202, f"{accepted.text}\n{api.tail()}"
    run = await _wait_finished(http, accepted.json()["data"]["sync_id"], world)
    assert run["status"] == "completed", run
    products = (await http.get("/products", params={"account_type": "main", "limit": 100})).json()["items"]
    assert sorted(p["emag_id"] for p in products) == sorted(wanted)
