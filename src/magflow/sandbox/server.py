"""Run the sandbox app with uvicorn: in a background thread for tests, or blocking for the CLI."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any

import uvicorn

from magflow.sandbox.app import SandboxApp
from magflow.sandbox.state import SANDBOX_ACCOUNTS, SandboxState
from magflow.sandbox.switches import Switches


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """uvloop when available: the sandbox must never be the bottleneck of a benchmark."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvicorn[standard] ships uvloop
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro)


class SandboxServer:
    """A real HTTP server speaking the eMAG API, in a background thread with its own event loop."""

    def __init__(self, state: SandboxState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        self.host = host
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            SandboxApp(state),
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The eMAG MARKETPLACE_API_URL equivalent for both accounts."""
        return f"{self.root_url}/api-3"

    @property
    def control_url(self) -> str:
        return f"{self.root_url}/_sandbox"

    def start(self) -> None:
        """Serve in a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(
            target=_run,
            args=(self._server.serve(sockets=[self._socket]),),
            name="magflow-sandbox",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> SandboxServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


def run_cli(
    port: int = 8099,
    products: int = 10_000,
    seed: int = 1,
    host: str = "127.0.0.1",
    rate_limit: bool = True,
    control_token: str = "sandbox-control",
    hostile_rate: float = 0.0,
    faults: Sequence[str] = (),
    **switches: Any,
) -> None:
    """Serve until interrupted (`magflow sandbox`). rate_limit=False switches eMAG's limits off;
    hostile_rate > 0 spoils that fraction of offers with hostile values chosen by `seed`; `faults` are specs
    such as "captive_html:3@product_offer/read"; any other switch (body_style, gzip, platform...) by name.
    Raises ValueError for an unknown switch or value before anything is served."""
    off = ("rate_per_second", "rate_per_minute", "order_rate_per_second", "order_rate_per_minute")
    limits: dict[str, Any] = {} if rate_limit else dict.fromkeys(off)
    state = SandboxState(
        products_per_account=products, seed=seed, control_token=control_token, hostile_rate=hostile_rate,
        faults=faults, **limits, **switches,
    )  # fmt: skip
    print(f"eMAG sandbox on http://{host}:{port}/api-3  ({products} products per account, seed {seed})")
    for account, (user, password) in SANDBOX_ACCOUNTS.items():
        print(f"  {account.upper():4} username={user} password={password}")
    print(f"  control: http://{host}:{port}/_sandbox  header X-Sandbox-Token: {control_token}")
    print(f"  rate limits: {'eMAG (3/s, 180/min; orders 12/s, 720/min)' if rate_limit else 'off'}")
    if hostile_rate:
        print(f"  hostile values in {hostile_rate:.1%} of offers (seed {seed}); POST /_sandbox/{{account}}/hostile")
    changed = {k: v for k, v in state.switches_now.flat().items() if Switches.default().flat()[k] != v}
    print(f"  switches: {', '.join(f'{k}={v}' for k, v in changed.items()) or 'defaults'} (POST /_sandbox/quirks)")
    for fault in faults:
        print(f"  fault: {fault}")
    config = uvicorn.Config(SandboxApp(state), host=host, port=port, log_level="info", lifespan="off")
    uvicorn.Server(config).run()
