"""The API served by uvicorn on a real socket (its own thread and event loop) over the test database and the
sandbox; tests talk to it over HTTP only, as curl does."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.api.app import create_app
from magflow.api.auth import create_token
from magflow.config import Settings, load_settings
from magflow.db.engine import session_factory
from magflow.sandbox import SANDBOX_ACCOUNTS, SandboxServer

PREFIX = "/api/v1/emag/products"


class ApiServer:
    """`create_app(settings)` under uvicorn in a background thread; the app opens its own engine there."""

    def __init__(self, settings: Settings, env: dict[str, str] | None = None) -> None:
        saved = {k: os.environ.get(k) for k in env or {}}
        os.environ.update(env or {})
        try:
            app = create_app(settings)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._server.serve(sockets=[self._socket]),), daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._socket.close()


def api_settings(database_url: str, sandbox_base_url: str | None, **overrides: Any) -> Settings:
    """Settings for a test server: the test database, both sandbox logins, no broker, no rate limit."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": None,
        "celery_broker_url": None,
        "emag_rate_limit_per_second": 100.0,
        "emag_rate_limit_per_minute": 6000,
        "emag_max_attempts": 3,
        "emag_request_timeout_seconds": 10.0,
        "magflow_transform_hook": None,
    }
    if sandbox_base_url is not None:
        for account, (user, password) in SANDBOX_ACCOUNTS.items():
            values[f"emag_{account}_username"] = user
            values[f"emag_{account}_password"] = password
            values[f"emag_{account}_base_url"] = sandbox_base_url
    else:
        for account in SANDBOX_ACCOUNTS:
            values[f"emag_{account}_username"] = ""
            values[f"emag_{account}_password"] = ""
    return load_settings(**{**values, **overrides})


@pytest.fixture(scope="session")
def api_server(database_url: str, sandbox_server: SandboxServer) -> Iterator[ApiServer]:
    server = ApiServer(api_settings(database_url, sandbox_server.base_url))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_api(database_url: str) -> Iterator[Callable[..., ApiServer]]:
    """start_api(sandbox_base_url or None, env={...}, **settings) -> a dedicated server, stopped afterwards."""
    servers: list[ApiServer] = []

    def start(sandbox_base_url: str | None, env: dict[str, str] | None = None, **overrides: Any) -> ApiServer:
        server = ApiServer(api_settings(database_url, sandbox_base_url, **overrides), env=env)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


async def make_tokens(engine: AsyncEngine) -> dict[str, str]:
    async with session_factory(engine)() as session:
        tokens = {scope: await create_token(session, f"test-{scope}", scope) for scope in ("read", "sync", "admin")}
        await session.commit()
    return tokens


@dataclass
class Api:
    base_url: str
    tokens: dict[str, str]
    engine: AsyncEngine

    def client(self, scope: str | None = "admin", **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[scope]}"} if scope else {}
        return httpx.AsyncClient(base_url=self.base_url + PREFIX, headers=headers, timeout=60, **kwargs)

    async def wait_finished(self, sync_id: str, within: float = 60) -> dict[str, Any]:
        """Poll GET /sync/{id} until the sync is no longer queued or running."""
        deadline = time.monotonic() + within
        async with self.client("read") as http:
            while True:
                run: dict[str, Any] = (await http.get(f"/sync/{sync_id}")).json()
                if run["status"] not in ("queued", "running"):
                    return run
                assert time.monotonic() < deadline, f"sync {sync_id} still {run['status']} after {within}s"
                await asyncio.sleep(0.1)


@pytest_asyncio.fixture
async def api(api_server: ApiServer, sandbox: Any, clean_engine: AsyncEngine) -> AsyncIterator[Api]:
    """The shared API server over empty tables and a reset sandbox, with a token of each scope."""
    handle = Api(api_server.base_url, await make_tokens(clean_engine), clean_engine)
    yield handle
    # Leave no sync running into the next test (it would hold rows the next TRUNCATE needs).
    async with handle.client("admin") as http:
        for _ in range(300):
            if not (await http.get("/status")).json()["is_running"]:
                break
            await asyncio.sleep(0.1)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape: {"error", "detail"} (+ "fields" on 422), no stack trace, JSON."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) - {"fields", "running_sync_id"} == {"error", "detail"}, body
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    if code is not None:
        assert body["error"] == code, body
    return body
