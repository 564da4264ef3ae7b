"""Readiness (`GET /health/ready`) and the periodic health check that stores its result.

`readiness` never raises: every part it cannot reach is reported as such. Overall status:
- unhealthy: the database does not answer, or eMAG refused an account (credentials or IP whitelist) at its
  last connection check — nothing can sync until a person acts;
- degraded: the broker does not answer, an account's last check failed for a passing reason (unreachable,
  rate limited), or an account has not synced successfully for too long;
- ok otherwise.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, Literal

import redis.asyncio as aioredis
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.accounts import configured_accounts, rate_budget
from magflow.config import ACCOUNTS, Settings
from magflow.db.engine import session_factory
from magflow.emag import ConnectionVerdict, EmagClient, RateBudget
from magflow.models import EmagAccountState, HealthCheck
from magflow.observability.logging import Redactor

Status = Literal["ok", "degraded", "unhealthy"]
DATABASE_TIMEOUT_SECONDS = 3.0
BROKER_TIMEOUT_SECONDS = 2.0
CONNECTION_CHECK_TIMEOUT_SECONDS = 60.0
REFUSED = {
    "auth_failed": "eMAG refused the credentials of account {a}: check EMAG_{A}_USERNAME and EMAG_{A}_PASSWORD",
    "ip_not_whitelisted": "eMAG refused this server's IP for account {a}: add it to the whitelist in the "
    "eMAG seller portal",
}
_RANK: dict[Status, int] = {"ok": 0, "degraded": 1, "unhealthy": 2}


def _worst(*statuses: Status) -> Status:
    return max(statuses, key=_RANK.__getitem__, default="ok")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def stale_after_seconds(settings: Settings) -> float:
    """An account is overdue after three missed scheduled syncs (or a day without the scheduler)."""
    if settings.emag_enable_scheduled_sync:
        return 3 * settings.emag_sync_interval_minutes * 60.0
    return 24 * 3600.0


async def check_database(engine: AsyncEngine, redact: Redactor) -> tuple[dict[str, Any], list[EmagAccountState]]:
    """({"status": "ok"|"down", ...}, the emag_account_state rows or [] when down)."""
    started = time.monotonic()

    async def query() -> list[EmagAccountState]:
        async with session_factory(engine)() as session:
            await session.execute(text("SELECT 1"))
            return list((await session.scalars(select(EmagAccountState))).all())

    try:
        rows = await asyncio.wait_for(query(), DATABASE_TIMEOUT_SECONDS)
    except TimeoutError:
        return {"status": "down", "error": f"no answer within {DATABASE_TIMEOUT_SECONDS:g}s"}, []
    except Exception as exc:  # any failure means "not ready"; the message says which
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return {"status": "down", "error": redact(f"{type(exc).__name__}: {reason}")}, []
    return {"status": "ok", "latency_ms": round((time.monotonic() - started) * 1000, 1)}, rows


async def check_broker(settings: Settings, redact: Redactor) -> dict[str, Any]:
    url = settings.broker_url
    if not url:
        return {"status": "not_configured"}
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return {"status": "not_checked", "detail": "only Redis brokers are checked"}
    client = aioredis.Redis.from_url(
        url, socket_timeout=BROKER_TIMEOUT_SECONDS, socket_connect_timeout=BROKER_TIMEOUT_SECONDS
    )
    started = time.monotonic()
    try:
        await asyncio.wait_for(client.ping(), BROKER_TIMEOUT_SECONDS)
    except Exception as exc:
        return {"status": "down", "error": redact(f"{type(exc).__name__}: {exc}")}
    finally:
        await client.aclose()
    return {"status": "ok", "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def _account_report(
    account: str, state: EmagAccountState | None, configured: bool, settings: Settings, now: datetime
) -> tuple[dict[str, Any], Status, str | None]:
    connection = state.last_connection_status if state else None
    success_at = state.last_successful_sync_at if state else None
    age = (now - success_at).total_seconds() if success_at else None
    report: dict[str, Any] = {
        "configured": configured,
        "connection": connection or "never_checked",
        "connection_message": state.last_connection_message if state else None,
        "connection_checked_at": _iso(state.last_connection_checked_at) if state else None,
        "last_successful_sync_at": _iso(success_at),
        "last_successful_sync_age_seconds": round(age, 1) if age is not None else None,
        "last_full_sync_completed_at": _iso(state.last_full_sync_completed_at) if state else None,
    }
    status: Status = "ok"
    problem: str | None = None
    if connection in REFUSED:
        status, problem = "unhealthy", REFUSED[connection].format(a=account, A=account.upper())
    elif connection not in (None, "ok"):
        status, problem = "degraded", f"account {account}: last connection check said {connection}"
    elif configured and (age is None or age > stale_after_seconds(settings)):
        status = "degraded"
        problem = (
            f"account {account} has never synced successfully"
            if age is None
            else f"account {account} has not synced successfully for {age / 3600:.1f} h"
        )
    report["status"] = status
    if problem:
        report["problem"] = problem
    return report, status, problem


async def readiness(engine: AsyncEngine, settings: Settings) -> dict[str, Any]:
    """Is this deployment able to do its job? See the module docstring for the status rules."""
    redact = Redactor.from_settings(settings)
    now = datetime.now(UTC)
    (database, rows), broker = await asyncio.gather(check_database(engine, redact), check_broker(settings, redact))
    problems: list[str] = []
    status: Status = "ok"
    if database["status"] != "ok":
        status = "unhealthy"
        problems.append(f"the database does not answer ({database['error']})")
    if broker["status"] == "down":
        status = _worst(status, "degraded")
        problems.append(f"the task broker does not answer ({broker['error']}); scheduled syncs cannot start")
    states = {row.account_type: row for row in rows}
    accounts: dict[str, Any] = {}
    if database["status"] == "ok":
        for account in ACCOUNTS:
            configured = settings.has_credentials(account)
            if not configured and account not in states:
                continue
            report, account_status, problem = _account_report(account, states.get(account), configured, settings, now)
            accounts[account] = report
            status = _worst(status, account_status)
            if problem:
                problems.append(problem)
    return {
        "status": status,
        "checked_at": now.isoformat(),
        "checks": {"database": database, "broker": broker, "accounts": accounts},
        "problems": problems,
    }


async def store_connection_verdict(engine: AsyncEngine, verdict: ConnectionVerdict) -> None:
    """Remember an account's connection check (test-connection, the health check) for readiness/metrics."""
    values = {
        "account_type": verdict.account,
        "last_connection_status": verdict.status,
        "last_connection_message": verdict.message,
        "last_connection_checked_at": datetime.now(UTC),
    }
    stmt = pg_insert(EmagAccountState).values(**values)
    async with engine.begin() as conn:
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[EmagAccountState.account_type],
                set_={k: stmt.excluded[k] for k in values if k != "account_type"},
            )
        )


async def _check_account(client: EmagClient) -> ConnectionVerdict:
    try:
        return await asyncio.wait_for(client.check_connection(), CONNECTION_CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return ConnectionVerdict(
            client.account, "unreachable", f"eMAG did not answer within {CONNECTION_CHECK_TIMEOUT_SECONDS:g}s"
        )


async def check_connections(settings: Settings, budget: RateBudget | None = None) -> dict[str, ConnectionVerdict]:
    """One connection check per configured account, concurrently, drawing on the shared rate budget."""
    configs = configured_accounts(settings)
    if not configs:
        return {}
    own_budget = budget is None
    shared = budget if budget is not None else rate_budget(settings)
    try:
        clients = [EmagClient(config, budget=shared) for config in configs.values()]
        try:
            verdicts = await asyncio.gather(*(_check_account(c) for c in clients))
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
    finally:
        if own_budget:
            await shared.aclose()
    return {v.account: v for v in verdicts}


async def run_health_check(
    engine: AsyncEngine,
    settings: Settings,
    *,
    check_connections_first: bool = True,
    budget: RateBudget | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The periodic health check: check each configured account's eMAG connection, store the verdicts,
    evaluate readiness and store it as an `emag_health_checks` row. Returns the stored report (with
    `stored: false` when the database is down, which is itself the finding). Never raises for a failed
    check."""
    verdicts: dict[str, ConnectionVerdict] = {}
    if check_connections_first:
        verdicts = await check_connections(settings, budget)
        for verdict in verdicts.values():
            try:
                await store_connection_verdict(engine, verdict)
            except Exception:  # the database is down: readiness below says so
                break
    report = await readiness(engine, settings)
    report["connection_checks"] = {
        a: {"status": v.status, "message": v.message, "latency_ms": v.latency_ms, "products": v.product_count}
        for a, v in verdicts.items()
    }
    report.update(extra or {})
    try:
        async with engine.begin() as conn:
            await conn.execute(pg_insert(HealthCheck).values(status=report["status"], details=report))
        report["stored"] = True
    except Exception:
        report["stored"] = False
    return report
