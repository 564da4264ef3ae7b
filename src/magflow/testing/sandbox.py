"""pytest fixtures: the eMAG sandbox as a real HTTP server on a free port.

- `sandbox_server` (session): one server, 300 products per account, seed 1, rate limiting off — unless the
  environment sets MAGFLOW_SANDBOX_LIMITS=on, which keeps eMAG's limits (3/s and 180/min; orders 12/s and
  720/min) so a CI job can run the suite against them.
- `sandbox` (function): that server reset to a fresh deterministic world before the test, every switch at its
  default (magflow.sandbox.switches: top-level bodies, isError-200 validation errors, capped paging...).
- `make_sandbox` (function): factory for a dedicated server with its own settings, stopped after the test;
  any SandboxState keyword works, switches and faults included: `make_sandbox(products=1000, hostile_rate=0.02,
  hostile_seed=7, count_lag=3, product_sort="modified_desc", body_style="data", faults=["captive_html:2"])`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from magflow.sandbox import SANDBOX_ACCOUNTS, SandboxServer, SandboxState

SANDBOX_PRODUCTS = 300
SANDBOX_SEED = 1
LIMITS_VARIABLE = "MAGFLOW_SANDBOX_LIMITS"
_LIMITS_OFF: dict[str, Any] = {
    "rate_per_second": None,
    "rate_per_minute": None,
    "order_rate_per_second": None,
    "order_rate_per_minute": None,
}


def sandbox_limits_on() -> bool:
    """Whether MAGFLOW_SANDBOX_LIMITS asks the fixtures to keep eMAG's rate limits ("on", "1", "true", "yes")."""
    return os.environ.get(LIMITS_VARIABLE, "").strip().lower() in ("on", "1", "true", "yes")


def fixture_limits() -> dict[str, Any]:
    """The SandboxState limit keywords the fixtures use: off, or eMAG's when MAGFLOW_SANDBOX_LIMITS=on."""
    return {} if sandbox_limits_on() else dict(_LIMITS_OFF)


@dataclass
class Sandbox:
    """What a test needs: the state to drive and inspect, where to connect, and the logins."""

    server: SandboxServer
    state: SandboxState
    base_url: str
    control_url: str
    accounts: dict[str, tuple[str, str]]

    def client(self, account: str = "main", **kwargs: Any) -> httpx.Client:
        """A synchronous httpx client logged in as `account` (or with `auth=`); close it (use `with`)."""
        kwargs.setdefault("timeout", 10)
        kwargs.setdefault("auth", self.accounts[account])
        return httpx.Client(base_url=self.base_url, **kwargs)

    def control(self) -> httpx.Client:
        """A client for the control API (/_sandbox), token included; close it (use `with`)."""
        headers = {"X-Sandbox-Token": self.state.control_token}
        return httpx.Client(base_url=self.control_url, headers=headers, timeout=30)


def read(http: httpx.Client, route: str = "product_offer/read", **data: Any) -> httpx.Response:
    """POST `data` as top-level JSON keys to an eMAG route, as production JSON clients send it."""
    return http.post(f"/{route}", json=data)


def post(http: httpx.Client, route: str, data: dict[str, Any], style: str = "json") -> httpx.Response:
    """POST `data` in a body style: "json" (top-level keys), "json-data" ({"data": ...}) or "form" (written
    by hand, PHP-style: data[key]=value, lists as data[key][]=value)."""
    if style == "json":
        return http.post(f"/{route}", json=data)
    if style == "json-data":
        return http.post(f"/{route}", json={"data": data})
    form: dict[str, Any] = {
        f"data[{key}][]" if isinstance(value, list) else f"data[{key}]": (
            [str(v) for v in value] if isinstance(value, list) else str(value)
        )
        for key, value in data.items()
    }
    return http.post(f"/{route}", data=form)


def read_all(http: httpx.Client, per_page: int = 100, **filters: Any) -> list[dict[str, Any]]:
    """Every product_offer/read page in turn until a short page."""
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        response = read(http, currentPage=page, itemsPerPage=per_page, **filters)
        response.raise_for_status()
        results: list[dict[str, Any]] = response.json()["results"]
        rows += results
        if len(results) < per_page:
            return rows
        page += 1


def _handle(server: SandboxServer) -> Sandbox:
    return Sandbox(server, server.state, server.base_url, server.control_url, dict(SANDBOX_ACCOUNTS))


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    state = SandboxState(products_per_account=SANDBOX_PRODUCTS, seed=SANDBOX_SEED, **fixture_limits())
    server = SandboxServer(state)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Sandbox:
    """The shared sandbox, reset: fresh catalogue and orders, no faults, default switches, zero counters, limits
    off (or on, with MAGFLOW_SANDBOX_LIMITS=on)."""
    sandbox_server.state.reset(seed=SANDBOX_SEED, products_per_account=SANDBOX_PRODUCTS)
    return _handle(sandbox_server)


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """make_sandbox(products=..., seed=..., rate_per_second=..., hostile_rate=..., body_style=..., ...) starts a
    dedicated server.

    Rate limits default to off (on with MAGFLOW_SANDBOX_LIMITS=on); pass any SandboxState keyword to change that
    or anything else."""
    servers: list[SandboxServer] = []

    def start(products: int = SANDBOX_PRODUCTS, seed: int = SANDBOX_SEED, **settings: Any) -> Sandbox:
        state = SandboxState(products_per_account=products, seed=seed, **{**fixture_limits(), **settings})
        server = SandboxServer(state)
        server.start()
        servers.append(server)
        return _handle(server)

    yield start
    for server in servers:
        server.stop()
