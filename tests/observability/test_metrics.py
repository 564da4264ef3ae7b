"""/metrics: sync figures read from the database at scrape time, per-request eMAG figures from Redis."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from magflow.observability.metrics import (
    configure_metrics,
    flush_metrics,
    record_budget_wait,
    record_emag_request,
    record_rate_limit_hit,
)

from .conftest import CLOSED_PORT_URL, AppFactory, Metrics, SyncRunner, settings_for


async def test_sync_figures_move_as_a_sync_runs(serve: AppFactory, sync_runner: SyncRunner, tmp_path: Path) -> None:
    app = serve(settings_for(tmp_path))
    before = await app.metrics()
    assert before.value("magflow_database_up") == 1
    assert not before.has("magflow_sync_runs_total")
    assert not before.has("magflow_products")

    seen_midway: list[Metrics] = []

    async def on_progress(account: str, progress: dict[str, Any]) -> None:
        if not seen_midway:
            seen_midway.append(await app.metrics())

    first = await sync_runner(account="both", mode="full", on_progress=on_progress)
    assert first["status"] == "completed"

    midway = seen_midway[0]
    assert midway.value("magflow_sync_running", mode="full") == 1
    ratio = [s for s in midway.samples if s.name == "magflow_sync_progress_ratio"]
    assert any(0 < s.value < 1 for s in ratio) and all(0 <= s.value < 1 for s in ratio)
    assert 0 < midway.value("magflow_sync_items_total", outcome="created") < 600
    assert midway.value("magflow_sync_heartbeat_age_seconds") < 60

    after = await app.metrics()
    assert after.value("magflow_sync_runs_total", account="both", mode="full", status="completed") == 1
    assert after.value("magflow_sync_duration_seconds_count", account="both", mode="full") == 1
    assert after.value("magflow_sync_duration_seconds_bucket", account="both", mode="full", le="+Inf") == 1
    assert not after.has("magflow_sync_running")
    assert not after.has("magflow_sync_progress_ratio")
    for account in ("main", "fbe"):
        assert after.value("magflow_products", account=account) == 300
        assert after.value("magflow_sync_items_total", account=account, outcome="created") == 300
        assert after.value("magflow_sync_items_total", account=account, outcome="failed") == 0
        assert 0 <= after.value("magflow_last_full_sync_age_seconds", account=account) < 120
        assert after.value("magflow_last_successful_sync_age_seconds", account=account) < 120
    assert after.value("magflow_products", state="active") + after.value("magflow_products", state="inactive") == 600

    second = await sync_runner(account="main", mode="incremental")
    assert second["status"] == "completed"
    again = await app.metrics()
    assert again.value("magflow_sync_runs_total", account="main", mode="incremental", status="completed") == 1
    assert again.value("magflow_sync_runs_total", status="completed") == 2
    assert again.value("magflow_sync_items_total", account="main", outcome="created") == 300
    assert again.value("magflow_sync_items_total", account="main", outcome="unchanged") >= 1


async def test_a_failed_sync_is_counted_as_failed(serve: AppFactory, sync_runner: SyncRunner, tmp_path: Path) -> None:
    app = serve(settings_for(tmp_path))
    result = await sync_runner(account="main", mode="full", passwords={"main": "wrong"})
    assert result["status"] == "failed"
    page = await app.metrics()
    assert page.value("magflow_sync_runs_total", account="main", mode="full", status="failed") == 1
    assert page.value("magflow_sync_runs_total", status="completed") == 0
    assert math.isinf(page.value("magflow_last_full_sync_age_seconds", account="main"))


async def test_request_figures_of_every_process_add_up(
    serve: AppFactory, shared_metrics: str, redis_url: str, tmp_path: Path
) -> None:
    app = serve(settings_for(tmp_path, redis_url=redis_url))
    record_emag_request("main", "product_offer/read", 200, 0.2)
    record_emag_request("main", "product_offer/read", 200, 3.0)
    record_rate_limit_hit("main", "default")
    record_budget_wait("main", "default", 0.5)
    other_worker = (
        "from magflow.observability.metrics import *\n"
        f"configure_metrics({redis_url!r}, prefix={shared_metrics!r})\n"
        "record_emag_request('main', 'product_offer/read', 200, 0.7)\n"
        "record_emag_request('fbe', 'product_offer/count', 429, 0.01)\n"
        "record_rate_limit_hit('fbe', 'default')\n"
        "record_budget_wait('main', 'default', 1.5)\n"
        "assert flush_metrics()\n"
    )
    subprocess.run([sys.executable, "-c", other_worker], check=True, timeout=60)

    page = await app.metrics()
    assert page.value("magflow_metrics_redis_up") == 1
    read = {"account": "main", "route": "product_offer/read", "status": "200"}
    assert page.value("magflow_emag_request_duration_seconds_count", **read) == 3
    assert page.value("magflow_emag_request_duration_seconds_sum", **read) == pytest.approx(3.9)
    assert page.value("magflow_emag_request_duration_seconds_bucket", le="0.25", **read) == 1
    assert page.value("magflow_emag_request_duration_seconds_bucket", le="1.0", **read) == 2
    assert page.value("magflow_emag_request_duration_seconds_bucket", le="+Inf", **read) == 3
    assert page.value("magflow_emag_request_duration_seconds_count", account="fbe", status="429") == 1
    assert page.value("magflow_emag_rate_limited_total", account="main") == 1
    assert page.value("magflow_emag_rate_limited_total", account="fbe") == 1
    assert page.value("magflow_emag_rate_budget_wait_seconds_total", account="main", bucket="default") == pytest.approx(
        2.0
    )
    assert page.value("magflow_emag_rate_budget_waits_total", account="main", bucket="default") == 2


async def test_without_redis_a_process_reports_its_own_requests(serve: AppFactory, tmp_path: Path) -> None:
    configure_metrics(None)
    app = serve(settings_for(tmp_path))
    labels = {"account": "fbe", "route": "vat/read", "status": "timeout"}
    before = (await app.metrics()).value("magflow_emag_request_duration_seconds_count", **labels)
    record_emag_request("fbe", "vat/read", "timeout", 120.0)
    page = await app.metrics()
    assert page.value("magflow_emag_request_duration_seconds_count", **labels) == before + 1
    assert not page.has("magflow_metrics_redis_up")


async def test_recording_stays_cheap_and_silent_when_redis_is_down(serve: AppFactory, tmp_path: Path) -> None:
    configure_metrics("redis://127.0.0.1:1/0", prefix="magflow-test-down")
    try:
        started = time.perf_counter()
        for _ in range(1000):
            record_emag_request("main", "product_offer/read", 200, 0.1)
            record_budget_wait("main", "default", 0.0)
        assert time.perf_counter() - started < 0.5  # the event loop is never held up by Redis
        assert flush_metrics() is False  # kept for a later attempt, not raised
        page = await serve(settings_for(tmp_path)).metrics()
        assert page.value("magflow_metrics_redis_up") == 0
        assert page.value("magflow_database_up") == 1
    finally:
        configure_metrics(None)


async def test_metrics_still_answer_when_the_database_is_down(serve: AppFactory, tmp_path: Path) -> None:
    page = await serve(settings_for(tmp_path), CLOSED_PORT_URL).metrics()
    assert page.value("magflow_database_up") == 0
    assert not page.has("magflow_sync_runs_total")


async def test_a_sync_through_the_client_moves_the_request_figures(
    serve: AppFactory, sync_runner: SyncRunner, tmp_path: Path
) -> None:
    configure_metrics(None)
    app = serve(settings_for(tmp_path))
    read = {"account": "fbe", "route": "product_offer/read", "status": "200"}
    before = (await app.metrics()).value("magflow_emag_request_duration_seconds_count", **read)
    result = await sync_runner(account="fbe", mode="full")
    assert result["status"] == "completed"
    page = await app.metrics()
    assert page.value("magflow_emag_request_duration_seconds_count", **read) >= before + 3  # 300 offers, 3 pages
    assert page.value("magflow_emag_rate_budget_waits_total", account="fbe", bucket="default") >= 3
