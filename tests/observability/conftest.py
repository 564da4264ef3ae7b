from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from magflow.config import Settings, load_settings
from magflow.db.engine import create_engine
from magflow.observability.metrics import configure_metrics, flush_metrics
from magflow.observability.routes import router

CLOSED_PORT_URL = "postgresql://postgres@127.0.0.1:1/magflow"
# /metrics and the full /health/ready need a token: the one Prometheus is given (MAGFLOW_METRICS_TOKEN).
METRICS_TOKEN = "test-metrics-token-0123456789abcdef"


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings from these values only (no .env, no stray environment for what is given)."""
    values: dict[str, Any] = {
        "log_file": tmp_path / "logs" / "emag_sync.log",
        "emag_main_username": "",
        "emag_fbe_username": "",
        "redis_url": None,
        "celery_broker_url": None,
        "magflow_metrics_token": METRICS_TOKEN,
        **overrides,
    }
    return load_settings(_env_file=None, **values)


class ServedApp:
    """The monitoring router in a real uvicorn server on a free port, with its own event loop and engine."""

    def __init__(self, database_url: str, settings: Settings) -> None:
        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            engine = create_engine(database_url, pool_size=2)
            app.state.magflow = SimpleNamespace(engine=engine, settings=settings)
            yield
            await engine.dispose()

        app = FastAPI(lifespan=lifespan)
        app.include_router(router)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._server.serve(sockets=[self._socket]),), daemon=True
        )

    def start(self) -> ServedApp:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "the app did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()

    async def get(self, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        async with httpx.AsyncClient(base_url=self.url, timeout=20, headers=headers) as client:
            return await client.get(path)

    async def metrics(self) -> Metrics:
        response = await self.get("/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return Metrics(response.text)


class Metrics:
    """A parsed /metrics page: value(name, **labels) sums the samples whose labels include those given."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for f in text_string_to_metric_families(text) for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        return sum(
            s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def has(self, name: str, **labels: str) -> bool:
        return any(s.name == name and all(s.labels.get(k) == v for k, v in labels.items()) for s in self.samples)


AppFactory = Callable[..., ServedApp]


@pytest.fixture
def serve(database_url: str) -> Iterator[AppFactory]:
    """serve(settings, database_url=...) starts the monitoring endpoints over real HTTP."""
    started: list[ServedApp] = []

    def start(settings: Settings, url: str | None = None) -> ServedApp:
        app = ServedApp(url or database_url, settings).start()
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


@pytest.fixture
def shared_metrics(redis_url: str, redis_prefix: str) -> Iterator[str]:
    """Request figures go to this test's own Redis namespace; returns the key prefix."""
    configure_metrics(redis_url, prefix=redis_prefix)
    yield redis_prefix
    flush_metrics()
    configure_metrics(None)


SyncRunner = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def sync_runner(run_sync: Callable[..., Awaitable[dict[str, Any]]]) -> SyncRunner:
    """run(account="both", mode="full", on_progress=None, passwords={}) syncs from the sandbox."""

    async def run(
        account: str = "both",
        mode: str = "full",
        on_progress: Any = None,
        passwords: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return await run_sync(
            account=account,
            mode=mode,
            config={"max_attempts": 2, "deadline_seconds": 30.0, "passwords": passwords},
            service={"on_progress": on_progress},
        )

    return run
