"""GET /health/ready and the periodic health check: database, broker, credentials, last sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from magflow.db.engine import create_engine
from magflow.models import EmagAccountState, HealthCheck
from magflow.observability.health import readiness, run_health_check

from .conftest import CLOSED_PORT_URL, AppFactory, SyncRunner, settings_for


def sandbox_settings(tmp_path: Path, sandbox: Any, main_password: str | None = None, **extra: Any) -> Any:
    (main_user, main_pass), (fbe_user, fbe_pass) = sandbox.accounts["main"], sandbox.accounts["fbe"]
    return settings_for(
        tmp_path,
        emag_main_username=main_user,
        emag_main_password=main_password or main_pass,
        emag_main_base_url=sandbox.base_url,
        emag_fbe_username=fbe_user,
        emag_fbe_password=fbe_pass,
        emag_fbe_base_url=sandbox.base_url,
        **extra,
    )


async def test_ready_when_database_and_broker_answer(
    serve: AppFactory, clean_engine: AsyncEngine, redis_url: str, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, redis_url=redis_url)
    response = await serve(settings).get("/health/ready")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok", report
    assert report["checks"]["database"]["status"] == "ok"
    assert report["checks"]["broker"]["status"] == "ok"
    assert report["problems"] == []


async def test_unhealthy_when_the_database_is_down(serve: AppFactory, database_url: str, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    for url in (CLOSED_PORT_URL, database_url.rsplit("/", 1)[0] + "/magflow_no_such_database"):
        response = await serve(settings, url).get("/health/ready")
        assert response.status_code == 503
        report = response.json()
        assert report["status"] == "unhealthy"
        assert report["checks"]["database"]["status"] == "down"
        assert "database does not answer" in report["problems"][0]


async def test_degraded_when_the_broker_is_down(clean_engine: AsyncEngine, tmp_path: Path) -> None:
    report = await readiness(clean_engine, settings_for(tmp_path, celery_broker_url="redis://127.0.0.1:1/0"))
    assert report["status"] == "degraded"
    assert report["checks"]["broker"]["status"] == "down"


async def test_refused_credentials_make_readiness_unhealthy_until_fixed(
    serve: AppFactory, clean_engine: AsyncEngine, sync_runner: SyncRunner, sandbox: Any, tmp_path: Path
) -> None:
    refused = sandbox_settings(tmp_path, sandbox, main_password="not-the-password")
    report = await run_health_check(clean_engine, refused)
    assert report["stored"] is True
    assert report["status"] == "unhealthy"
    assert report["connection_checks"]["main"]["status"] == "auth_failed"
    assert report["connection_checks"]["fbe"]["status"] == "ok"
    async with clean_engine.connect() as conn:
        state = (await conn.execute(select(EmagAccountState).where(EmagAccountState.account_type == "main"))).one()
        stored = (await conn.execute(select(HealthCheck))).all()
    assert state.last_connection_status == "auth_failed"
    assert [(row.status, row.details["checks"]["accounts"]["main"]["connection"]) for row in stored] == [
        ("unhealthy", "auth_failed")
    ]
    assert "not-the-password" not in str(stored[0].details)

    app = serve(refused)
    response = await app.get("/health/ready")
    assert response.status_code == 503
    assert any("EMAG_MAIN_PASSWORD" in problem for problem in response.json()["problems"])
    page = await app.metrics()
    assert page.value("magflow_account_connection_status", account="main", status="auth_failed") == 1
    assert page.value("magflow_account_connection_status", account="fbe", status="ok") == 1
    assert page.value("magflow_health_check_status", status="unhealthy") == 1

    fixed = sandbox_settings(tmp_path, sandbox)
    report = await run_health_check(clean_engine, fixed)
    assert report["checks"]["accounts"]["main"]["connection"] == "ok"
    assert report["status"] == "degraded"  # connected, but never synced yet
    assert "never synced" in " ".join(report["problems"])
    await sync_runner(account="both", mode="full")
    assert (await readiness(clean_engine, fixed))["status"] == "ok"
    assert (await serve(fixed).get("/health/ready")).status_code == 200


async def test_health_check_is_stored_even_without_accounts(clean_engine: AsyncEngine, tmp_path: Path) -> None:
    report = await run_health_check(clean_engine, settings_for(tmp_path))
    assert report["status"] == "ok" and report["stored"] is True
    async with clean_engine.connect() as conn:
        assert (await conn.execute(select(HealthCheck.status))).scalars().all() == ["ok"]


async def test_health_check_reports_a_database_that_is_down(tmp_path: Path) -> None:
    engine = create_engine(CLOSED_PORT_URL)
    try:
        report = await run_health_check(engine, settings_for(tmp_path))
    finally:
        await engine.dispose()
    assert report["status"] == "unhealthy" and report["stored"] is False
