"""Clients wired to the sandbox with short timeouts and backoff, so fault tests stay fast."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from magflow.emag import AccountConfig, InProcessRateBudget, RateLimits
from magflow.testing.sandbox import Sandbox

UNLIMITED = RateLimits(per_second=1000, per_minute=60_000, orders_per_second=1000, orders_per_minute=60_000)


def sandbox_config(base_url: str, account: str = "main", password: str | None = None, **changes: Any) -> AccountConfig:
    from magflow.sandbox import SANDBOX_ACCOUNTS

    username, real_password = SANDBOX_ACCOUNTS[account]
    settings: dict[str, Any] = {
        "timeout_seconds": 2.0,
        "connect_timeout_seconds": 1.0,
        "max_attempts": 4,
        "deadline_seconds": 30.0,
        "backoff_base_seconds": 0.02,
        "backoff_max_seconds": 0.1,
    }
    settings.update(changes)
    return AccountConfig(
        account=account,
        username=username,
        password=real_password if password is None else password,
        base_url=base_url,
        **settings,
    )


MakeConfig = Callable[..., AccountConfig]


@pytest.fixture
def make_config() -> MakeConfig:
    """make_config(base_url, account="main", password=None, **AccountConfig fields) for the sandbox."""
    return sandbox_config


@pytest.fixture
def config(sandbox: Sandbox) -> AccountConfig:
    return sandbox_config(sandbox.base_url)


@pytest.fixture
def fast_budget() -> InProcessRateBudget:
    """The sandbox fixture runs with rate limits off; this budget does not slow the tests down."""
    return InProcessRateBudget(UNLIMITED)
