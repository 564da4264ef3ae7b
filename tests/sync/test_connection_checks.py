"""ConnectionChecks over real PostgreSQL and the sandbox: a verdict is reused for a minute and no longer, and the
account's recorded verdict (the one readiness shows) is what an answer agrees with."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.config import Settings, load_settings
from magflow.emag.connection import ConnectionVerdict
from magflow.observability.health import store_connection_verdict
from magflow.sync.connection_checks import VERDICT_TTL_SECONDS, ConnectionChecks


def sandbox_settings(sandbox: Any) -> Settings:
    values: dict[str, Any] = {"redis_url": None, "magflow_transform_hook": None}
    values |= {"emag_rate_limit_per_second": 100.0, "emag_rate_limit_per_minute": 6000}
    for account, (user, password) in sandbox.accounts.items():
        values[f"emag_{account}_username"] = user
        values[f"emag_{account}_password"] = password
        values[f"emag_{account}_base_url"] = sandbox.base_url
    return load_settings(**values)


def requests_to(sandbox: Any, account: str) -> int:
    return sum(sandbox.state.requests_per_second(account).values())


class Clock:
    """The wall clock, moved forward on demand: the verdicts' age is measured against it."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def test_a_verdict_is_reused_for_a_minute_and_checked_again_after(
    clean_engine: AsyncEngine, sandbox: Any
) -> None:
    clock = Clock()
    checks = ConnectionChecks(clean_engine, sandbox_settings(sandbox), now=clock)
    first = await checks.answer("main", deep=True)
    spent = requests_to(sandbox, "main")
    assert first.source == "check" and first.report is not None and spent == first.report.requests_used

    clock.offset = timedelta(seconds=VERDICT_TTL_SECONDS - 5)
    again = await checks.answer("main", deep=True)
    assert again.source == "cache" and again.report is first.report
    assert requests_to(sandbox, "main") == spent

    clock.offset = timedelta(seconds=VERDICT_TTL_SECONDS + 1)
    later = await checks.answer("main", deep=True)
    assert later.source == "check" and requests_to(sandbox, "main") == 2 * spent


async def test_a_newer_verdict_recorded_elsewhere_is_the_answer(clean_engine: AsyncEngine, sandbox: Any) -> None:
    checks = ConnectionChecks(clean_engine, sandbox_settings(sandbox))
    assert (await checks.answer("main", deep=False)).verdict.status == "ok"
    # The periodic health check (another process) finds the password changed a moment later.
    refused = ConnectionVerdict("main", "auth_failed", "eMAG refused the credentials of account main")
    await store_connection_verdict(clean_engine, refused)

    answer = await checks.answer("main", deep=False)
    assert answer.source == "cache" and answer.verdict.status == "auth_failed"
    assert requests_to(sandbox, "main") == 3
    # A deep check needs its own report: it checks.
    deep = await checks.answer("main", deep=True)
    assert deep.source == "check" and deep.report is not None and deep.verdict.status == "ok"


async def test_concurrent_checks_of_one_account_run_one_at_a_time_and_share(
    clean_engine: AsyncEngine, sandbox: Any
) -> None:
    sandbox.state.faults.set_latency(200)
    checks = ConnectionChecks(clean_engine, sandbox_settings(sandbox))
    quick, deep, other = await asyncio.gather(
        checks.answer("main", deep=False), checks.answer("main", deep=True), checks.answer("main", deep=False)
    )
    # Whichever started first, the deep caller got a deep report of its own, and the quick callers share at most
    # one quick check (a deep check in flight answers them too).
    assert deep.source == "check" and deep.report is not None
    quick_checks = [a for a in (quick, other) if a.source == "check"]
    assert len(quick_checks) <= 1 and quick.verdict.status == other.verdict.status == "ok"
    assert requests_to(sandbox, "main") == deep.report.requests_used + 3 * len(quick_checks)
